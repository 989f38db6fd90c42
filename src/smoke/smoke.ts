// `smoke`: for each target, render both variants of the spec into a work folder, build and
// start it the way `run` does, and run the contract's checks against it.
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { ResultPromise } from 'execa';
import { renderTarget } from '../render.js';
import { buildProject, startProject } from '../run.js';
import type { Spec } from '../spec.js';
import { findTarget, loadTargets, packageRoot, redisUnsupported, type Level, type Target } from '../targets.js';
import { checkToolchain, missingSummary } from '../toolchain.js';
import { refreshRendered, withFolderLock } from '../write.js';
import type { ServerHandle } from './context.js';
import { mergeChecks, runVariant, type Outcome, type RunOptions, type StartServer, type VariantReport } from './harness.js';
import type { Browser } from 'playwright-core';
import { launchBrowser } from './browser.js';
import { variantSpec, type VariantName } from './variants.js';
import { runBrokerChecks, type BrokerRun } from './broker.js';

export interface TargetReport {
  id: string;
  level: Level;
  /** pass: every check passed; parses: sources parsed (toolchain not installable here) */
  result: 'pass' | 'fail' | 'skipped' | 'parses';
  reason?: string;
  buildMs: Partial<Record<VariantName, number>>;
  startMs: Partial<Record<VariantName, number>>;
  idleRssMiB: Partial<Record<VariantName, number>>;
  checks: ReturnType<typeof mergeChecks>;
}

export interface SmokeOptions {
  work?: string;
  requireToolchains?: boolean;
  /** also run B1: a real Chromium EventSource on another origin */
  browser?: boolean;
  onProgress?: (line: string) => void;
}

/** One work folder per clone (two clones of one user must not build in each other's folders). */
export function defaultWorkDir(root = packageRoot) {
  const clone = createHash('sha256').update(root).digest('hex').slice(0, 12);
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'create-sse-server', 'smoke', clone);
}

