// One bench run of one target: build, start, hold N streams from several client processes,
// publish at a steady rate, and measure what the issue asks (issue 13). Every wait here has a
// deadline, every loop a bound, and whatever was started is killed (whole process trees) in a
// `finally`, also when a step throws.
import { fork, type ChildProcess } from 'node:child_process';
import { rmSync, writeFileSync, mkdtempSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { randomBytes } from 'node:crypto';
import type { ResultPromise } from 'execa';
import { killTree } from '../process-tree.js';
import { stopGroup } from '../run.js';
import { emptyHistogram, mergeHistograms, quantile, type HistogramData, addValue } from './histogram.js';
import { machineCpu, medianRss, nofileLimit, sampleTree } from './proc.js';
import { loadavg } from 'node:os';
import { freshSecret, type BenchTarget } from './targets.js';
import { WORKER_SOURCE } from './worker-source.js';

export interface BenchOptions {
  /** concurrent streams */
  clients: number;
  /** publishes per second */
  publishRate: number;
  /** seconds of publishing */
  secs: number;
  /** client processes the streams are spread over */
  procs: number;
  /** seconds allowed for all streams to connect */
  connectTimeoutS: number;
  /** seconds to wait, after the last publish, for every stream to have every event */
  drainS: number;
  /** connections one client process has in flight while connecting */
  inflight: number;
  /** streams per loopback source address before the next (127.0.0.2, .3, …) */
  perSource: number;
  onProgress?: (line: string) => void;
}

export const DEFAULTS = { clients: 1000, publishRate: 10, secs: 10, procs: 2, connectTimeoutS: 60, drainS: 10, inflight: 64, perSource: 20_000 };

export interface Distribution {
  count: number;
  p50Ms?: number;
  p99Ms?: number;
  maxMs?: number;
  meanMs?: number;
}

export interface BenchResult {
  id: string;
  kind: 'target' | 'hub';
  language: string;
  framework: string;
  status: 'ok' | 'failed' | 'skipped';
  reason?: string;
  clients: number;
  /** the loopback port it listened on */
  port?: number;
  /** streams open when publishing ended */
  held?: number;
  /** streams that never opened, by kind */
  connectErrors?: Record<string, number>;
  /** streams that opened and then ended before the run did, by kind */
  dropped?: Record<string, number>;
  /** seconds until every stream was open (or had failed) */
  connectSeconds?: number;
  connect?: Distribution;
  publishes?: { planned: number; accepted: number; errors: Record<string, number>; answer: Distribution; achievedRate: number };
  /** publish-to-receipt, over every event received on every stream */
  latency?: Distribution;
  /** events missing on streams held to the end (expected = accepted publishes per stream) */
  lost?: number;
  lossyStreams?: number;
  /** events that arrived twice or out of order */
  duplicated?: number;
  /** jumps in the id sequence (also counts timed events the stream missed) */
  idGaps?: number;
  extra?: number;
  /** ms after the last publish until every held stream had every event (undefined: never) */
  drainMs?: number;
  memory?: { idleMiB: number; loadedMiB: number; peakMiB: number; perStreamKiB?: number };
  serverCpu?: { connectS: number; publishS: number; publishPctOfCore: number; totalS: number; processes: number; usPerDeliveredEvent?: number };
  client?: { procs: number; cpuS: number; publishWindowPctOfCore: number[]; publisherCpuS: number; rssMiB: number; loopDelayP99Ms?: number; loopDelayMaxMs?: number };
  /**
   * The rest of the machine while publishing: CPU used by every process but this server and
   * this bench (other work on a shared machine), in % of one core, and the load average.
   */
  machine?: { othersPctOfCore: number; busyPctOfCores: number; cores: number; loadAverage: number[] };
  buildSeconds?: number;
  startSeconds?: number;
  provenance: Record<string, string>;
  /** which pass of `--runs` this result is from (1-based) */
  run?: number;
  /** in a summary (`medians`): how many runs it summarizes, and each measure's lowest and highest */
  runs?: number;
  range?: Record<string, [number, number]>;
}

const now = () => Number(process.hrtime.bigint()) / 1e6;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MiB = (b: number) => Math.round((b / 1024 / 1024) * 10) / 10;
const round = (n: number | undefined, d = 1) => (n === undefined ? undefined : Math.round(n * 10 ** d) / 10 ** d);

export function distribution(h: HistogramData): Distribution {
  return {
    count: h.count,
    p50Ms: round(quantile(h, 0.5), 2),
    p99Ms: round(quantile(h, 0.99), 2),
    maxMs: h.count ? round(h.maxMs, 2) : undefined,
    meanMs: h.count ? round(h.sumMs / h.count, 2) : undefined,
  };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function get(port: number, path: string, timeoutMs: number): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.setTimeout(timeoutMs, () => req.destroy());
    req.on('error', () => resolve(0));
  });
}

