// Every generated project passes its ecosystem's own formatter and linters with no warning, in
// two renders (the example spec, and every option on). The linters are the manifests' own; a
// target whose linters are missing here is skipped with the reason, and in CI that fails.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lintTarget } from '../src/lint.js';
import { loadSpec } from '../src/spec.js';
import { loadTargets, type Target } from '../src/targets.js';

const spec = await loadSpec('examples/sse.spec.yaml');
const work = mkdtempSync(join(tmpdir(), 'sse-lint-'));
const ci = Boolean(process.env.CI);

describe('lint', () => {
  for (const target of loadTargets().filter((t) => t.lint?.steps.length)) {
    it(`${target.id}: ${target.lint!.steps.map((s) => s.run[0]).join(', ')} find nothing in either render`, async () => {
      const report = await lintTarget(target, spec, { work, requireToolchains: ci });
      // Not run is reported as not run, with its reason, never as a pass.
      if (report.result === 'skipped' || report.result === 'unavailable') return console.warn(`lint ${target.id} ${report.result}: ${report.reason}`);
      expect(report.result, `${report.reason}\n${report.ran.filter((r) => !r.ok).map((r) => r.output).join('\n')}`).toBe('pass');
    }, 900_000);
  }

  it('reports a target whose linters cannot run here as unavailable, not passed', async () => {
    const go = loadTargets().find((t) => t.id === 'go-stdlib')!;
    const report = await lintTarget({ ...go, lint: { steps: [], unavailable: 'no SDK here' } }, spec, { work });
    expect(report.result).toBe('unavailable');
    expect(report.reason).toBe('not run: no SDK here');
  });

  it('fails a project its formatter would change (a lint that cannot fail is worth nothing)', async () => {
    const go = loadTargets().find((t) => t.id === 'go-stdlib')!;
    const gofmt: Target = { ...go, lint: { steps: [{ run: ['gofmt', '-l', '.'], failOnOutput: true }] } };
    const scratch = mkdtempSync(join(tmpdir(), 'sse-lint-bad-'));
    const report = await lintTarget(gofmt, spec, {
      work: scratch,
      afterRender: (dir, variant) => {
        if (variant !== 'spec') return;
        const main = join(dir, 'main.go');
        expect(execFileSync('gofmt', ['-l', main], { encoding: 'utf8' })).toBe('');
        writeFileSync(main, readFileSync(main, 'utf8').replace('\npackage main\n', '\npackage   main\n'));
      },
    });
    expect(report.result).toBe('fail');
    expect(report.reason).toMatch(/\[spec\] `gofmt -l \.` found problems/);
  }, 120_000);
});

describe('list names the linters that cannot run here', () => {
  it('prints the manifest\'s reason under the target, and --json carries the steps', async () => {
    const { formatList, listRows } = await import('../src/cli.js');
    const rows = await listRows();
    const aspnet = rows.find((r) => r.id === 'csharp-aspnetcore')!;
    expect(aspnet.lintUnavailable).toMatch(/dotnet format/);
    expect(formatList(rows)).toContain(`    lint not run here: ${aspnet.lintUnavailable}`);
    expect(rows.find((r) => r.id === 'go-stdlib')!.lint).toContain('gofmt -l .');
  }, 60_000);
});
