// Every generated server carries an asyncapi.yaml, rendered for all targets from one shared
// template; the AsyncAPI project's own parser must read it with no error and no warning, so
// that its documentation and client generators can use it.
import { Parser } from '@asyncapi/parser';
import { describe, expect, it } from 'vitest';
import { renderTarget } from '../src/render.js';
import { loadSpec, normalizeSpec, type Spec } from '../src/spec.js';
import { hardenedSpec } from '../src/smoke/variants.js';
import { loadTargets } from '../src/targets.js';

const example = await loadSpec('examples/sse.spec.yaml');
const specs: Array<[string, Spec]> = [
  ['the example spec', example],
  ['the hardened variant', hardenedSpec(example)],
  ['publish off, no timed events, no retry or heartbeat', normalizeSpec({ name: 'quiet', retry: 0, heartbeat: 0, history: 0, publish: { enabled: false }, events: [{ name: 'null', data: { 'odd key: "x"': [1, { y: null }], é: 'ü' } }] })],
];
const parser = new Parser();

function asyncapiOf(spec: Spec, targetId: string): string {
  const target = loadTargets().find((t) => t.id === targetId)!;
  const file = renderTarget(spec, target).find((f) => f.path === 'asyncapi.yaml');
  expect(file, `${targetId} has no asyncapi.yaml`).toBeDefined();
  return file!.content.toString('utf8');
}

describe('asyncapi.yaml', () => {
  for (const [label, spec] of specs) {
    it(`passes the AsyncAPI parser with no error or warning (${label})`, async () => {
      const text = asyncapiOf(spec, 'go-stdlib');
      const { document, diagnostics } = await parser.parse(text);
      const problems = diagnostics.filter((d) => d.severity <= 1).map((d) => `${d.path.join('.')}: ${d.message}`);
      expect(problems).toEqual([]);
      expect(document).toBeDefined();
      const channel = document!.channels().get('stream')!;
      expect(channel.address()).toBe(spec.path);
      const names = channel.messages().all().map((m) => m.name());
      for (const event of spec.events) expect(names).toContain(event.name);
      expect(document!.operations().has('publishEvent')).toBe(spec.publish.enabled);
      for (const event of spec.events.filter((e) => e.every > 0)) {
        const payload = document!.components().messages().get(event.name)!.payload()!;
        expect(payload.required()).toContain('timestamp');
      }
    });
  }

  it('fails a broken document (the check can fail)', async () => {
    const text = asyncapiOf(example, 'go-stdlib').replace('action: receive', 'action: listen');
    const { diagnostics } = await parser.parse(text);
    expect(diagnostics.filter((d) => d.severity === 0).length).toBeGreaterThan(0);
  });

  it('is the same document in every target (one shared template)', () => {
    const texts = new Set(loadTargets().map((t) => asyncapiOf({ ...example, port: 3000 }, t.id)));
    expect(texts.size).toBe(1);
  });
});
