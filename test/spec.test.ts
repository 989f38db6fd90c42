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
    expect(problems({ heartbeats: 5 })).toEqual(['heartbeats: unknown field (did you mean `heartbeat`?)']);
    expect(problems({ cors: { origin: ['*'] } })).toEqual(['cors.origin: unknown field (did you mean `origins`?)']);
    expect(problems({ events: [{ name: 'a', evry: 100 }] })).toEqual(['events[0].evry: unknown field (did you mean `every`?)']);
    expect(problems({ colour: 'red' })).toEqual(['colour: unknown field']);
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
    // the parser's position and code excerpt with its caret are kept
    expect(() => parseSpecText('name: demo\nport: [\n', 'x.yaml')).toThrow(/at line 3, column 1:\n\s+port: \[\n\s+\^/);
    expect(() => parseSpecText('a: 1\n b: 2\n', 'x.yaml')).toThrow(/line 1, column 4:\n\s+a: 1\n\s+\^/);
    expect(() => parseSpecText('{', 'x.json')).toThrow(/not valid JSON/);
    const dir = mkdtempSync(join(tmpdir(), 'spec-'));
    writeFileSync(join(dir, 's.yaml'), 'events:\n  - name: ok\n  - name: NO\n');
    await expect(loadSpec(join(dir, 's.yaml'))).rejects.toThrow('events[1].name: must match ^[a-z][a-z0-9_-]*$');
    // a missing file is not an "invalid spec": there is none
    await expect(loadSpec(join(dir, 'missing.yaml'))).rejects.toThrow(`spec file ${join(dir, 'missing.yaml')} not found`);
    await expect(loadSpec(join(dir, 'missing.yaml'))).rejects.not.toThrow(/invalid spec/);
  });

  it('item 4: refuses values that make servers that cannot start, naming the field', () => {
    expect(problems({ path: '/../x' })).toEqual(['path: must not hold a ".." segment (/../x); browsers and servers resolve it differently']);
    expect(problems({ path: '/a/./b' })).toEqual(['path: must not hold a "." segment (/a/./b); browsers and servers resolve it differently']);
    expect(normalizeSpec({ path: '/a.b/...c' }).path).toBe('/a.b/...c');
    // a lone surrogate in data is found on the raw strings (JSON.stringify escaped it)
    expect(problems({ events: [{ name: 'a', data: { s: 'ok \ud800 x' } }] })).toEqual(['events[0].data.s: holds a lone surrogate (not valid Unicode)']);
    expect(problems({ events: [{ name: 'a', data: { list: ['x', { deep: '\udc00' }] } }] })).toEqual(['events[0].data.list[1].deep: holds a lone surrogate (not valid Unicode)']);
    expect(problems({ events: [{ name: 'a', data: { '\ud800': 1 } }] })).toEqual(['events[0].data: a key holds a lone surrogate (not valid Unicode)']);
    expect(() => parseSpecText('events:\n  - name: a\n    data: {s: "\\ud800"}\n', 'x.yaml')).toThrow('events[0].data.s: holds a lone surrogate');
    // at most 32 levels and 16 KiB of JSON
    const nest = (levels: number) => { let d: Record<string, unknown> = { v: 1 }; for (let i = 1; i < levels; i++) d = { d }; return d; };
    expect(normalizeSpec({ events: [{ name: 'a', data: nest(32) }] }).events[0].data).toEqual(nest(32));
    expect(problems({ events: [{ name: 'a', data: nest(33) }] })).toEqual(['events[0].data: nested deeper than 32 levels']);
    expect(normalizeSpec({ events: [{ name: 'a', data: { s: 'x'.repeat(16 * 1024 - 8) } }] }).events).toHaveLength(1);
    expect(problems({ events: [{ name: 'a', data: { s: 'x'.repeat(16 * 1024) } }] })).toEqual(['events[0].data: 16392 bytes of JSON, more than the 16384 allowed']);
    expect(problems({ events: [{ name: 'a', data: { s: 'é'.repeat(8200) } }] })[0]).toMatch(/^events\[0\].data: 16408 bytes of JSON/);
  });

  it('accepts the example spec', async () => {
    const spec = await loadSpec('examples/sse.spec.yaml');
    expect(spec.events.map((e) => e.name)).toEqual(['clock', 'stock-price', 'notification']);
  });
});