/** "1m05s": time since `t0`, for progress lines. */
export function elapsed(t0: number): string {
  const s = Math.round((Date.now() - t0) / 1000);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

const MAX_OUTPUT = 1 << 20;

/** What the harness needs of a started child (execa, detached, `all: true`, `buffer: false`). */
export function serverHandle(child: ResultPromise, host: string, port: number): ServerHandle {
  let output = '';
  child.all?.on('data', (chunk: Buffer) => {
    if (output.length < MAX_OUTPUT) output += chunk.toString('utf8');
  });
  let exited = false;
  return {
    host,
    port,
    pid: child.pid!,
    output: () => output,
    exited: child.then((r) => {
      exited = true;
      return { exitCode: r.exitCode, signal: r.signal };
    }),
    hasExited: () => exited,
  };
}

/** Start a generated project the way `run` does, capturing what it prints. */
export function targetStarter(target: Target, workDir: string, log?: (line: string) => void): StartServer {
  const dir = join(workDir, target.id);
  return async (spec, variant, host, port, env, options = {}) => {
    let buildMs: number | undefined;
    if (options.build !== false) {
      await refreshRendered(dir, renderTarget(spec, target), { force: true });
      const t0 = Date.now();
      log?.(`${target.id} [${variant}]: building in ${dir}`);
      // A build can take minutes (cargo, cabal, maven): say which step runs, and that it still does.
      let step = 'toolchain check';
      const beat = setInterval(() => log?.(`${target.id} [${variant}]: still at \`${step}\` (${elapsed(t0)})`), 30_000);
      try {
        await buildProject(dir, { stdio: 'pipe', log: (line) => ((step = line.replace(/^\$ /, '')), log?.(`${target.id} [${variant}]: ${line} (${elapsed(t0)})`)) });
      } finally {
        clearInterval(beat);
      }
      buildMs = Date.now() - t0;
      log?.(`${target.id} [${variant}]: built in ${elapsed(t0)}, starting`);
    }
    const child = startProject(dir, target, { env: { ...env, PORT: String(port), HOST: host }, stdio: 'pipe' });
    const handle = serverHandle(child, host, port);
    return { handle, buildMs };
  };
}

/** Check every variant of a spec against servers from `start`. */
export async function smokeServer(spec: Spec, start: StartServer, variants: VariantName[] = ['spec', 'hardened'], options: RunOptions = {}) {
  const reports: VariantReport[] = [];
  for (const variant of variants) reports.push(await runVariant(spec, variant, start, options));
  return reports;
}

/** Render both variants and run the target's parsers over each (level `parses`). */
async function parseCheck(target: Target, workDir: string, spec: Spec): Promise<string | undefined> {
  const { parseProject } = await import('../parse.js');
  const dir = join(workDir, target.id);
  for (const variant of ['spec', 'hardened'] as const) {
    await refreshRendered(dir, renderTarget(variantSpec(spec, variant), target), { force: true });
    const { problem } = await parseProject(dir, target.parse ?? [], target.env);
    if (problem) return `[${variant}] ${problem}`;
  }
  return undefined;
}

export async function smokeTargets(targets: Target[], spec: Spec, options: SmokeOptions = {}): Promise<TargetReport[]> {
  const workDir = options.work ?? defaultWorkDir();
  mkdirSync(workDir, { recursive: true });
  // One smoke run at a time per work folder: a second waits, then refuses.
  return withFolderLock(workDir, 60_000, () => smokeLocked(targets, spec, workDir, options));
}

async function smokeLocked(targets: Target[], spec: Spec, workDir: string, options: SmokeOptions): Promise<TargetReport[]> {
  const out: TargetReport[] = [];
  let browser: Browser | undefined;
  try {
    for (const target of targets) {
      if (options.browser && !browser && target.level === 'runs') browser = await launchBrowser();
      const t0 = Date.now();
      options.onProgress?.(`${target.id}: ${targets.indexOf(target) + 1} of ${targets.length}`);
      out.push(await smokeTarget(target, spec, workDir, options, browser));
      options.onProgress?.(`${target.id}: ${out.at(-1)!.result} in ${elapsed(t0)}`);
    }
  } finally {
    await browser?.close();
  }
  return out;
}

async function smokeTarget(target: Target, spec: Spec, workDir: string, options: SmokeOptions, browser?: Browser): Promise<TargetReport> {
  const report: TargetReport = { id: target.id, level: target.level, result: 'fail', buildMs: {}, startMs: {}, idleRssMiB: {}, checks: {} };
  // A `parses` target needs its parser here, not its toolchain (which cannot be installed).
  const missing = target.level === 'parses' ? (await import('../parse.js')).parserMissing(target.parse ?? []) : missingSummary(await checkToolchain(target));
  if (missing) {
    report.result = options.requireToolchains ? 'fail' : 'skipped';
    report.reason = `toolchain missing: ${missing}`;
    options.onProgress?.(`${target.id}: ${report.reason}`);
    return report;
  }
  if (target.level === 'parses') {
    const problem = await parseCheck(target, workDir, spec);
    report.result = problem ? 'fail' : 'parses';
    report.reason = problem ?? `checks not run: ${target.levelNote ?? 'its toolchain cannot be installed here'}`;
    options.onProgress?.(`${target.id}: ${problem ? 'parse failed' : 'parsed'}`);
    return report;
  }
  options.onProgress?.(`${target.id}: smoke`);
  const variants = await smokeServer(spec, targetStarter(target, workDir, options.onProgress), undefined, { browser });
  for (const v of variants) {
    if (v.buildMs !== undefined) report.buildMs[v.variant] = v.buildMs;
    if (v.startMs !== undefined) report.startMs[v.variant] = v.startMs;
    if (v.idleRssMiB !== undefined) report.idleRssMiB[v.variant] = v.idleRssMiB;
  }
  report.checks = mergeChecks(variants);
  const failed = Object.entries(report.checks).filter(([, o]) => o.status === 'fail');
  report.result = failed.length ? 'fail' : 'pass';
  const error = variants.find((v) => v.error)?.error;
  if (error) report.reason = error.split('\n')[0];
  else if (failed.length) report.reason = `failed ${failed.map(([id]) => id).join(', ')}`;
  return report;
}

export function countOutcomes(checks: Record<string, Outcome>) {
  const values = Object.values(checks);
  return { pass: values.filter((o) => o.status === 'pass').length, fail: values.filter((o) => o.status === 'fail').length, skip: values.filter((o) => o.status === 'skip').length };
}

export function selectSmokeTargets(ids: string[], all: boolean): Target[] {
  const targets = loadTargets();
  if (ids.length) return [...new Set(ids)].map((id) => findTarget(id, targets));
  return all ? targets : targets.filter((t) => t.level === 'runs');
}

export interface BrokerReport {
  id: string;
  /** unsupported: the manifest says why the target has no Redis broker */
  result: 'pass' | 'fail' | 'skipped' | 'unsupported';
  reason?: string;
  buildMs?: number;
  checks: BrokerRun['checks'];
}

/** Group R for each target (docs/broker.md): render with `broker: redis`, build once, two instances on one Redis. */
export async function smokeBrokerTargets(targets: Target[], spec: Spec, options: SmokeOptions = {}): Promise<BrokerReport[]> {
  const workDir = join(options.work ?? defaultWorkDir(), 'broker');
  mkdirSync(workDir, { recursive: true });
  return withFolderLock(workDir, 60_000, async () => {
    const out: BrokerReport[] = [];
    for (const target of targets) {
      const t0 = Date.now();
      const report: BrokerReport = { id: target.id, result: 'fail', checks: {} };
      out.push(report);
      const unsupported = redisUnsupported(target);
      if (unsupported) {
        report.result = 'unsupported';
        report.reason = unsupported;
        continue;
      }
      const redis = target.broker?.redis;
      const toolchain = [
        ...target.toolchain,
        ...(redis && 'client' in redis ? (redis.toolchain ?? []) : []),
        { check: ['redis-server', '--version'], debian: ['redis-server'], hint: 'Redis 7 (Debian: apt-get install redis-server)' },
      ];
      const missing = missingSummary(await checkToolchain({ ...target, toolchain }));
      if (missing) {
        report.result = options.requireToolchains ? 'fail' : 'skipped';
        report.reason = `toolchain missing: ${missing}`;
        options.onProgress?.(`${target.id}: ${report.reason}`);
        continue;
      }
      options.onProgress?.(`${target.id}: broker checks (${out.length} of ${targets.length})`);
      const run = await runBrokerChecks(spec, [targetStarter(target, workDir, options.onProgress)]);
      report.buildMs = run.buildMs;
      report.checks = run.checks;
      const failed = Object.entries(run.checks).filter(([, o]) => o.status === 'fail');
      report.result = run.error || failed.length ? 'fail' : 'pass';
      if (run.error) report.reason = run.error;
      else if (failed.length) report.reason = `failed ${failed.map(([id]) => id).join(', ')}`;
      options.onProgress?.(`${target.id}: broker ${report.result} in ${elapsed(t0)}`);
    }
    return out;
  });
}

/** Targets for `smoke --broker`: those named, or every `runs` target (the ones without a broker report why). */
export function selectBrokerTargets(ids: string[]): Target[] {
  const targets = loadTargets();
  return ids.length ? [...new Set(ids)].map((id) => findTarget(id, targets)) : targets.filter((t) => t.level === 'runs');
}