/** A client process, spoken to over IPC. */
class ClientProc {
  readonly child: ChildProcess;
  progress = { held: 0, pending: 0, failed: 0, dropped: 0 };
  private waiting = new Map<string, (m: any) => void>();
  exited = false;

  constructor(script: string, parserUrl: string) {
    this.child = fork(script, [JSON.stringify({ parserUrl })], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: ['--max-old-space-size=4096'] });
    this.child.on('message', (m: any) => {
      if (m.type === 'progress') this.progress = m;
      const key = m.type === 'mark' ? `mark:${m.name}` : m.type;
      const w = this.waiting.get(key);
      if (w) this.waiting.delete(key), w(m);
    });
    this.child.on('exit', () => {
      this.exited = true;
      for (const [, w] of this.waiting) w(undefined);
      this.waiting.clear();
    });
  }

  /** Wait for one message of a kind (undefined after timeoutMs or when the process exits). */
  expect(key: string, timeoutMs: number): Promise<any> {
    if (this.exited) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const timer = setTimeout(() => (this.waiting.delete(key), resolve(undefined)), timeoutMs);
      this.waiting.set(key, (m) => (clearTimeout(timer), resolve(m)));
    });
  }

  send(message: object) {
    if (!this.exited && this.child.connected) this.child.send(message);
  }

  kill() {
    if (!this.exited) this.child.kill('SIGKILL');
  }
}

