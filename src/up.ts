// `up`: every target of a generated folder at once, each on its own port with a fresh publish
// token, for the demo page and for people who want to see them side by side. Targets build one
// after another (two cores go further that way) and each starts as soon as it is built; one
// that fails is reported and the others go on. `stop()` ends them all, whole process trees.
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ResultPromise } from 'execa';
import { killTree } from './process-tree.js';
import { MARKER_FILE } from './render.js';
import { buildProject, startProject, stopGroup } from './run.js';
import { findTarget, loadTargets, type Level, type Target } from './targets.js';
import { checkToolchain, missingSummary } from './toolchain.js';

export type UpState = 'waiting' | 'building' | 'starting' | 'up' | 'failed' | 'exited' | 'stopped' | 'not run';

export interface UpTarget {
  id: string;
  language: string;
  framework: string;
  level: Level;
  port: number;
  url: string;
  /** the stream's path */
  path: string;
  /** the spec's event names (EventSource only delivers named events to their listeners) */
  events: string[];
  state: UpState;
  /** why it failed, or why it is not run here */
  reason?: string;
  /** the SSE_PUBLISH_TOKEN this run gave it (never written to disk) */
  publishToken?: string;
  /** when it answered /health, to tell a new run of the server from the last */
  since?: number;
}

export interface UpOptions {
  /** only these target ids */
  ids?: string[];
  /** instances per target (default 1): instance k listens on its port + 100 k */
  instances?: number;
  /** environment for every server of a target (SSE_REDIS_URL with `--broker redis`) */
  envFor?: (target: Target) => Record<string, string>;
  /** each target listens on portBase + its offset (default 3000: the example ports) */
  portBase?: number;
  host?: string;
  onChange?: (target: UpTarget) => void;
  /** a line about a slow step, every few seconds */
  onProgress?: (line: string) => void;
}

interface Running {
  target: Target;
  dir: string;
  info: UpTarget;
  /** 0 for the first instance of a target, which builds it for the others */
  instance: number;
  child?: ResultPromise;
}

const READY_MS = 120_000;

/** A bad `up` option (a one-line error). */
export class UpError extends Error {
  name = 'UsageError';
}

/** Generated projects in `dir`, in the seed order. */
export function generatedTargets(dir: string): Array<{ target: Target; dir: string; path: string; events: string[] }> {
  if (!existsSync(dir)) return [];
  const found: Array<{ target: Target; dir: string; path: string; events: string[] }> = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const marker = join(dir, entry.name, MARKER_FILE);
    if (!entry.isDirectory() || !existsSync(marker)) continue;
    try {
      const { target, path, events } = JSON.parse(readFileSync(marker, 'utf8'));
      found.push({
        target: findTarget(target),
        dir: join(dir, entry.name),
        path: typeof path === 'string' ? path : '/events',
        events: Array.isArray(events) ? events.filter((e) => typeof e === 'string') : [],
      });
    } catch {
      // not one of ours, or a target this version does not know
    }
  }
  const order = loadTargets().map((t) => t.id);
  return found.sort((a, b) => order.indexOf(a.target.id) - order.indexOf(b.target.id));
}

async function healthy(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1500) });
    return res.ok;
  } catch {
    return false;
  }
}

export class UpSession {
  readonly targets: UpTarget[];
  private readonly running: Running[];
  private stopping = false;

