// Every target at level `runs` passes every check of the contract on this machine, built
// with its own toolchain. A target whose toolchain is missing here is reported as skipped,
// with what to install (`npm run toolchains` installs them all on Debian); it never passes.
// In CI (CI=true) a missing toolchain fails.
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CHROMIUM } from '../src/smoke/browser.js';
import { formatReport } from '../src/smoke/command.js';
import { smokeTargets } from '../src/smoke/smoke.js';
import { loadSpec } from '../src/spec.js';
import { loadTargets } from '../src/targets.js';
import { checkToolchain, installHint, toolName } from '../src/toolchain.js';

const spec = await loadSpec('examples/sse.spec.yaml');
const targets = loadTargets().filter((t) => t.level === 'runs');
const CI = /^(1|true|yes)$/i.test(process.env.CI ?? '');
const missing = new Map(
  await Promise.all(targets.map(async (t) => [t.id, (await checkToolchain(t)).filter((s) => !s.found).map((s) => `${toolName(s)}: ${installHint(s)}`)] as const)),
);
const skipped = targets.filter((t) => missing.get(t.id)!.length && !CI);
if (skipped.length) {
  console.log(
    [`smoke: ${skipped.length} of ${targets.length} targets SKIPPED (toolchain missing here; not passed). Install them all on Debian with \`npm run toolchains\`:`]
      .concat(skipped.map((t) => `  ${t.id}: needs ${missing.get(t.id)!.join('; ')}`))
      .join('\n'),
  );
}

// B1 (a real Chromium EventSource on another origin) runs wherever Debian's chromium is; CI has it.
const browser = existsSync(CHROMIUM);
if (!browser && CI) throw new Error(`${CHROMIUM} is missing: CI runs B1 for every target (npm run toolchains installs it)`);
if (!browser) console.log(`smoke: B1 (browser) SKIPPED for every target: ${CHROMIUM} is missing (apt-get install chromium)`);

describe('smoke: targets at level runs', () => {
  it('there are targets at level runs', () => {
    expect(targets.length).toBeGreaterThan(0);
  });
  for (const target of targets) {
    const needs = missing.get(target.id)!;
    if (needs.length && !CI) {
      it.skip(`${target.id}: SKIPPED, toolchain missing (${needs.join('; ')})`, () => {});
      continue;
    }
    it(`${target.id} passes C1-C16 in both variants${browser ? ', and B1 in Chromium' : ''}`, async () => {
      const [report] = await smokeTargets([target], spec, { requireToolchains: true, browser, onProgress: (line) => process.stderr.write(`  ${line}\n`) });
      console.log(formatReport([report]));
      expect(report.result, formatReport([report])).toBe('pass');
      expect(Object.keys(report.checks)).toHaveLength(browser ? 17 : 16);
    }, 30 * 60_000);
  }
});