let workerScript: string | undefined;
function workerFile(): string {
  if (!workerScript) {
    const dir = mkdtempSync(join(tmpdir(), 'sse-bench-'));
    workerScript = join(dir, 'client.mjs');
    writeFileSync(workerScript, WORKER_SOURCE);
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  return workerScript;
}

const parserUrl = () => pathToFileURL(createRequire(import.meta.url).resolve('eventsource-parser')).href;

function addCounts(into: Record<string, number>, from: Record<string, number> = {}) {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}

export const sourceAddresses = (clients: number, perSource: number) =>
  Array.from({ length: Math.max(1, Math.ceil(clients / perSource)) }, (_, i) => `127.0.0.${2 + i}`);

/** Bench one target. Never throws: a failure is a row with its reason. */
export async function benchTarget(t: BenchTarget, options: BenchOptions): Promise<BenchResult> {
  const base: BenchResult = { id: t.id, kind: t.kind, language: t.language, framework: t.framework, status: 'failed', clients: options.clients, provenance: t.provenance };
  const say = (line: string) => options.onProgress?.(`${t.id}: ${line}`);
  const unavailable = await t.unavailable();
  if (unavailable) return { ...base, status: 'skipped', reason: unavailable };

  let server: ResultPromise | undefined;
  const clients: ClientProc[] = [];
  const killAll = () => {
    for (const c of clients) c.kill();
    if (server?.pid !== undefined) killTree(server.pid);
  };
  process.once('exit', killAll);
  try {
    // build
    let t0 = Date.now();
    say('building');
    const ticker = setInterval(() => say(`building (${Math.round((Date.now() - t0) / 1000)} s)`), 10_000);
    try {
      await t.build((line) => say(line));
    } finally {
      clearInterval(ticker);
    }
    base.buildSeconds = round((Date.now() - t0) / 1000);

    // start
    const port = await freePort();
    base.port = port;
    const secret = freshSecret();
    t0 = Date.now();
    say(`starting on 127.0.0.1:${port}`);
    server = t.start(port, secret);
    let output = '';
    server.all?.on('data', (chunk: Buffer) => (output = (output + chunk.toString('utf8')).slice(-2000)));
    let exited = false;
    void server.then(() => (exited = true));
    const startDeadline = Date.now() + 120_000;
    while (!exited && Date.now() < startDeadline && (await get(port, t.healthPath, 1000)) !== 200) await sleep(200);
    if (exited || Date.now() >= startDeadline) {
      const tail = output.trim().split('\n').slice(-3).join(' | ');
      throw new Error(exited ? `exited at start${tail ? `: ${tail}` : ''}` : 'no 200 from its health path within 120 s');
    }
    base.startSeconds = round((Date.now() - t0) / 1000);
    const pid = server.pid!;
    await sleep(1000);
    const idle = await medianRss(pid);
    const cpu0 = sampleTree(pid).cpuSeconds;

    // connect
    // enough client processes that none needs more descriptors than the open-files limit
    const limit = nofileLimit()?.soft ?? 1024;
    const procs = Math.max(1, Math.min(Math.max(options.procs, Math.ceil(options.clients / Math.max(256, limit - 512))), options.clients));
    const script = workerFile();
    const url = parserUrl();
    for (let i = 0; i < procs; i++) clients.push(new ClientProc(script, url));
    const ready = await Promise.all(clients.map((c) => c.expect('ready', 10_000)));
    if (ready.some((r) => !r)) throw new Error('a client process did not start');
    const tag = randomBytes(6).toString('hex');
    const sources = sourceAddresses(options.clients, options.perSource);
    const connectStarted = now();
    let offset = 0;
    clients.forEach((c, i) => {
      const count = Math.floor(options.clients / procs) + (i < options.clients % procs ? 1 : 0);
      c.send({
        type: 'start',
        host: '127.0.0.1',
        port,
        path: t.streamPath,
        headers: t.streamHeaders,
        mode: t.mode,
        event: 'notification',
        tag,
        count,
        offset,
        sources,
        perSource: options.perSource,
        inflight: options.inflight,
        connectTimeoutMs: options.connectTimeoutS * 1000,
        lifetimeMs: (options.connectTimeoutS + options.secs + options.drainS + 120) * 1000,
      });
      offset += count;
    });
    const total = () => clients.reduce((a, c) => ({ held: a.held + c.progress.held, pending: a.pending + c.progress.pending, failed: a.failed + c.progress.failed }), { held: 0, pending: 0, failed: 0 });
    const connectDeadline = Date.now() + options.connectTimeoutS * 1000 + 5000;
    let lastSaid = 0;
    await sleep(600);
    for (let i = 0; i < 100_000 && Date.now() < connectDeadline; i++) {
      const p = total();
      if (p.pending === 0 && clients.every((c) => c.progress.pending === 0)) break;
      if (clients.some((c) => c.exited)) throw new Error('a client process died while connecting');
      if (Date.now() - lastSaid > 2000) (lastSaid = Date.now()), say(`connecting: ${p.held}/${options.clients} open, ${p.failed} failed`);
      await sleep(250);
    }
    const connectSeconds = (now() - connectStarted) / 1000;
    if (total().pending > 0) await Promise.all(clients.map((c) => (c.send({ type: 'cutoff' }), c.expect('cutoff', 5000))));
    await sleep(600); // a progress report after the cutoff
    const afterConnect = total();
    say(`${afterConnect.held}/${options.clients} open after ${connectSeconds.toFixed(1)} s (${afterConnect.failed} failed${afterConnect.pending ? `, ${afterConnect.pending} still pending` : ''})`);
    await sleep(1000);
    const loaded = await medianRss(pid);
    const cpu1 = sampleTree(pid).cpuSeconds;

    // publish
    const publishMark = await Promise.all(clients.map((c) => (c.send({ type: 'mark', name: 'publish' }), c.expect('mark:publish', 5000))));
    const publisherCpu0 = process.cpuUsage();
    const machine0 = machineCpu();
    const load = loadavg().map((l) => Math.round(l * 100) / 100);
    const pub = t.publish(secret);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    const planned = Math.max(1, Math.round(options.publishRate * options.secs));
    const answer = emptyHistogram();
    const publishErrors: Record<string, number> = {};
    let accepted = 0;
    let inFlight = 0;
    const answers: Promise<void>[] = [];
    const publishOne = (seq: number) =>
      new Promise<void>((resolve) => {
        const sentAt = now();
        const body = pub.body({ bench: tag, seq, t: sentAt });
        inFlight++;
        const done = (error?: string) => {
          inFlight--;
          if (error) publishErrors[error] = (publishErrors[error] ?? 0) + 1;
          else accepted++;
          addValue(answer, now() - sentAt);
          resolve();
        };
        const req = http.request(
          { host: '127.0.0.1', port, path: pub.path, method: 'POST', agent, headers: { ...pub.headers, 'Content-Length': String(Buffer.byteLength(body)) } },
          (res) => {
            res.resume();
            res.on('end', () => done(res.statusCode && res.statusCode >= 200 && res.statusCode < 300 ? undefined : `HTTP ${res.statusCode}`));
            res.on('error', () => done('answer cut'));
          },
        );
        req.setTimeout(10_000, () => req.destroy(new Error('no answer within 10 s')));
        req.on('error', (e) => done((e as NodeJS.ErrnoException).code ?? e.message));
        req.end(body);
      });
    const publishStarted = now();
    let peak = loaded;
    let nextSample = Date.now();
    for (let seq = 0; seq < planned; seq++) {
      const due = publishStarted + (seq * 1000) / options.publishRate;
      const wait = due - now();
      if (wait > 0) await sleep(wait);
      if (Date.now() >= nextSample) {
        peak = Math.max(peak, sampleTree(pid).rssBytes);
        nextSample = Date.now() + 500;
      }
      if (inFlight >= 64) {
        publishErrors['skipped: 64 publishes already waiting for an answer'] = (publishErrors['skipped: 64 publishes already waiting for an answer'] ?? 0) + 1;
        continue;
      }
      answers.push(publishOne(seq));
    }
    await Promise.race([Promise.all(answers), sleep(12_000)]);
    const publishEnded = now();
    const publishWindowMs = publishEnded - publishStarted;
    agent.destroy();
    const publisherCpu = process.cpuUsage(publisherCpu0);

    // drain
    let drainMs: number | undefined;
    for (let i = 0; i < 10_000; i++) {
      const polls = await Promise.all(clients.map((c) => (c.send({ type: 'poll', expected: accepted }), c.expect('poll', 5000))));
      if (polls.every((p) => p && p.missing === 0)) {
        drainMs = now() - publishEnded;
        break;
      }
      if (now() - publishEnded > options.drainS * 1000) break;
      if (i % 8 === 0) say(`waiting for ${polls.reduce((a, p) => a + (p?.missing ?? 0), 0)} events still on their way`);
      await sleep(250);
    }
    peak = Math.max(peak, sampleTree(pid).rssBytes);
    const end = sampleTree(pid);
    const machine1 = machineCpu();
    const endMarks = await Promise.all(clients.map((c) => (c.send({ type: 'mark', name: 'end' }), c.expect('mark:end', 5000))));

    // results
    const results = await Promise.all(clients.map((c) => (c.send({ type: 'finish', expected: accepted }), c.expect('result', 15_000))));
    if (results.some((r) => !r)) throw new Error('a client process gave no result');
    const connectErrors: Record<string, number> = {};
    const dropped: Record<string, number> = {};
    for (const r of results) addCounts(connectErrors, r.failed), addCounts(dropped, r.dropped);
    const held = results.reduce((a, r) => a + r.open, 0);
    const latency = mergeHistograms(results.map((r) => r.latency));
    const windowPct = clients.map((_, i) => {
      const a = publishMark[i]?.cpuMs;
      const b = endMarks[i]?.cpuMs;
      return a === undefined || b === undefined ? NaN : Math.round(((b - a) / (now() - publishStarted)) * 100);
    });
    const result: BenchResult = {
      ...base,
      status: 'ok',
      held,
      connectErrors,
      dropped,
      connectSeconds: round(connectSeconds),
      connect: distribution(mergeHistograms(results.map((r) => r.connect))),
      publishes: {
        planned,
        accepted,
        errors: publishErrors,
        answer: distribution(answer),
        achievedRate: round(accepted / (publishWindowMs / 1000), 2)!,
      },
      latency: distribution(latency),
      lost: results.reduce((a, r) => a + r.lost, 0),
      lossyStreams: results.reduce((a, r) => a + r.lossyStreams, 0),
      duplicated: results.reduce((a, r) => a + r.dup, 0),
      idGaps: results.reduce((a, r) => a + r.gaps, 0),
      extra: results.reduce((a, r) => a + r.extra, 0),
      drainMs: round(drainMs, 0),
      memory: {
        idleMiB: MiB(idle),
        loadedMiB: MiB(loaded),
        peakMiB: MiB(peak),
        perStreamKiB: afterConnect.held > 0 ? round((loaded - idle) / afterConnect.held / 1024) : undefined,
      },
      serverCpu: {
        connectS: round(cpu1 - cpu0, 2)!,
        publishS: round(end.cpuSeconds - cpu1, 2)!,
        publishPctOfCore: Math.round(((end.cpuSeconds - cpu1) / ((now() - publishStarted) / 1000)) * 100),
        totalS: round(end.cpuSeconds - cpu0, 2)!,
        processes: end.processes,
        // server CPU while publishing, per bench event delivered (timed events ride along)
        usPerDeliveredEvent: latency.count ? round(((end.cpuSeconds - cpu1) * 1e6) / latency.count, 1) : undefined,
      },
      client: {
        procs,
        cpuS: round(results.reduce((a, r) => a + r.cpuMs, 0) / 1000, 2)!,
        publishWindowPctOfCore: windowPct,
        publisherCpuS: round((publisherCpu.user + publisherCpu.system) / 1e6, 2)!,
        rssMiB: MiB(results.reduce((a, r) => a + r.rssBytes, 0)),
        // the worst client process's event-loop delay while publishing (monitorEventLoopDelay)
        loopDelayP99Ms: round(Math.max(...results.map((r) => r.loopDelayMs?.p99 ?? 0)), 1),
        loopDelayMaxMs: round(Math.max(...results.map((r) => r.loopDelayMs?.max ?? 0)), 1),
      },
    };
    {
      const windowS = (now() - publishStarted) / 1000;
      const cores = (machine1.totalS - machine0.totalS) / windowS;
      const busy = machine1.busyS - machine0.busyS;
      const ours = (end.cpuSeconds - cpu1) + results.reduce((a, r, i) => a + ((endMarks[i]?.cpuMs ?? 0) - (publishMark[i]?.cpuMs ?? 0)) / 1000, 0) + (publisherCpu.user + publisherCpu.system) / 1e6;
      result.machine = {
        othersPctOfCore: Math.max(0, Math.round(((busy - ours) / windowS) * 100)),
        busyPctOfCores: Math.round((busy / (machine1.totalS - machine0.totalS)) * 100),
        cores: Math.round(cores),
        loadAverage: load,
      };
    }
    if (held < options.clients) result.reason = `${options.clients - held} of ${options.clients} streams not held (${[...Object.entries(connectErrors), ...Object.entries(dropped)].map(([k, v]) => `${k}: ${v}`).join(', ') || 'still connecting'})`;
    return result;
  } catch (error) {
    return { ...base, status: 'failed', reason: (error as Error).message.split('\n')[0] };
  } finally {
    for (const c of clients) c.kill();
    if (server?.pid !== undefined) {
      await stopGroup(server.pid, 5000);
      killTree(server.pid);
    }
    process.off('exit', killAll);
  }
}