  constructor(
    found: Array<{ target: Target; dir: string; path: string; events: string[] }>,
    private readonly options: UpOptions,
  ) {
    const host = options.host ?? '127.0.0.1';
    const base = options.portBase ?? 3000;
    const instances = Math.max(1, options.instances ?? 1);
    this.running = found.flatMap(({ target, dir, path, events }) =>
      Array.from({ length: instances }, (_, instance): Running => {
      const port = base + target.portOffset + 100 * instance;
      const runs = target.level === 'runs';
      return {
        target,
        dir,
        instance,
        info: {
          id: instances > 1 ? `${target.id}#${instance + 1}` : target.id,
          language: target.language,
          framework: target.framework,
          level: target.level,
          port,
          url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`,
          path,
          events,
          state: runs ? 'waiting' : 'not run',
          reason: runs ? undefined : `level ${target.level}: ${target.levelNote ?? 'cannot run here'}`,
        },
      };
      }),
    );
    this.targets = this.running.map((r) => r.info);
  }

  private set(r: Running, state: UpState, reason?: string) {
    r.info.state = state;
    r.info.reason = reason;
    this.options.onChange?.(r.info);
  }

  /** Build and start every target that runs here; resolves when each is up or has failed. */
  async start(): Promise<void> {
    for (const r of this.running) {
      if (this.stopping) break;
      if (r.info.state === 'not run') {
        this.options.onChange?.(r.info);
        continue;
      }
      if (r.instance > 0) {
        // the first instance built the project for the others
        const first = this.running.find((x) => x.target === r.target && x.instance === 0)!;
        if (first.info.state === 'up') await this.launch(r, false);
        else this.set(r, 'not run', `${first.info.id} did not come up`);
        continue;
      }
      const missing = missingSummary(await checkToolchain(r.target));
      if (missing) {
        this.set(r, 'not run', `toolchain missing: ${missing}`);
        continue;
      }
      await this.launch(r);
    }
  }

  private async launch(r: Running, build = true): Promise<void> {
    const started = Date.now();
    const progress = setInterval(() => {
      this.options.onProgress?.(`${r.info.id}: ${r.info.state} (${Math.round((Date.now() - started) / 1000)} s)`);
    }, 5000);
    try {
      if (build) {
        this.set(r, 'building');
        await buildProject(r.dir, { stdio: 'pipe' });
      }
      if (this.stopping) return;
      this.set(r, 'starting');
      // the instances of one target share its token, as behind one load balancer
      const first = this.running.find((x) => x.target === r.target && x.instance === 0)!;
      first.info.publishToken ??= randomBytes(16).toString('hex');
      r.info.publishToken = first.info.publishToken;
      const child = startProject(r.dir, r.target, {
        env: { ...this.options.envFor?.(r.target), PORT: String(r.info.port), HOST: this.options.host ?? '127.0.0.1', SSE_PUBLISH_TOKEN: r.info.publishToken },
        stdio: 'pipe',
      });
      r.child = child;
      let output = '';
      child.all?.on('data', (chunk: Buffer) => (output = (output + chunk.toString('utf8')).slice(-4000)));
      let exited = false;
      void child.then((result) => {
        exited = true;
        if (r.child !== child) return;
        r.child = undefined;
        if (!this.stopping && r.info.state !== 'stopped') {
          const last = output.trim().split('\n').slice(-3).join(' | ');
          this.set(r, r.info.state === 'up' ? 'exited' : 'failed', `exited (${result.signal ?? `code ${result.exitCode}`})${last ? `: ${last}` : ''}`);
        }
      });
      const deadline = Date.now() + READY_MS;
      while (!exited && Date.now() < deadline && !this.stopping) {
        if (await healthy(r.info.url)) {
          r.info.since = Date.now();
          this.set(r, 'up');
          return;
        }
        await new Promise((done) => setTimeout(done, 200));
      }
      if (!exited && !this.stopping) {
        this.set(r, 'failed', `no answer to GET /health within ${READY_MS / 1000} s`);
        killTree(child.pid!);
      }
    } catch (error) {
      this.set(r, 'failed', (error as Error).message.split('\n')[0]);
    } finally {
      clearInterval(progress);
    }
  }

  /** Stop one target (SIGTERM, then SIGKILL of what is left). */
  async stopOne(id: string): Promise<void> {
    const r = this.running.find((x) => x.info.id === id);
    if (!r?.child?.pid) return;
    const pid = r.child.pid;
    this.set(r, 'stopped');
    await stopGroup(pid, 5000);
    killTree(pid);
  }

  /** Start a stopped target again, with the same port and publish token, without rebuilding. */
  async restartOne(id: string): Promise<void> {
    const r = this.running.find((x) => x.info.id === id);
    if (!r) return;
    if (r.child) await this.stopOne(id);
    await this.launch(r, false);
  }

  /** SIGKILL every process tree at once (for process exit, where nothing can be awaited). */
  kill(): void {
    for (const r of this.running) if (r.child?.pid !== undefined) killTree(r.child.pid);
  }

  /** Stop every target; nothing it started is left behind. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(
      this.running.map(async (r) => {
        const pid = r.child?.pid;
        if (pid === undefined) return;
        await stopGroup(pid, 5000);
        killTree(pid);
        r.child = undefined;
        if (r.info.state === 'up' || r.info.state === 'starting' || r.info.state === 'building') this.set(r, 'stopped');
      }),
    );
  }
}

export function upSession(dir: string, options: UpOptions & { found?: ReturnType<typeof generatedTargets> } = {}): UpSession {
  const root = resolve(dir);
  let found = options.found ?? generatedTargets(root);
  if (options.ids?.length) {
    const wanted = new Set(options.ids.map((id) => findTarget(id).id));
    found = found.filter((f) => wanted.has(f.target.id));
  }
  return new UpSession(found, options);
}

const pad = (text: string, width: number) => text.padEnd(width);

/** One line of the table `up` prints as targets change state. */
export function upRow(t: UpTarget): string {
  const url = t.state === 'up' ? t.url : '';
  return `${pad(t.id, 22)} ${pad(String(t.port), 6)} ${pad(t.state, 9)} ${url}${t.reason && t.state !== 'up' ? `${url ? ' ' : ''}${t.reason}` : ''}`;
}

export const UP_HEADER = `${pad('target', 22)} ${pad('port', 6)} ${pad('state', 9)} url`;

/**
 * A session for a command: rows printed as targets change state, progress while they build.
 * Undefined (after saying why) when the folder holds no generated project.
 */
export function commandSession(dir: string, options: Omit<UpOptions, 'onChange' | 'onProgress'> & { found?: ReturnType<typeof generatedTargets> }): UpSession | undefined {
  const session = upSession(dir, { ...options, onChange: (t) => console.log(upRow(t)), onProgress: (line) => console.error(`  … ${line}`) });
  if (session.targets.length) return session;
  console.error(`no generated projects in ${dir} (make them with: create-sse-server generate --spec FILE --out ${dir})`);
  return undefined;
}

/** Ctrl-C or SIGTERM stops every server (and `close`), then exits 0; any other exit kills them. */
export function stopOnInterrupt(session: UpSession, what: string, close: () => Promise<void> = async () => undefined) {
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    console.error(`\nstopping ${what}…`);
    await Promise.all([session.stop(), close()]);
    console.error('all stopped');
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  process.on('exit', () => session.kill());
}

/**
 * `up --broker redis`: each target of `dir` rendered again from the example spec (or `spec`)
 * with `broker: redis` into a folder of its own under the cache, and a local Redis on a free
 * port; each target gets a database of its own (`/1`, `/2`, ...), so that its instances share
 * one stream and targets do not share theirs. Targets without a Redis broker are not run.
 */
async function brokerSetup(dir: string, specFile: string | undefined) {
  const { renderTarget } = await import('./render.js');
  const { refreshRendered } = await import('./write.js');
  const { loadSpec } = await import('./spec.js');
  const { exampleSpecPath } = await import('./create.js');
  const { RedisServer } = await import('./smoke/broker.js');
  const { redisUnsupported } = await import('./targets.js');
  const { homedir } = await import('node:os');
  const spec = { ...(await loadSpec(specFile ?? exampleSpecPath)), broker: 'redis' as const };
  const work = join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'create-sse-server', 'up-broker');
  const found = generatedTargets(resolve(dir));
  const refused = new Map<string, string>();
  for (const f of found) {
    const why = f.target.level === 'runs' ? redisUnsupported(f.target) : undefined;
    if (why) {
      refused.set(f.target.id, `no Redis broker: ${why}`);
      continue;
    }
    if (f.target.level !== 'runs') continue;
    f.dir = join(work, f.target.id);
    await refreshRendered(f.dir, renderTarget(spec, f.target), { force: true });
  }
  // stopped by `up` itself (Ctrl-C, then exit 0), not by the harness's signal handlers
  const redis = await RedisServer.launch({ tracked: false });
  process.on('exit', () => redis.kill());
  console.log(`redis: 127.0.0.1:${redis.port} (started for this run, with a password of its own; each target its own database)`);
  const db = new Map(found.map((f, i) => [f.target.id, (i % 15) + 1]));
  return { found, refused, redis, envFor: (t: Target) => ({ SSE_REDIS_URL: `${redis.url}/${db.get(t.id)}` }) };
}

/** `create-sse-server up [DIR]`: runs until Ctrl-C, then stops everything. */
export async function upCommand(dir: string, options: { target?: string[]; portBase?: number; host?: string; instances?: number; broker?: string; spec?: string }): Promise<number> {
  if (options.broker && options.broker !== 'memory' && options.broker !== 'redis') throw new UpError(`--broker ${options.broker}: must be memory or redis`);
  const broker = options.broker === 'redis' ? await brokerSetup(dir, options.spec) : undefined;
  const session = commandSession(dir, { ids: options.target, portBase: options.portBase, host: options.host, instances: options.instances, envFor: broker?.envFor, found: broker?.found });
  if (!session) {
    await broker?.redis.close();
    return 1;
  }
  for (const t of session.targets) {
    const why = broker?.refused.get(t.id.replace(/#\d+$/, ''));
    if (why) (t.state = 'not run'), (t.reason = why);
  }
  console.log(UP_HEADER);
  stopOnInterrupt(session, 'every server', async () => broker?.redis.close());
  await session.start();
  const up = session.targets.filter((t) => t.state === 'up').length;
  console.log(`\n${up} of ${session.targets.length} up; publish tokens are in each server's environment (the demo page gets them from \`create-sse-server demo\`). Ctrl-C stops them all.`);
  await new Promise(() => undefined);
  return 0;
}
