// Issue 8, items 1-3 and 7: the CLI never destroys a user's files, never touches a path
// outside the folder the user named, and writes each target whole or not at all.
// The `/` case runs in a temporary root that stands for it, never the real one.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import lockfile from 'proper-lockfile';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generate } from '../src/generate.js';
import { MARKER_FILE, renderTarget } from '../src/render.js';
import { normalizeSpec } from '../src/spec.js';
import { loadTargets } from '../src/targets.js';
import { writeProject } from '../src/write.js';
import { defaultWorkDir } from '../src/smoke/smoke.js';
import { BIN, templatesRoot } from './tmp-templates.js';

const ROOT = templatesRoot([
  { id: 'alpha', portOffset: 1 },
  { id: 'beta', portOffset: 2 },
]);
const [alpha] = loadTargets(ROOT);
const files = renderTarget(normalizeSpec({ name: 'new-app' }), alpha);

const cli = (args: string[], options: { cwd?: string; env?: Record<string, string> } = {}) =>
  spawnSync('node', [BIN, ...args], {
    cwd: options.cwd ?? tmpdir(),
    encoding: 'utf8',
    input: '',
    timeout: 20_000,
    env: { ...process.env, CI: 'true', CREATE_SSE_SERVER_TEMPLATES: ROOT, ...options.env },
  });

/** A user's folder: seven files and a sub-folder, as they were. */
function userFolder(): { dir: string; snapshot: () => Record<string, string> } {
  const dir = mkdtempSync(join(tmpdir(), 'user-'));
  for (let i = 1; i <= 6; i++) writeFileSync(join(dir, `file${i}.txt`), `mine ${i}`);
  mkdirSync(join(dir, 'docs'));
  writeFileSync(join(dir, 'docs', 'plan.md'), 'my plan');
  const snapshot = () => {
    const out: Record<string, string> = {};
    const walk = (d: string, p: string) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        if (e.isDirectory()) walk(join(d, e.name), `${p}${e.name}/`);
        else out[`${p}${e.name}`] = readFileSync(join(d, e.name), 'utf8');
      }
    };
    walk(dir, '');
    return out;
  };
  return { dir, snapshot };
}

/** Make a path impossible to move or change: `chattr +i` as root, a read-only folder otherwise. */
const immutable: string[] = [];
function makeImmovable(path: string) {
  if (process.getuid?.() === 0) {
    execFileSync('chattr', ['+i', path]);
    immutable.push(path);
  } else {
    mkdirSync(path, { recursive: true });
    execFileSync('chmod', ['0555', path]);
  }
}
afterAll(() => {
  for (const p of immutable) spawnSync('chattr', ['-i', p]);
});


