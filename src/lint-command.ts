// `create-sse-server lint`: the report and the exit code.
import { homedir } from 'node:os';
import { join } from 'node:path';
import { exampleSpecPath } from './create.js';
import { formatLintReport, lintTargets } from './lint.js';
import { loadSpec } from './spec.js';
import { findTarget, loadTargets } from './targets.js';

export async function lintCommand(ids: string[], opts: { spec?: string; requireToolchains?: boolean; work?: string }): Promise<number> {
  const spec = await loadSpec(opts.spec ?? exampleSpecPath);
  const targets = ids.length ? ids.map((id) => findTarget(id)) : loadTargets().filter((t) => t.lint);
  const work = opts.work ?? join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'create-sse-server', 'lint');
  const reports = await lintTargets(targets, spec, { work, requireToolchains: opts.requireToolchains, onProgress: (l) => console.error(l) });
  console.log(formatLintReport(reports));
  const count = (r: string) => reports.filter((x) => x.result === r).length;
  console.log(`\nlint: ${count('pass')} passed, ${count('fail')} failed, ${count('skipped')} skipped, ${count('unavailable')} with no linter runnable here, ${count('none')} without linters`);
  return count('fail') || (opts.requireToolchains && count('none')) ? 1 : 0;
}
