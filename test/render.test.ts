import { mkdtempSync, readFileSync, statSync, writeFileSync, existsSync, readdirSync, mkdirSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generate } from '../src/generate.js';
import { MARKER_FILE, renderTarget } from '../src/render.js';
import { normalizeSpec } from '../src/spec.js';
import { loadTargets } from '../src/targets.js';
import { refreshRendered, writeProject, DirectoryNotEmptyError } from '../src/write.js';
import { hardenedSpec } from '../src/smoke/variants.js';
import { NASTY } from './nasty.js';
import { templatesRoot } from './tmp-templates.js';

const fixtures = loadTargets(join(import.meta.dirname, 'fixtures', 'templates'));
const demo = fixtures.find((t) => t.id === 'demo')!;
const broken = fixtures.find((t) => t.id === 'broken')!;
const spec = normalizeSpec({ name: 'my-demo', auth: { required: true }, events: [{ name: 'x', every: 10, data: { s: NASTY.join('|') } }] });

describe('render', () => {
  it('renders .hbs files, copies others verbatim, renames _gitignore, keeps the executable bit', () => {
    const files = renderTarget(spec, demo);
    expect(files.map((f) => f.path)).toEqual([MARKER_FILE, '.gitignore', 'notes.txt', 'server.js', 'src/my_demo/mod.txt', 'start.sh']);
    const byPath = Object.fromEntries(files.map((f) => [f.path, f]));
    expect(byPath['notes.txt'].content.toString()).toBe('verbatim {{not a template}}\n');
    expect(byPath['src/my_demo/mod.txt'].content.toString()).toBe('module MyDemo\n');
    expect(byPath['start.sh'].executable).toBe(true);
    expect(byPath['server.js'].executable).toBe(false);
    expect(JSON.parse(byPath[MARKER_FILE].content.toString())).toEqual({ target: 'demo', path: '/events', events: ['x'], files: files.slice(1).map((f) => f.path) });
  });

  it('escapes values from the spec so the output is still valid code that holds them', () => {
    const source = renderTarget(spec, demo).find((f) => f.path === 'server.js')!.content.toString();
    const run = new Function(`${source}; return { required, events };`);
    expect(run()).toEqual({ required: true, events: [{ name: 'x', data: { s: NASTY.join('|') } }] });
  });

  it('writes a file named with {{only ...}} only when the condition holds; refuses broker: redis without a Redis broker', () => {
    const root = templatesRoot([{ id: 'demo', portOffset: 1, files: { '{{only redis "broker.txt"}}.hbs': 'log size {{brokerLogSize}}\n' } }]);
    const manifestPath = join(root, 'demo', 'target.json');
    const withBroker = loadTargets(root)[0];
    expect(renderTarget(spec, withBroker).map((f) => f.path)).not.toContain('broker.txt');
    expect(() => renderTarget({ ...spec, broker: 'redis' }, withBroker)).toThrow('broker: redis is not supported by demo: its template has no Redis broker');
    writeFileSync(manifestPath, JSON.stringify({ ...JSON.parse(readFileSync(manifestPath, 'utf8')), broker: { redis: { client: 'a client' } } }));
    const redis = renderTarget({ ...spec, broker: 'redis' }, loadTargets(root)[0]);
    expect(redis.find((f) => f.path === 'broker.txt')?.content.toString()).toBe('log size 1000\n');
  });

  it('fails on a missing variable (strict mode), naming the template', () => {
    expect(() => renderTarget(spec, broken)).toThrow(/templates\/broken\/files\/conf.hbs: "prot" not defined/);
  });

  it('is deterministic: byte-identical output, no dates or absolute paths', () => {
    for (const target of loadTargets()) {
      for (const s of [spec, hardenedSpec(spec)]) {
        const a = renderTarget(s, target);
        const b = renderTarget(s, target);
        expect(a).toEqual(b);
        for (const f of a) {
          const text = f.content.toString('utf8');
          expect(text, `${target.id}/${f.path}`).not.toContain(homedir());
          expect(text, `${target.id}/${f.path}`).not.toContain(process.cwd());
          expect(text, `${target.id}/${f.path}`).not.toMatch(new RegExp(new Date().toISOString().slice(0, 10)));
        }
      }
    }
  });
});

describe('writing a project', () => {
  const files = renderTarget(spec, demo);

  it('refuses a non-empty folder without force; with force keeps .git', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'write-'));
    writeFileSync(join(dir, 'mine.txt'), 'keep me');
    await expect(writeProject(dir, files)).rejects.toBeInstanceOf(DirectoryNotEmptyError);
    expect(readFileSync(join(dir, 'mine.txt'), 'utf8')).toBe('keep me');
    mkdirSync(join(dir, '.git'));
    writeFileSync(join(dir, '.git', 'HEAD'), 'ref');
    await writeProject(dir, files, { force: true });
    expect(existsSync(join(dir, 'mine.txt'))).toBe(false);
    expect(readFileSync(join(dir, '.git', 'HEAD'), 'utf8')).toBe('ref');
    expect(statSync(join(dir, 'start.sh')).mode & 0o111).not.toBe(0);
  });

  it('leaves nothing half-made when writing fails', async () => {
    const parent = mkdtempSync(join(tmpdir(), 'write-'));
    const bad = [...files, { path: 'server.js/oops', content: Buffer.from('x'), executable: false }];
    await expect(writeProject(join(parent, 'app'), bad)).rejects.toThrow();
    expect(readdirSync(parent)).toEqual([]);
  });

  it('refreshes a rendered folder: stale files go, build output stays', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'refresh-'));
    await refreshRendered(dir, files);
    mkdirSync(join(dir, 'node_modules'));
    await refreshRendered(dir, files.filter((f) => f.path !== 'notes.txt'));
    expect(existsSync(join(dir, 'notes.txt'))).toBe(false);
    expect(existsSync(join(dir, 'node_modules'))).toBe(true);
  });
});

describe('generate --check', () => {
  it('passes on a fresh render and names a changed, a missing and a stale file', async () => {
    const out = mkdtempSync(join(tmpdir(), 'gen-'));
    const ids = loadTargets().slice(0, 2).map((t) => t.id);
    if (!ids.length) return;
    await generate(spec, out, { targets: ids });
    expect((await generate(spec, out, { targets: ids, check: true })).differences).toEqual([]);
    const [first] = ids;
    const marker = JSON.parse(readFileSync(join(out, first, MARKER_FILE), 'utf8'));
    const [changed, missing] = marker.files.filter((f: string) => !f.startsWith('.'));
    writeFileSync(join(out, first, changed), 'edited by hand\n');
    const { rmSync } = await import('node:fs');
    rmSync(join(out, first, missing));
    marker.files.push('old-file.txt');
    writeFileSync(join(out, first, MARKER_FILE), JSON.stringify(marker));
    writeFileSync(join(out, first, 'old-file.txt'), 'from an older template');
    const { differences } = await generate(spec, out, { targets: ids, check: true });
    expect(differences).toEqual(expect.arrayContaining([
      { path: `${first}/${changed}`, problem: 'changed' },
      { path: `${first}/${missing}`, problem: 'missing' },
      { path: `${first}/old-file.txt`, problem: 'stale' },
      { path: `${first}/${MARKER_FILE}`, problem: 'changed' },
    ]));
    await generate(spec, out, { targets: ids });
    expect((await generate(spec, out, { targets: ids, check: true })).differences).toEqual([]);
    expect(existsSync(join(out, first, 'old-file.txt'))).toBe(false);
  });
});
