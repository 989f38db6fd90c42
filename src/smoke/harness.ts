// Runs the contract's checks against a server started for each variant of a spec, and
// owns every process group it starts: they are killed when a check throws, when the run is
// interrupted, and when this process exits.
import net from 'node:net';
import type { Spec } from '../spec.js';
import { request } from './client.js';
import { runOrder, type CheckId } from './checks/index.js';
import { CheckSkipped, Context, sleep, type ServerHandle } from './context.js';
import { groupRssBytes, mib } from './memory.js';
import { killTree, processTree } from '../process-tree.js';
import type { Browser } from 'playwright-core';
import { browserCheck } from './browser.js';
import { PUBLISH_TOKEN_LINE } from './publish-token.js';
import { variantEnv, variantSpec, type VariantName } from './variants.js';

export type Status = 'pass' | 'fail' | 'skip';
export interface Outcome {
  status: Status;
  detail: string;
  ms: number;
}

export interface VariantReport {
  variant: VariantName;
  /** set when the server could not be built or started; no check ran */
  error?: string;
  buildMs?: number;
  startMs?: number;
  idleRssMiB?: number;
  checks: Partial<Record<CheckId, Outcome>>;
}

/** Starts a server for `spec` listening on host:port; what the harness needs of it. */
export type StartServer = (
  spec: Spec,
  variant: VariantName,
  host: string,
  port: number,
  env: Record<string, string>,
  /** `build: false`: start what an earlier call built for this spec, as it is */
  options?: { build?: boolean },
) => Promise<{ handle: ServerHandle; buildMs?: number }>;

const READY_TIMEOUT_MS = 120_000;
const CHECK_TIMEOUT_MS = 90_000;
export const HOST = '127.0.0.1';

// ---- process groups -------------------------------------------------------------------

const groups = new Set<number>();
let hooked = false;

function killAll() {
  for (const pid of groups) killTree(pid);
  groups.clear();
}

/** Remember a process group so that nothing outlives the harness. */
export function ownGroup(pgid: number) {
  groups.add(pgid);
  if (hooked) return;
  hooked = true;
  process.on('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      killAll();
      process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1));
    });
  }
}

export async function releaseGroup(pid: number) {
  // The whole tree, not only the group: a daemon that left the group would outlive us.
  killTree(pid);
  // wait until the kernel has reaped them, so ports and memory are free again
  for (let i = 0; i < 50 && processTree(pid).length; i++) await sleep(20);
  groups.delete(pid);
}

// ---- one server -----------------------------------------------------------------------

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, HOST, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Poll GET /health until it answers 200; ms waited. Throws when the server exits first or after READY_TIMEOUT_MS. */
export async function waitUntilReady(handle: ServerHandle): Promise<number> {
  const start = Date.now();
  while (Date.now() - start < READY_TIMEOUT_MS) {
    if (handle.hasExited()) {
      const exit = await handle.exited;
      throw new Error(`exited (${exit.signal ?? `code ${exit.exitCode}`}) before answering GET /health`);
    }
    try {
      const res = await request(`http://${handle.host}:${handle.port}/health`, { timeoutMs: 2000 });
      if (res.status === 200) return Date.now() - start;
    } catch {
      // not listening yet
    }
    await sleep(150);
  }
  throw new Error(`no answer to GET /health within ${READY_TIMEOUT_MS / 1000} s`);
}

const tail = (text: string, lines = 15) => text.trim().split('\n').slice(-lines).join('\n');

/**
 * Run one check with the time limit every check has: a pass with its detail line, a skip, or a
 * failure whose detail `explain` may add to (the server's last output, say).
 */
export async function timedCheck(run: () => Promise<string>, explain: (detail: string) => string = (d) => d): Promise<Outcome> {
  const start = Date.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`check did not finish within ${CHECK_TIMEOUT_MS / 1000} s`)), CHECK_TIMEOUT_MS);
    });
    const detail = await Promise.race([run(), timeout]);
    return { status: 'pass', detail, ms: Date.now() - start };
  } catch (error) {
    const skipped = error instanceof CheckSkipped;
    const detail = (error as Error).message;
    return { status: skipped ? 'skip' : 'fail', detail: skipped ? detail : explain(detail), ms: Date.now() - start };
  } finally {
    clearTimeout(timer);
  }
}

