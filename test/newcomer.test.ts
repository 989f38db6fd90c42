// Issue 8 items 8-11: names, suggestions, `list`, and the smaller papercuts, as a user sees
// them (the CLI as a process, without a TTY, over a templates root made for the test).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { detectPackageManager, selfCommand } from '../src/create.js';
import { loadTargets, suggestTargets, type Target } from '../src/targets.js';
import { BIN, templatesRoot } from './tmp-templates.js';

const ROOT = templatesRoot([
  { id: 'alpha', portOffset: 1, install: [{ run: ['npm', 'install'] }], start: ['npm', 'start'] },
  {
    id: 'perlish',
    portOffset: 2,
    language: 'Perl',
    framework: 'Mojolicious 9',
    toolchain: [
      { check: ['node', '--version'], hint: 'Node.js' },
      { check: ['node', '-e', 'process.exit(3)'], hint: 'Perl 5.36 with Mojolicious 9.31 (Debian 12: apt install libmojolicious-perl)', debian: ['libmojolicious-perl'] },
    ],
  },
  // a "server" that runs until it is stopped, and says which pid it has
  { id: 'forever', portOffset: 3, start: ['node', '-e', "require('fs').writeFileSync('server.pid', String(process.pid)); setInterval(() => {}, 1000)"] },
]);

const cli = (args: string[], options: { cwd?: string; env?: Record<string, string> } = {}) =>
  spawnSync('node', [BIN, ...args], {
    cwd: options.cwd ?? mkdtempSync(join(tmpdir(), 'cwd-')),
    encoding: 'utf8',
    input: '',
    timeout: 60_000,
    env: { ...process.env, CI: 'true', CREATE_SSE_SERVER_TEMPLATES: ROOT, npm_config_user_agent: '', ...options.env },
  });


describe('item 8: names', () => {
  it('next steps quote the folder: cd into "My App" works when pasted', () => {
    const cwd = mkdtempSync(join(tmpdir(), 'cwd-'));
    const r = cli(['My App', '--target', 'alpha', '--yes'], { cwd });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain("  cd 'My App'\n");
    expect(existsSync(join(cwd, 'My App', '.create-sse-server.json'))).toBe(true);
  });

  it('a folder name with a control character (a Ctrl-U typed in the picker) is refused', () => {
    const cwd = mkdtempSync(join(tmpdir(), 'cwd-'));
    const r = cli(['\x15pty-app', '--target', 'alpha', '--yes'], { cwd });
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe('error: folder name "\\u0015pty-app" holds a control character (U+0015); type it again');
    expect(readdirSync(cwd)).toEqual([]);
  });

  it('help [command] shows help, and never scaffolds a folder named help', () => {
    const cwd = mkdtempSync(join(tmpdir(), 'cwd-'));
    const r = cli(['help', '--target', 'alpha', '--yes'], { cwd });
    expect(r.stdout).toMatch(/^Usage: create-sse-server /);
    expect(readdirSync(cwd)).toEqual([]);
    const smoke = cli(['help', 'smoke'], { cwd });
    expect(smoke.status).toBe(0);
    expect(smoke.stdout).toMatch(/^Usage: create-sse-server smoke /);
  });

  it('a bare word close to a command asks "did you mean"', () => {
    const cwd = mkdtempSync(join(tmpdir(), 'cwd-'));
    const r = cli(['lsit'], { cwd });
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe('error: "lsit" is not a command: did you mean `list`? (to create a folder named lsit, pass ./lsit) (see create-sse-server --help)');
    expect(cli(['genrate'], { cwd }).stderr).toContain('did you mean `generate`?');
    expect(readdirSync(cwd)).toEqual([]);
  });
});

describe('item 9: suggestions match languages, frameworks and informal names', () => {
  const t = (id: string, language: string, framework: string) => ({ id, language, framework }) as Target;
  const all = [
    t('node-express', 'JavaScript', 'Express 5'), t('python-flask', 'Python', 'Flask'), t('python-fastapi', 'Python', 'FastAPI'),
    t('go-stdlib', 'Go', 'net/http (standard library)'), t('php', 'PHP', 'plain PHP (no framework)'), t('java-spring-boot', 'Java', 'Spring Boot 3'),
    t('csharp-aspnetcore', 'C#', 'ASP.NET Core 8'), t('typescript-express', 'TypeScript', 'Express 5'), t('deno-oak', 'TypeScript (Deno)', 'Oak'),
  ];
  const ids = (q: string) => suggestTargets(q, all).map((x) => x.id);
  it('golang, go, fastapi, spring, dotnet, node, ts, flask, a typo', () => {
    expect(ids('golang')).toEqual(['go-stdlib']);
    expect(ids('go')).toEqual(['go-stdlib']);
    expect(ids('fastapi')).toEqual(['python-fastapi']);
    expect(ids('spring')).toEqual(['java-spring-boot']);
    expect(ids('dotnet')).toEqual(['csharp-aspnetcore']);
    expect(ids('node')).toEqual(['node-express']);
    expect(ids('ts')).toEqual(['typescript-express', 'deno-oak']);
    expect(ids('python')).toEqual(['python-flask', 'python-fastapi']);
    expect(ids('pyhton-flask')).toEqual(['python-flask']);
    expect(ids('cobol')).toEqual([]);
  });

  it('the CLI says it in one line', () => {
    const real = loadTargets();
    if (!real.some((x) => x.id === 'go-stdlib') || !real.some((x) => x.id === 'python-fastapi')) return;
    const golang = cli(['app', '--target', 'golang'], { env: { CREATE_SSE_SERVER_TEMPLATES: '' } });
    expect(golang.stderr).toMatch(/^error: unknown target "golang" \(did you mean go-stdlib\?\)\. Targets: /);
    const fastapi = cli(['app', '--target', 'fastapi'], { env: { CREATE_SSE_SERVER_TEMPLATES: '' } });
    expect(fastapi.stderr).toMatch(/^error: unknown target "fastapi" \(did you mean python-fastapi\?\)/);
  });
});

