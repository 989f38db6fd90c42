import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadSpec, normalizeSpec, parseSpecText, SpecError } from '../src/spec.js';

function problems(input: unknown): string[] {
  try {
    normalizeSpec(input);
  } catch (error) {
    expect(error).toBeInstanceOf(SpecError);
    return (error as SpecError).problems;
  }
  throw new Error('spec was accepted');
}

describe('spec', () => {
  it('fills every default from the contract', () => {
    const spec = normalizeSpec({});
    expect(spec).toMatchObject({
      name: 'sse-server', port: 3000, path: '/events', retry: 3000, heartbeat: 15, history: 100, maxClients: 10000,
      cors: { origins: ['*'], credentials: false }, auth: { required: false }, publish: { enabled: true },
    });
    expect(spec.events.length).toBeGreaterThan(0);
    expect(normalizeSpec({ events: [{ name: 'a' }] }).events[0]).toEqual({ name: 'a', every: 0, data: {} });
  });

  it('names the field and the rule of every error', () => {
    expect(problems({ events: [{ name: 'ok' }, { name: 'Bad Name' }] })).toEqual(['events[1].name: must match ^[a-z][a-z0-9_-]*$']);
    expect(problems({ port: 70000 })).toEqual(['port: must be <= 65535']);
    expect(problems({ retry: '3000' })).toEqual(['retry: must be integer']);
    expect(problems({ name: 'My App' })).toEqual(['name: must match ^[a-z][a-z0-9]*(-[a-z][a-z0-9]*)*$']);
    expect(problems({ path: 'events' })[0]).toMatch(/^path: must match/);
    expect(problems({ cors: { origins: ['ftp://x'] } })).toEqual(['cors.origins[0]: must be "*" or an origin like https://example.com']);
    expect(problems({ events: [{ every: 5 }] })).toEqual(['events[0].name: is required']);
  });

  it('reports every problem at once', () => {
    expect(problems({ port: 0, heartbeat: -1, events: [{ name: '1x', every: -5 }] })).toHaveLength(4);
  });

  it('refuses unknown fields, so a typo cannot pass silently', () => {
    expect(problems({ heartbeats: 5 })).toEqual(['heartbeats: unknown field']);
    expect(problems({ cors: { origin: ['*'] } })).toEqual(['cors.origin: unknown field']);
    expect(problems({ events: [{ name: 'a', evry: 100 }] })).toEqual(['events[0].evry: unknown field']);
  });

  it('refuses combinations the contract forbids', () => {
    expect(problems({ cors: { origins: ['*'], credentials: true } })[0]).toMatch(/^cors.credentials: /);
    expect(problems({ events: [{ name: 'a' }, { name: 'a' }] })).toEqual(['events[1].name: duplicate event name "a"']);
    expect(problems({ events: [{ name: 'a', data: { timestamp: 1 } }] })[0]).toMatch(/^events\[0\].data.timestamp: reserved/);
    expect(problems({ path: '/health' })).toEqual(['path: /health is reserved']);
  });

  it('refuses tokens in the spec (contract v2: secrets come from the environment)', () => {
    expect(problems({ auth: { token: 'secret' } })).toEqual([
      "auth.token: secrets no longer go in the spec; remove it and set SSE_TOKEN in the server's environment",
    ]);
    expect(problems({ publish: { enabled: true, token: 'secret' } })[0]).toMatch(/^publish.token: .*SSE_PUBLISH_TOKEN/);
    expect(problems({ auth: { required: 'yes' } })[0]).toMatch(/^auth.required: must be boolean/);
    expect(normalizeSpec({ auth: { required: true } }).auth).toEqual({ required: true });
  });

  it('reads YAML and JSON, and names a syntax error', async () => {
    expect(parseSpecText('name: demo\nport: 4000\n', 'x.yaml')).toMatchObject({ name: 'demo', port: 4000 });
    expect(parseSpecText('{"name": "demo"}', 'x.json').name).toBe('demo');
    expect(() => parseSpecText('name: [', 'x.yaml')).toThrow(/not valid YAML/);
    expect(() => parseSpecText('{', 'x.json')).toThrow(/not valid JSON/);
    const dir = mkdtempSync(join(tmpdir(), 'spec-'));
    writeFileSync(join(dir, 's.yaml'), 'events:\n  - name: ok\n  - name: NO\n');
    await expect(loadSpec(join(dir, 's.yaml'))).rejects.toThrow('events[1].name: must match ^[a-z][a-z0-9_-]*$');
    await expect(loadSpec(join(dir, 'missing.yaml'))).rejects.toThrow(/cannot read the spec file: ENOENT/);
  });

  it('accepts the example spec', async () => {
    const spec = await loadSpec('examples/sse.spec.yaml');
    expect(spec.events.map((e) => e.name)).toEqual(['clock', 'stock-price', 'notification']);
  });
});
