// Every target at level `runs` passes every check of the contract on this machine, built
// with its own toolchain (a missing toolchain fails here; it is never skipped).
import { describe, expect, it } from 'vitest';
import { formatReport } from '../src/smoke/command.js';
import { smokeTargets } from '../src/smoke/smoke.js';
import { loadSpec } from '../src/spec.js';
import { loadTargets } from '../src/targets.js';

const spec = await loadSpec('examples/sse.spec.yaml');
const targets = loadTargets().filter((t) => t.level === 'runs');

describe('smoke: targets at level runs', () => {
  it('there are targets at level runs', () => {
    expect(targets.length).toBeGreaterThan(0);
  });
  for (const target of targets) {
    it(`${target.id} passes C1-C16 in both variants`, async () => {
      const [report] = await smokeTargets([target], spec, { requireToolchains: true });
      console.log(formatReport([report]));
      expect(report.result, formatReport([report])).toBe('pass');
      expect(Object.keys(report.checks)).toHaveLength(16);
    }, 30 * 60_000);
  }
});
