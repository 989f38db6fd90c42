// `create-sse-server smoke`: the report as a table (and JSON), and the exit code.
import { writeFile } from 'node:fs/promises';
import { exampleSpecPath } from '../create.js';
import { loadSpec } from '../spec.js';
import { checks } from './checks/index.js';
import { brokerChecks } from './broker.js';
import { selectBrokerTargets, selectSmokeTargets, smokeBrokerTargets, smokeTargets, type BrokerReport, type TargetReport } from './smoke.js';

const MARK = { pass: 'ok', fail: 'FAIL', skip: 'skip' } as const;
const seconds = (ms?: number) => (ms === undefined ? '-' : (ms / 1000).toFixed(1));

export function formatReport(reports: TargetReport[]): string {
  const ids: string[] = checks.map((c) => c.id);
  if (reports.some((r) => r.checks.B1)) ids.push('B1');
  const lines = [
    ['target'.padEnd(20), 'result'.padEnd(8), 'build s'.padEnd(10), 'start s'.padEnd(9), 'idle MiB'.padEnd(9), ...ids.map((id) => id.padEnd(4))].join(' '),
  ];
  for (const r of reports) {
    const pair = (o: Partial<Record<string, number>>, f: (n?: number) => string) => `${f(o.spec)}/${f(o.hardened)}`;
    const cells = ids.map((id) => (r.checks[id] ? MARK[r.checks[id].status] : '-').padEnd(4));
    lines.push(
      [r.id.padEnd(20), r.result.padEnd(8), pair(r.buildMs, seconds).padEnd(10), pair(r.startMs, seconds).padEnd(9), pair(r.idleRssMiB, (n) => (n === undefined ? '-' : String(n))).padEnd(9), ...cells].join(' '),
    );
    if (r.reason && r.result !== 'pass') lines.push(`    ${r.result === 'skipped' || r.result === 'parses' ? '' : 'reason: '}${r.reason}`);
    for (const [id, o] of Object.entries(r.checks)) {
      if (o.status !== 'pass') lines.push(`    ${id} ${o.status}: ${o.detail.replace(/\n/g, '\n      ')}`);
    }
  }
  return lines.join('\n');
}

export async function smokeCommand(ids: string[], opts: { all?: boolean; spec?: string; json?: string; requireToolchains?: boolean; work?: string; browser?: boolean }): Promise<number> {
  const spec = await loadSpec(opts.spec ?? exampleSpecPath);
  const targets = selectSmokeTargets(ids, Boolean(opts.all));
  if (!targets.length) {
    console.error('no targets to smoke (none at level runs; name ids or pass --all)');
    return 1;
  }
  const reports = await smokeTargets(targets, spec, {
    work: opts.work,
    requireToolchains: opts.requireToolchains,
    browser: opts.browser,
    onProgress: (line) => console.error(line),
  });
  console.log(formatReport(reports));
  const count = (result: TargetReport['result']) => reports.filter((r) => r.result === result).length;
  console.log(`\ntargets: ${count('pass')} passed, ${count('fail')} failed, ${count('skipped')} skipped, ${count('parses')} parse-only`);
  if (opts.json) await writeFile(opts.json, `${JSON.stringify({ spec: opts.spec ?? 'examples/sse.spec.yaml', targets: reports }, null, 2)}\n`);
  return count('fail') ? 1 : 0;
}

export function formatBrokerReport(reports: BrokerReport[]): string {
  const ids = brokerChecks.map((c) => c.id);
  const lines = [['target'.padEnd(20), 'result'.padEnd(12), 'build s'.padEnd(8), ...ids.map((id) => id.padEnd(4))].join(' ')];
  for (const r of reports) {
    const cells = ids.map((id) => (r.checks[id] ? MARK[r.checks[id]!.status] : '-').padEnd(4));
    lines.push([r.id.padEnd(20), r.result.padEnd(12), seconds(r.buildMs).padEnd(8), ...cells].join(' '));
    if (r.reason && r.result !== 'pass') lines.push(`    ${r.result === 'fail' ? 'reason: ' : ''}${r.reason.replace(/\n/g, '\n      ')}`);
    for (const [id, o] of Object.entries(r.checks)) {
      if (o.status !== 'pass') lines.push(`    ${id} ${o.status}: ${o.detail.replace(/\n/g, '\n      ')}`);
    }
  }
  return lines.join('\n');
}

export async function brokerCommand(ids: string[], opts: { spec?: string; json?: string; requireToolchains?: boolean; work?: string }): Promise<number> {
  const spec = await loadSpec(opts.spec ?? exampleSpecPath);
  const reports = await smokeBrokerTargets(selectBrokerTargets(ids), spec, {
    work: opts.work,
    requireToolchains: opts.requireToolchains,
    onProgress: (line) => console.error(line),
  });
  console.log(formatBrokerReport(reports));
  const count = (result: BrokerReport['result']) => reports.filter((r) => r.result === result).length;
  console.log(`\nbroker: ${count('pass')} passed, ${count('fail')} failed, ${count('skipped')} skipped, ${count('unsupported')} without a Redis broker`);
  if (opts.json) await writeFile(opts.json, `${JSON.stringify({ spec: opts.spec ?? 'examples/sse.spec.yaml', broker: reports }, null, 2)}\n`);
  return count('fail') ? 1 : 0;
}