function runCheck(ctx: Context, run: (ctx: Context) => Promise<string>): Promise<Outcome> {
  return timedCheck(
    () => run(ctx),
    (detail) => {
      const output = tail(ctx.server.output(), 8);
      if (ctx.server.hasExited()) return `${detail}; the server exited. Its last output:\n${output}`;
      return output ? `${detail}\nserver output (last lines):\n${output}` : detail;
    },
  );
}

/** Start the server for one variant and run every check that applies to it. */
export interface RunOptions {
  /** only these checks */
  only?: CheckId[];
  /** a Chromium for B1 (`smoke --browser`) */
  browser?: Browser;
}

export async function runVariant(baseSpec: Spec, variant: VariantName, start: StartServer, options: RunOptions = {}): Promise<VariantReport> {
  const { only, browser } = options;
  const spec = variantSpec(baseSpec, variant);
  const report: VariantReport = { variant, checks: {} };
  const port = await freePort();
  let handle: ServerHandle | undefined;
  let ctx: Context | undefined;
  try {
    const env = variantEnv(variant);
    const started = await start(spec, variant, HOST, port, env);
    handle = started.handle;
    report.buildMs = started.buildMs;
    ownGroup(handle.pid);
    report.startMs = await waitUntilReady(handle);
    await sleep(300);
    report.idleRssMiB = mib(groupRssBytes(handle.pid));
    const publishToken = env.SSE_PUBLISH_TOKEN ?? PUBLISH_TOKEN_LINE.exec(handle.output())?.[1] ?? null;
    ctx = new Context(spec, variant, handle, env.SSE_TOKEN ?? null, publishToken);
    ctx.browser = browser;
    ctx.launch = async (launchEnv) => {
      const another = await start(spec, variant, HOST, await freePort(), launchEnv, { build: false });
      ownGroup(another.handle.pid);
      return another.handle;
    };
    ctx.sentinel = ctx.open();
    // B1 goes before C15, which stops the server.
    const order = browser ? [...runOrder.slice(0, -1), browserCheck, ...runOrder.slice(-1)] : runOrder;
    for (const check of order) {
      if (!check.variants.includes(variant) || (only && !only.includes(check.id))) continue;
      if (handle.hasExited() && check.id !== 'C15') {
        report.checks[check.id] = { status: 'fail', detail: `the server is gone. Its last output:\n${tail(handle.output())}`, ms: 0 };
        continue;
      }
      report.checks[check.id] = await runCheck(ctx, check.run);
    }
  } catch (error) {
    report.error = (error as Error).message + (handle ? `\n${tail(handle.output())}` : '');
  } finally {
    ctx?.closeAll();
    if (handle) await releaseGroup(handle.pid);
  }
  return report;
}

/** One result per check over the variants: any failure fails it; otherwise a pass passes. */
export function mergeChecks(variants: VariantReport[]): Record<string, Outcome & { variants: Partial<Record<VariantName, Outcome>> }> {
  const merged: Record<string, Outcome & { variants: Partial<Record<VariantName, Outcome>> }> = {};
  for (const check of [...runOrder, browserCheck].sort((a, b) => (a.id[0] === b.id[0] ? Number(a.id.slice(1)) - Number(b.id.slice(1)) : a.id[0] === 'C' ? -1 : 1))) {
    const per: Partial<Record<VariantName, Outcome>> = {};
    for (const v of variants) {
      if (v.checks[check.id]) per[v.variant] = v.checks[check.id];
      else if (v.error && check.variants.includes(v.variant)) per[v.variant] = { status: 'fail', detail: v.error, ms: 0 };
    }
    const outcomes = Object.entries(per) as Array<[VariantName, Outcome]>;
    if (!outcomes.length) continue;
    const failed = outcomes.find(([, o]) => o.status === 'fail');
    const passed = outcomes.filter(([, o]) => o.status === 'pass');
    const pick = failed ?? passed[0] ?? outcomes[0];
    const status: Status = failed ? 'fail' : passed.length ? 'pass' : 'skip';
    const detail = failed || !passed.length ? `${pick[0]}: ${pick[1].detail}` : passed.map(([v, o]) => `${v}: ${o.detail}`).join(' | ');
    merged[check.id] = { status, detail, ms: outcomes.reduce((t, [, o]) => t + o.ms, 0), variants: per };
  }
  return merged;
}