describe('item 1: scaffold --force never loses a user file', () => {
  it('refuses the filesystem root (a temporary root stands for /), the home folder and folders that hold the current one', async () => {
    const root = mkdtempSync(join(tmpdir(), 'fake-root-'));
    mkdirSync(join(root, 'home', 'me', 'work'), { recursive: true });
    writeFileSync(join(root, 'etc-passwd'), 'root:x:0:0');
    const guard = { root, home: join(root, 'home', 'me'), cwd: join(root, 'home', 'me', 'work') };
    await expect(writeProject(root, files, { force: true, guard })).rejects.toThrow(/refusing to write into .*: it is the root of the filesystem/);
    await expect(writeProject(join(root, 'home', 'me'), files, { force: true, guard })).rejects.toThrow(/it is your home folder/);
    await expect(writeProject(join(root, 'home'), files, { force: true, guard })).rejects.toThrow(/it holds the current folder/);
    expect(readFileSync(join(root, 'etc-passwd'), 'utf8')).toBe('root:x:0:0');
    expect(readdirSync(root).sort()).toEqual(['etc-passwd', 'home']);
    expect(readdirSync(join(root, 'home', 'me'))).toEqual(['work']);
  });

  it('the CLI refuses $HOME and a parent of the current folder in one line, and touches nothing', () => {
    const { dir: home, snapshot } = userFolder();
    mkdirSync(join(home, 'projects', 'here'), { recursive: true });
    const before = snapshot();
    const r1 = cli([home, '--target', 'alpha', '--yes', '--force'], { env: { HOME: home } });
    expect(r1.status).toBe(1);
    expect(r1.stderr.trim()).toBe(`error: refusing to write into ${home}: it is your home folder; name a new folder inside it`);
    const r2 = cli([join(home, 'projects'), '--target', 'alpha', '--yes', '--force'], { cwd: join(home, 'projects', 'here') });
    expect(r2.status).toBe(1);
    expect(r2.stderr.trim()).toMatch(/^error: refusing to write into .*projects: it holds the current folder/);
    expect(snapshot()).toEqual(before);
  });

  it('with one file that cannot be moved, --force keeps every user file, writes no project, and says so in one line', () => {
    const { dir, snapshot } = userFolder();
    makeImmovable(join(dir, 'file6.txt'));
    const before = snapshot();
    const r = cli([dir, '--target', 'alpha', '--yes', '--force']);
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^error: cannot move .*file6.txt aside: EPERM; everything was put back/);
    expect(snapshot()).toEqual(before);
    expect(readdirSync(dir).sort()).toEqual(Object.keys(before).map((p) => p.split('/')[0]).filter((v, i, a) => a.indexOf(v) === i).sort());
  });

  it('a failure while moving the new files in puts the old contents back', async () => {
    const { dir, snapshot } = userFolder();
    mkdirSync(join(dir, '.git'));
    writeFileSync(join(dir, '.git', 'HEAD'), 'ref');
    const before = snapshot();
    // `.git` is kept, so a rendered `.git/x` cannot be moved onto it: the swap fails half-way.
    const clash = [...files, { path: '.git/x', content: Buffer.from('x'), executable: false }];
    await expect(writeProject(dir, clash, { force: true })).rejects.toThrow(/cannot move the new .git into .*; everything was put back/);
    expect(snapshot()).toEqual(before);
  });

  it.skipIf(!existsSync('/proc/self'))('a folder that cannot be created fails in one line (Node\'s recursive mkdir loops forever under /proc)', () => {
    const r = cli(['/proc/no-such-dir/app', '--target', 'alpha', '--yes']);
    expect(r.signal).toBeNull();
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe('error: cannot create /proc/no-such-dir/app: ENOENT');
  });

  it('writes the new project completely before the old files go', async () => {
    const { dir } = userFolder();
    await writeProject(dir, files, { force: true });
    const marker = JSON.parse(readFileSync(join(dir, MARKER_FILE), 'utf8'));
    expect(readdirSync(dir).sort()).toEqual([...new Set(marker.files.map((f: string) => f.split('/')[0]))].concat(MARKER_FILE).sort());
  });
});

describe('item 2: the marker file cannot make generate delete outside its folder', () => {
  it('ignores and reports entries that leave OUT/<id>/ (.., absolute, through a symlink)', async () => {
    const base = mkdtempSync(join(tmpdir(), 'marker-'));
    const out = join(base, 'out');
    const spec = normalizeSpec({ name: 'app' });
    await generate(spec, out, { templates: ROOT, targets: ['alpha'] });
    writeFileSync(join(base, 'VICTIM.txt'), 'precious');
    const outside = mkdtempSync(join(tmpdir(), 'outside-'));
    writeFileSync(join(outside, 'other.txt'), 'precious too');
    symlinkSync(outside, join(out, 'alpha', 'link'));
    const marker = JSON.parse(readFileSync(join(out, 'alpha', MARKER_FILE), 'utf8'));
    marker.files.push('../../VICTIM.txt', join(base, 'VICTIM.txt'), 'link/other.txt', 'a/./b', '');
    writeFileSync(join(out, 'alpha', MARKER_FILE), JSON.stringify(marker));
    const reported: string[] = [];
    await generate(spec, out, { templates: ROOT, targets: ['alpha'], report: (l) => reported.push(l) });
    expect(readFileSync(join(base, 'VICTIM.txt'), 'utf8')).toBe('precious');
    expect(readFileSync(join(outside, 'other.txt'), 'utf8')).toBe('precious too');
    expect(reported.join('\n')).toContain('ignored "../../VICTIM.txt" (not a relative path inside the folder)');
    expect(reported.join('\n')).toContain('ignored "link/other.txt" (it leads through a symlink)');
  });
});