describe('item 10: list', () => {
  it('has a header, aligned columns, names the missing piece and how to install it', () => {
    const r = cli(['list']);
    expect(r.status).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(/^target\s+language\s+framework\s+port\s+verified\s+here$/);
    const rows = lines.filter((l) => /^(alpha|perlish|forever) /.test(l));
    expect(rows).toHaveLength(3);
    const col = (line: string, word: string) => line.indexOf(word);
    for (const row of rows) expect(col(row, 'rendered')).toBe(col(lines[0], 'verified'));
    expect(r.stdout).toMatch(/^perlish\s+Perl\s+Mojolicious 9\s+3002\s+rendered\s+toolchain missing$/m);
    expect(r.stdout).toContain('    needs Perl 5.36 with Mojolicious 9.31: apt-get install libmojolicious-perl');
    expect(r.stdout).not.toMatch(/missing: node/);
    expect(r.stdout).toMatch(/^alpha .* ready$/m);
  });
});

describe('item 11: smaller', () => {
  it('--version prints the version', () => {
    const r = cli(['--version']);
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(JSON.parse(readFileSync(join(import.meta.dirname, '..', 'package.json'), 'utf8')).version);
  });

  it('a usage error is one line and a pointer to --help, not the whole help', () => {
    const r = cli(['--bogus']);
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual(["error: unknown option '--bogus'", '(see create-sse-server --help)']);
  });

  it('run names a folder that does not exist as such', () => {
    const r = cli(['run', 'nope']);
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe('error: nope does not exist; create a project first (create-sse-server nope --target ID)');
  });

  it('next steps speak the package manager that started us (npm_config_user_agent)', () => {
    expect(detectPackageManager('pnpm/9.12.0 npm/? node/v20.19.0 linux x64')).toBe('pnpm');
    expect(detectPackageManager('yarn/4.5.0 npm/? node/v20.19.0')).toBe('yarn');
    expect(detectPackageManager('bun/1.1.0 npm/? node/v22 linux x64')).toBe('bun');
    expect(detectPackageManager('npm/10.8.2 node/v20.19.0')).toBe('npm');
    expect(selfCommand('pnpm', '/home/me/.cache/pnpm/dlx/abc/node_modules/create-sse-server')).toBe('pnpm dlx create-sse-server');
    expect(selfCommand('npm', '/home/me/.npm/_npx/1234/node_modules/create-sse-server')).toBe('npx create-sse-server');
    const cwd = mkdtempSync(join(tmpdir(), 'cwd-'));
    const r = cli(['app', '--target', 'alpha', '--yes'], { cwd, env: { npm_config_user_agent: 'pnpm/9.12.0 npm/? node/v20.19.0 linux x64' } });
    expect(r.stdout).toContain('  pnpm install\n  pnpm start\n');
  });

  it('package.json does not claim more languages than there are targets', () => {
    const { description } = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'package.json'), 'utf8'));
    const claimed = Number(description.match(/(\d+) languages/)?.[1] ?? 0);
    expect(claimed).toBeLessThanOrEqual(new Set(loadTargets().map((x) => x.language)).size);
  });

  const hasScript = spawnSync('script', ['--version']).status === 0;
  it.skipIf(!hasScript)('in a terminal, answering "no" to replacing a folder exits 1; Ctrl-C exits 130', async () => {
    // `script` gives the CLI a pseudo-terminal, so it asks as it would a user
    const answer = (keys: string) =>
      new Promise<{ code: number | null; output: string }>((resolve) => {
        const dir = mkdtempSync(join(tmpdir(), 'tty-'));
        writeFileSync(join(dir, 'mine.txt'), 'mine');
        const child = spawn('script', ['-qec', `node ${BIN} ${dir} --target alpha --port 4000`, '/dev/null'], { env: { ...process.env, CI: '', CREATE_SSE_SERVER_TEMPLATES: ROOT } });
        let output = '';
        child.stdout.on('data', (c) => {
          output += c;
          if (output.includes('(y/N)') && !child.stdin.writableEnded) child.stdin.end(keys);
        });
        child.on('exit', (code) => {
          expect(readFileSync(join(dir, 'mine.txt'), 'utf8')).toBe('mine');
          resolve({ code, output });
        });
      });
    const no = await answer('n');
    expect(no.code).toBe(1);
    expect(no.output).toMatch(/error: .* was left as it was; nothing was written/);
    const interrupted = await answer('\x03');
    expect(interrupted.code).toBe(130);
  }, 30_000);

  it('kill -9 of `run` does not leave the server serving', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'run-')), 'app');
    expect(cli([dir, '--target', 'forever', '--yes']).status).toBe(0);
    const run = spawn('node', [BIN, 'run', dir], { env: { ...process.env, CREATE_SSE_SERVER_TEMPLATES: ROOT }, stdio: 'ignore' });
    const pidFile = join(dir, 'server.pid');
    const deadline = Date.now() + 20_000;
    while (!existsSync(pidFile) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 200));
    const server = Number(readFileSync(pidFile, 'utf8'));
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    expect(alive(server)).toBe(true);
    run.kill('SIGKILL');
    const until = Date.now() + 10_000;
    while (alive(server) && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    expect(alive(server)).toBe(false);
  }, 60_000);
});
