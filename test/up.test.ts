// `create-sse-server up` as a user runs it: every runs target of a folder comes up on its own
// port with a fresh publish token; one that cannot start is reported while the others go on;
// Ctrl-C stops them all and leaves no process behind.
import { execa } from 'execa';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generate } from '../src/generate.js';
import { processTree } from '../src/process-tree.js';
import { MARKER_FILE } from '../src/render.js';
import { loadSpec } from '../src/spec.js';
import { loadTargets } from '../src/targets.js';
import { checkToolchain } from '../src/toolchain.js';

const TARGETS = ['node-express', 'go-stdlib'];
const missing = (
  await Promise.all(loadTargets().filter((t) => TARGETS.includes(t.id)).map(async (t) => ((await checkToolchain(t)).every((s) => s.found) ? [] : [t.id])))
).flat();
if (missing.length && process.env.CI) throw new Error(`up test cannot run in CI: toolchain missing for ${missing.join(', ')}`);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(missing.length > 0)('up', () => {
  it('starts every runs target, reports one that fails, and stops them all on Ctrl-C', async () => {
    const out = mkdtempSync(join(tmpdir(), 'sse-up-'));
    await generate(await loadSpec('examples/sse.spec.yaml'), out, { targets: TARGETS });
    // A project whose build fails: reported, and the others still come up.
    const broken = join(out, 'broken-go');
    mkdirSync(broken);
    writeFileSync(join(broken, MARKER_FILE), JSON.stringify({ target: 'go-stdlib', path: '/events', events: [], files: [] }));
    writeFileSync(join(broken, 'main.go'), 'package main\nthis is not Go\n');
    writeFileSync(join(broken, 'go.mod'), 'module broken\n\ngo 1.22\n');
    const base = 20000 + Math.floor(Math.random() * 20000);
    const child = execa('node', ['bin/create-sse-server.js', 'up', out, '--port-base', String(base)], { all: true, reject: false });
    let output = '';
    child.all!.on('data', (c: Buffer) => (output += c.toString()));
    const deadline = Date.now() + 240_000;
    while (Date.now() < deadline && !/of \d+ up;/.test(output)) await sleep(200);
    expect(output).toMatch(/of 3 up;/);
    const ports = loadTargets().filter((t) => TARGETS.includes(t.id)).map((t) => base + t.portOffset);
    for (const port of ports) {
      expect(output).toMatch(new RegExp(`\\s${port}\\s+up\\s+http://127\\.0\\.0\\.1:${port}`));
      const health = await (await fetch(`http://127.0.0.1:${port}/health`)).json();
      expect(health).toEqual({ status: 'ok', clients: 0 });
    }
    expect(output).toMatch(/go-stdlib\s+\d+\s+failed\s+go-stdlib: `go build/);
    const tree = processTree(child.pid!).map((p) => p.pid);
    expect(tree.length).toBeGreaterThan(2);
    child.kill('SIGINT');
    const result = await child;
    expect(result.exitCode).toBe(0);
    expect(output).toMatch(/all stopped/);
    await sleep(300);
    const alive = tree.filter((pid) => {
      try {
        process.kill(pid, 0);
        return processTree(pid).length > 0;
      } catch {
        return false;
      }
    });
    expect(alive).toEqual([]);
    for (const port of ports) await expect(fetch(`http://127.0.0.1:${port}/health`)).rejects.toThrow();
  }, 300_000);
});

// `up --instances 2 --broker redis`: a local Redis, two instances of a target, one stream.
const redisServer = (await execa('redis-server', ['--version'], { reject: false }).catch(() => ({ exitCode: 1 }))).exitCode === 0;
if (!redisServer && process.env.CI) throw new Error('up --broker redis cannot run in CI: redis-server is missing');
describe.skipIf(missing.includes('go-stdlib') || !redisServer)('up --instances 2 --broker redis', () => {
  it('starts a Redis and two go-stdlib instances; a publish on one reaches a stream on the other', async () => {
    const out = mkdtempSync(join(tmpdir(), 'sse-up-broker-'));
    await generate(await loadSpec('examples/sse.spec.yaml'), out, { targets: ['go-stdlib'] });
    const base = 20000 + Math.floor(Math.random() * 20000);
    const child = execa('node', ['bin/create-sse-server.js', 'up', out, '--port-base', String(base), '--instances', '2', '--broker', 'redis'], { all: true, reject: false });
    let output = '';
    child.all!.on('data', (c: Buffer) => (output += c.toString()));
    const deadline = Date.now() + 240_000;
    while (Date.now() < deadline && !/of \d+ up;/.test(output)) await sleep(200);
    expect(output).toMatch(/of 2 up;/);
    expect(output).toMatch(/redis: 127\.0\.0\.1:\d+ /);
    expect(output, "the Redis password is not printed").not.toMatch(/redis:\/\/default:/);
    const offset = loadTargets().find((t) => t.id === 'go-stdlib')!.portOffset;
    const [one, two] = [base + offset, base + offset + 100];
    expect(output).toMatch(new RegExp(`go-stdlib#1\\s+${one}\\s+up`));
    expect(output).toMatch(new RegExp(`go-stdlib#2\\s+${two}\\s+up`));
    for (const port of [one, two]) {
      const health = await (await fetch(`http://127.0.0.1:${port}/health`)).json();
      expect(health.broker).toEqual({ type: 'redis', connected: true });
    }
    // the token is in the servers' environment only: read it from the first one's /proc
    const cmdline = (pid: number) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      } catch {
        return '';
      }
    };
    const server = processTree(child.pid!).find((p) => cmdline(p.pid).includes('build/server'));
    expect(server, 'the go-stdlib server process').toBeDefined();
    const environ = readFileSync(`/proc/${server!.pid}/environ`, 'utf8').split('\0');
    const token = environ.find((e) => e.startsWith('SSE_PUBLISH_TOKEN='))!.slice('SSE_PUBLISH_TOKEN='.length);
    const stream = await fetch(`http://127.0.0.1:${two}/events`);
    const reader = stream.body!.getReader();
    const published = await fetch(`http://127.0.0.1:${one}/publish`, { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` }, body: JSON.stringify({ event: 'notification', data: { text: 'from one' } }) });
    expect(published.status).toBe(202);
    const { id } = await published.json();
    let text = '';
    const until = Date.now() + 10_000;
    while (Date.now() < until && !text.includes('from one')) text += new TextDecoder().decode((await reader.read()).value);
    expect(text).toContain(`id: ${id}\nevent: notification\ndata: {"text":"from one"}`);
    await reader.cancel();
    child.kill('SIGINT');
    expect((await child).exitCode).toBe(0);
    for (const port of [one, two]) await expect(fetch(`http://127.0.0.1:${port}/health`)).rejects.toThrow();
  }, 300_000);
});