describe('item 2, from the command line', () => {
  it('a marker listing ../../VICTIM.txt (an untrusted branch) leaves VICTIM.txt alone and says so', () => {
    const base = mkdtempSync(join(tmpdir(), 'marker-'));
    const out = join(base, 'OUT');
    const spec = join(base, 's.yaml');
    writeFileSync(spec, 'name: app\n');
    expect(cli(['generate', '--spec', spec, '--out', out, '--target', 'alpha']).status).toBe(0);
    writeFileSync(join(base, 'VICTIM.txt'), 'precious');
    const marker = JSON.parse(readFileSync(join(out, 'alpha', MARKER_FILE), 'utf8'));
    marker.files.push('../../VICTIM.txt');
    writeFileSync(join(out, 'alpha', MARKER_FILE), JSON.stringify(marker));
    const r = cli(['generate', '--spec', spec, '--out', out, '--target', 'alpha']);
    expect(r.status).toBe(0);
    expect(readFileSync(join(base, 'VICTIM.txt'), 'utf8')).toBe('precious');
    expect(r.stderr).toContain('ignored "../../VICTIM.txt" (not a relative path inside the folder)');
  });
});

describe('item 3: generate writes each target whole or not at all, one run at a time', () => {
  const snapshot = (dir: string) => Object.fromEntries(readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => [join(e.parentPath, e.name), readFileSync(join(e.parentPath, e.name), 'utf8')]));

  it('a write failure in one target changes no target and prints one line', () => {
    const out = mkdtempSync(join(tmpdir(), 'gen-'));
    const spec1 = join(out, '..', `${out.split('/').pop()}-1.yaml`);
    const spec2 = join(out, '..', `${out.split('/').pop()}-2.yaml`);
    writeFileSync(spec1, 'name: first-app\n');
    writeFileSync(spec2, 'name: renamed-app\n');
    expect(cli(['generate', '--spec', spec1, '--out', out]).status).toBe(0);
    makeImmovable(join(out, 'beta', 'notes.txt'));
    const before = snapshot(out);
    const r = cli(['generate', '--spec', spec2, '--out', out]);
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^error: cannot move .*beta\/notes.txt aside: EPERM; everything was put back; no target was changed/);
    expect(snapshot(out)).toEqual(before);
    expect(existsSync(join(out, 'alpha', 'src', 'renamed_app'))).toBe(false);
  });

  it('a second run waits for the lock of OUT, then refuses with a clear message', async () => {
    const out = mkdtempSync(join(tmpdir(), 'gen-'));
    const release = await lockfile.lock(out, { lockfilePath: join(out, '.create-sse-server.lock'), realpath: false });
    try {
      await expect(generate(normalizeSpec({}), out, { templates: ROOT, lockWaitMs: 300 })).rejects.toThrow(/is being written by another create-sse-server run .*wait for it to finish/);
      expect(readdirSync(out)).toEqual(['.create-sse-server.lock']);
    } finally {
      await release();
    }
  });

  it('two concurrent runs with different specs leave every target as one complete render', async () => {
    const out = mkdtempSync(join(tmpdir(), 'gen-'));
    const specs = ['one-app', 'two-app'].map((name) => {
      const file = join(mkdtempSync(join(tmpdir(), 'spec-')), 's.yaml');
      writeFileSync(file, `name: ${name}\n`);
      return file;
    });
    const run = (spec: string) =>
      new Promise<number | null>((resolve) => {
        const child = spawn('node', [BIN, 'generate', '--spec', spec, '--out', out], { env: { ...process.env, CREATE_SSE_SERVER_TEMPLATES: ROOT }, stdio: 'ignore' });
        child.on('exit', resolve);
      });
    expect(await Promise.all(specs.map(run))).toEqual([0, 0]);
    const names = ['alpha', 'beta'].map((id) => readdirSync(join(out, id, 'src')));
    expect(names[0]).toHaveLength(1);
    expect(names[1]).toEqual(names[0]);
  });

  it('refuses an --out that is a file or a dangling symlink, in one line', () => {
    const base = mkdtempSync(join(tmpdir(), 'gen-'));
    writeFileSync(join(base, 'file'), 'x');
    symlinkSync(join(base, 'nowhere'), join(base, 'dangling'));
    const spec = join(base, 's.yaml');
    writeFileSync(spec, 'name: app\n');
    const asFile = cli(['generate', '--spec', spec, '--out', join(base, 'file')]);
    expect(asFile.status).toBe(1);
    expect(asFile.stderr.trim()).toBe(`error: --out ${join(base, 'file')} is a file, not a folder; name a folder`);
    const dangling = cli(['generate', '--spec', spec, '--out', join(base, 'dangling')]);
    expect(dangling.status).toBe(1);
    expect(dangling.stderr.trim()).toBe(`error: --out ${join(base, 'dangling')} is a dangling symlink; remove it or name another folder`);
    expect(existsSync(join(base, 'nowhere'))).toBe(false);
  });

  it('smoke builds in a work folder of its own per clone', () => {
    expect(defaultWorkDir('/home/me/clone-a')).not.toBe(defaultWorkDir('/home/me/clone-b'));
    expect(defaultWorkDir('/home/me/clone-a')).toBe(defaultWorkDir('/home/me/clone-a'));
  });
});

