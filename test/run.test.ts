// `run` end to end with a real target (node-express: needs npm and the registry).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadTargets } from '../src/targets.js';

const BIN = join(import.meta.dirname, '..', 'bin', 'create-sse-server.js');
const cli = (args: string[], cwd = tmpdir()) =>
  spawnSync('node', [BIN, ...args], { cwd, encoding: 'utf8', input: '', timeout: 30_000, env: { ...process.env, CI: 'true' } });
const targets = loadTargets();


describe('create-sse-server run', () => {
  const node = targets.find((t) => t.id === 'node-express');
  it.skipIf(!node)('builds and starts a generated folder on PORT, forwards SIGTERM, exits with the server code and leaves no process', async () => {
    const { spawn } = await import('node:child_process');
    const { freePort } = await import('../src/smoke/harness.js');
    const { request } = await import('../src/smoke/client.js');
    const dir = join(mkdtempSync(join(tmpdir(), 'cli-run-')), 'app');
    expect(cli([dir, '--target', 'node-express', '--yes']).status).toBe(0);
    const port = await freePort();
    const child = spawn('node', [BIN, 'run', dir], { env: { ...process.env, PORT: String(port), HOST: '127.0.0.1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c) => (output += c));
    child.stderr.on('data', (c) => (output += c));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const deadline = Date.now() + 120_000;
    let health = '';
    while (Date.now() < deadline && !health) {
      health = await request(`http://127.0.0.1:${port}/health`).then((r) => r.body, () => '');
      if (!health) await new Promise((r) => setTimeout(r, 200));
    }
    expect(JSON.parse(health), output).toEqual({ status: 'ok', clients: 0 });
    expect(output).toContain(String(port));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    const { canConnect } = await import('../src/smoke/client.js');
    expect(await canConnect('127.0.0.1', port)).toBe(false);
  }, 180_000);
});
