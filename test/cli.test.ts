// The CLI as a process without a TTY, the way scripts and CI run it.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadTargets } from '../src/targets.js';

const BIN = join(import.meta.dirname, '..', 'bin', 'create-sse-server.js');
const cli = (args: string[], cwd = tmpdir()) =>
  spawnSync('node', [BIN, ...args], { cwd, encoding: 'utf8', input: '', timeout: 30_000, env: { ...process.env, CI: 'true' } });

const targets = loadTargets();
const first = targets[0];


describe('create-sse-server (no TTY)', () => {
  it('never waits for input: without a folder it says what to pass', () => {
    const r = cli([]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/no project folder given: pass it as the first argument/);
  });

  it('without --target it names the flag and the ids', () => {
    const r = cli([join(mkdtempSync(join(tmpdir(), 'cli-')), 'app')]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/no target chosen: pass --target ID \(one of/);
  });

  it('an unknown id fails with the closest match and the list', () => {
    const wrong = first.id.slice(0, -1) + 'x';
    const r = cli(['app', '--target', wrong]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`unknown target "${wrong}" (did you mean ${first.id}?)`);
    for (const t of targets) expect(r.stderr).toContain(t.id);
  });

  it('--yes with flags writes the project and prints next steps', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'cli-')), 'my-app');
    const r = cli([dir, '--target', first.id, '--port', '4000', '--yes']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/curl -N http:\/\/localhost:4000\/events/);
    const marker = JSON.parse(readFileSync(join(dir, '.create-sse-server.json'), 'utf8'));
    expect(marker.target).toBe(first.id);
    for (const f of marker.files) expect(existsSync(join(dir, f))).toBe(true);
  });

  it('refuses a non-empty folder, and --force replaces it but keeps .git', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cli-'));
    writeFileSync(join(dir, 'notes.md'), 'mine');
    const refused = cli([dir, '--target', first.id, '--yes']);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/is not empty: pass --force/);
    expect(readFileSync(join(dir, 'notes.md'), 'utf8')).toBe('mine');
    mkdirSync(join(dir, '.git'));
    writeFileSync(join(dir, '.git', 'config'), '[core]');
    const forced = cli([dir, '--target', first.id, '--yes', '--force']);
    expect(forced.status).toBe(0);
    expect(existsSync(join(dir, 'notes.md'))).toBe(false);
    expect(readFileSync(join(dir, '.git', 'config'), 'utf8')).toBe('[core]');
  });

  it('a bad spec is refused before anything is written, naming the field', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'cli-'));
    writeFileSync(join(tmp, 'bad.yaml'), 'events:\n  - name: ok\n  - name: "bad name"\n');
    const out = join(tmp, 'out');
    const r = cli(['generate', '--spec', join(tmp, 'bad.yaml'), '--out', out]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('events[1].name: must match ^[a-z][a-z0-9_-]*$');
    expect(existsSync(out)).toBe(false);
  });

  it('generate --target writes only OUT/<id>/, and --check agrees', () => {
    const out = mkdtempSync(join(tmpdir(), 'cli-'));
    const spec = join(import.meta.dirname, '..', 'examples', 'sse.spec.yaml');
    expect(cli(['generate', '--spec', spec, '--out', out, '--target', first.id]).status).toBe(0);
    expect(existsSync(join(out, first.id, '.create-sse-server.json'))).toBe(true);
    const check = cli(['generate', '--spec', spec, '--out', out, '--target', first.id, '--check']);
    expect(check.status).toBe(0);
  });

  it('list --json names every target with its port, level and toolchain', () => {
    const r = cli(['list', '--json']);
    expect(r.status).toBe(0);
    const rows = JSON.parse(r.stdout);
    expect(rows.map((x: { id: string }) => x.id)).toEqual(targets.map((t) => t.id));
    for (const row of rows) {
      expect(row.port).toBe(3000 + targets.find((t) => t.id === row.id)!.portOffset);
      expect(['runs', 'parses', 'rendered']).toContain(row.level);
      expect(['found', 'missing']).toContain(row.toolchain);
    }
  });

  it('run refuses a folder that was not generated', () => {
    const r = cli(['run', mkdtempSync(join(tmpdir(), 'cli-'))]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/is not a generated project/);
  });
});