describe("item 7: files follow the user's umask", () => {
  const withUmask = (mask: string, args: string[]) =>
    spawnSync('sh', ['-c', `umask ${mask}; exec node "$@"`, 'sh', BIN, ...args], { encoding: 'utf8', env: { ...process.env, CI: 'true', CREATE_SSE_SERVER_TEMPLATES: ROOT } });
  const mode = (p: string) => statSync(p).mode & 0o777;

  it('scaffold and generate give 755/644 under umask 022 and 750/640 under 027', () => {
    for (const [mask, dirMode, fileMode] of [['022', 0o755, 0o644], ['027', 0o750, 0o640]] as const) {
      const parent = mkdtempSync(join(tmpdir(), 'umask-'));
      const r = withUmask(mask, [join(parent, 'app'), '--target', 'alpha', '--yes']);
      expect(r.status, r.stderr).toBe(0);
      expect(mode(join(parent, 'app')).toString(8)).toBe(dirMode.toString(8));
      expect(mode(join(parent, 'app', 'src')).toString(8)).toBe(dirMode.toString(8));
      expect(mode(join(parent, 'app', 'notes.txt')).toString(8)).toBe(fileMode.toString(8));
      expect(mode(join(parent, 'app', 'start.sh')).toString(8)).toBe(dirMode.toString(8));
      const spec = join(parent, 's.yaml');
      writeFileSync(spec, 'name: app\n');
      expect(withUmask(mask, ['generate', '--spec', spec, '--out', join(parent, 'out')]).status).toBe(0);
      expect(mode(join(parent, 'out', 'alpha')).toString(8)).toBe(dirMode.toString(8));
      expect(mode(join(parent, 'out', 'alpha', 'notes.txt')).toString(8)).toBe(fileMode.toString(8));
      rmSync(parent, { recursive: true });
    }
  });
});
