// `lint`: each target's own formatter and linters, as its manifest names them, over two
// renders: the example spec, and one with every option on (a stream token required, an origin
// allow-list with credentials, publish, timed and publish-only events, replay, heartbeat);
// a target with a Redis broker gets a third, that one with `broker: redis`.
// A generated project must pass its ecosystem's tools with no warning in all.
import { join } from 'node:path';
import { execa } from 'execa';
import { renderTarget } from './render.js';
import { isFresh } from './run.js';
import { normalizeSpec, type Spec } from './spec.js';
import { redisUnsupported, type Step, type Target, type ToolchainCommand } from './targets.js';
import { checkToolchain, missingSummary } from './toolchain.js';
import { refreshRendered } from './write.js';

export type LintVariant = 'spec' | 'full' | 'broker';

export interface LintReport {
  id: string;
  /** none: the manifest names no linters; unavailable: none of its linters can run here */
  result: 'pass' | 'fail' | 'skipped' | 'none' | 'unavailable';
  reason?: string;
  /** the commands that ran, per render */
  ran: Array<{ variant: LintVariant; command: string; ok: boolean; output?: string }>;
  unavailable?: string;
}

export interface LintOptions {
  work: string;
  requireToolchains?: boolean;
  onProgress?: (line: string) => void;
  /** called with each rendered folder before its linters run (tests inject problems here) */
  afterRender?: (dir: string, variant: LintVariant) => void;
}

/** The example spec with every option on. */
export function fullSpec(spec: Spec): Spec {
  return normalizeSpec(
    {
      ...spec,
      auth: { required: true },
      cors: { origins: ['https://app.example.com', 'http://localhost:5173'], credentials: true },
      publish: { enabled: true },
      events: [
        ...spec.events,
        { name: 'every-option', every: 500, data: { text: 'quotes " and \' and \\ and ${x} #{y} {{z}}', list: [1, 2.5, null, true], nested: { é: '🎉' } } },
        { name: 'on-demand', every: 0, data: {} },
      ].filter((e, i, all) => all.findIndex((o) => o.name === e.name) === i),
    },
    'full render',
  );
}

/** A step as the report shows it: one line, an inline script cut short. */
const command = (step: Step) => {
  const line = step.run.map((a) => a.split('\n')[0]).join(' ');
  return line.length > 100 ? `${line.slice(0, 97)}...` : line;
};

async function runStep(dir: string, target: Target, step: Step & { failOnOutput?: boolean }) {
  const result = await execa(step.run[0], step.run.slice(1), { cwd: dir, env: { ...target.env, ...step.env }, all: true, reject: false, timeout: 600_000 });
  const output = String(result.all ?? '').trim();
  const ok = result.exitCode === 0 && !(step.failOnOutput && output);
  return { ok, output: output.split('\n').slice(-40).join('\n') };
}

export async function lintTarget(target: Target, spec: Spec, options: LintOptions): Promise<LintReport> {
  const report: LintReport = { id: target.id, result: 'none', ran: [], unavailable: target.lint?.unavailable };
  if (!target.lint) {
    report.reason = 'the manifest names no formatter or linter';
    return report;
  }
  if (!target.lint.steps.length) {
    report.result = 'unavailable';
    report.reason = `not run: ${target.lint.unavailable ?? 'no linter can run here'}`;
    return report;
  }
  const redis = target.broker?.redis;
  const tools: ToolchainCommand[] = [
    ...(target.level === 'runs' ? target.toolchain : []),
    ...(target.lint.toolchain ?? []),
    ...(redis && 'client' in redis ? (redis.toolchain ?? []) : []),
  ];
  const missing = missingSummary(await checkToolchain({ ...target, toolchain: tools }));
  if (missing) {
    report.result = options.requireToolchains ? 'fail' : 'skipped';
    report.reason = `toolchain missing: ${missing}`;
    return report;
  }
  const renders: Array<[LintVariant, Spec]> = [['spec', spec], ['full', fullSpec(spec)]];
  // A target with a Redis broker is linted with it too (docs/broker.md).
  if (!redisUnsupported(target)) renders.push(['broker', { ...fullSpec(spec), broker: 'redis' }]);
  for (const [variant, rendered] of renders) {
    const dir = join(options.work, target.id, variant);
    await refreshRendered(dir, renderTarget(rendered, target), { force: true });
    options.afterRender?.(dir, variant);
    // Linters that type-check or compile need the project's dependencies.
    const install = target.level === 'runs' ? target.install : [];
    for (const step of [...install, ...target.lint.steps]) {
      if (isFresh(dir, step)) continue;
      options.onProgress?.(`${target.id} [${variant}]: ${command(step)}`);
      const { ok, output } = await runStep(dir, target, step);
      report.ran.push({ variant, command: command(step), ok, ...(ok ? {} : { output }) });
      if (!ok) {
        report.result = 'fail';
        report.reason = `[${variant}] \`${command(step)}\` found problems`;
        return report;
      }
    }
  }
  report.result = 'pass';
  return report;
}

export async function lintTargets(targets: Target[], spec: Spec, options: LintOptions): Promise<LintReport[]> {
  const out: LintReport[] = [];
  for (const target of targets) out.push(await lintTarget(target, spec, options));
  return out;
}

export function formatLintReport(reports: LintReport[]): string {
  const lines: string[] = [];
  for (const r of reports) {
    const steps = [...new Set(r.ran.map((x) => x.command))].join('; ');
    lines.push(`${r.id.padEnd(22)} ${r.result.padEnd(8)} ${r.result === 'pass' ? steps : r.reason ?? ''}`);
    if (r.unavailable) lines.push(`${''.padEnd(31)} not here: ${r.unavailable}`);
    for (const x of r.ran.filter((x) => !x.ok)) lines.push(`    ${x.output?.replace(/\n/g, '\n    ')}`);
  }
  return lines.join('\n');
}
