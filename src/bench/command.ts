// `create-sse-server bench`: the fan-out benchmark of issue 13. Builds and starts each target
// (and the hub), holds N streams, publishes at a steady rate, prints a row per target as it
// finishes (progress on stderr meanwhile), and writes JSON and an SVG chart.
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { resolve } from 'node:path';
import { nofileLimit, raiseNofile } from './proc.js';
import { chartSvg, markdownTable, medians, tableHeader, tableRow } from './report.js';
import { benchTarget, DEFAULTS, sourceAddresses, type BenchResult } from './run.js';
import { BenchUsageError, cacheRoot, selectBenchTargets } from './targets.js';

export interface BenchCommandOptions {
  all?: boolean;
  clients?: number;
  publishRate?: number;
  secs?: number;
  procs?: number;
  connectTimeout?: number;
  drain?: number;
  json?: string;
  svg?: string;
  markdown?: boolean;
  dir?: string;
  work?: string | false;
  centrifugo?: string;
  from?: string;
  gap?: number;
  title?: string;
  /** passes over every target; the table and chart show each target's median over them */
  runs?: number;
  /** redis: each target rendered with `broker: redis`, one instance, on a Redis the bench starts */
  broker?: string;
}

export interface BenchDocument {
  tool: 'create-sse-server bench';
  date: string;
  command: string;
  machine: { cpus: number; cpuModel: string; memoryGiB: number; kernel: string; node: string; loadAverageAtStart: number[] };
  load: { clients: number; publishRate: number; secs: number; procs: number; sourceAddresses: string[]; openFiles: { soft: number; hard: number; note?: string } };
  /** how many passes over the targets (each result has its `run`, 1-based) */
  runs?: number;
  /** `--broker redis`: every target ran with a Redis broker (one instance, a Redis of the bench's own) */
  broker?: 'redis';
  results: BenchResult[];
}

export function machine() {
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? '?',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    loadAverageAtStart: loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

export const defaultTitle = (doc: BenchDocument) =>
  `${doc.load.clients} streams, ${doc.load.publishRate} publishes/s for ${doc.load.secs} s, ${doc.machine.cpus} cores (${doc.date.slice(0, 16).replace('T', ' ')} UTC)`;

export async function benchCommand(ids: string[], opts: BenchCommandOptions): Promise<number> {
  if (opts.from) {
    const doc = JSON.parse(readFileSync(opts.from, 'utf8')) as BenchDocument;
    const summary = medians(doc.results);
    console.log(tableHeader());
    for (const r of summary) console.log(tableRow(r));
    if (opts.markdown) console.log(`\n${markdownTable(summary)}`);
    if (opts.svg) writeFileSync(opts.svg, chartSvg(summary, opts.title ?? defaultTitle(doc)));
    return 0;
  }
  const clients = opts.clients ?? DEFAULTS.clients;
  const options = {
    ...DEFAULTS,
    clients,
    publishRate: opts.publishRate ?? DEFAULTS.publishRate,
    secs: opts.secs ?? DEFAULTS.secs,
    procs: opts.procs ?? DEFAULTS.procs,
    connectTimeoutS: opts.connectTimeout ?? DEFAULTS.connectTimeoutS,
    drainS: opts.drain ?? DEFAULTS.drainS,
    onProgress: (line: string) => console.error(`  … ${line}`),
  };
  if (!(clients >= 1 && clients <= 100_000)) throw new BenchUsageError('--clients: 1 to 100000');
  if (!(options.publishRate > 0 && options.publishRate <= 1000)) throw new BenchUsageError('--publish-rate: more than 0, at most 1000 per second');
  if (!(options.secs > 0 && options.secs <= 600)) throw new BenchUsageError('--secs: more than 0, at most 600');
  const runs = opts.runs ?? 1;
  if (!(Number.isInteger(runs) && runs >= 1 && runs <= 9)) throw new BenchUsageError('--runs: a whole number from 1 to 9');
  if (opts.broker && opts.broker !== 'memory' && opts.broker !== 'redis') throw new BenchUsageError('--broker: memory or redis');
  const redis = opts.broker === 'redis' ? await brokerRenders(ids, Boolean(opts.all)) : undefined;
  const work = opts.work === false ? undefined : resolve(opts.work ?? `${cacheRoot()}/bench-work${redis ? '-redis' : ''}`);
  let targets;
  try {
    targets = selectBenchTargets(ids, Boolean(opts.all), redis?.dir ?? opts.dir ?? 'generated', { workDir: work, centrifugoBin: opts.centrifugo, envFor: redis?.envFor, noHub: Boolean(redis) });
  } catch (error) {
    await redis?.server.close();
    throw error;
  }

  // Both sides need a file descriptor per stream (and some): raise the limit here; the servers
  // and client processes started from now on inherit it.
  const openFiles = raiseNofile(Math.max(65_536, clients * 2 + 1024));
  if (openFiles.soft < clients + 256) console.error(`warning: open-files limit is ${openFiles.soft} (${openFiles.note ?? ''}); streams past it will fail with EMFILE`);

  const doc: BenchDocument = {
    tool: 'create-sse-server bench',
    date: new Date().toISOString(),
    command: `create-sse-server bench ${process.argv.slice(3).join(' ')}`.trim(),
    machine: machine(),
    load: {
      clients,
      publishRate: options.publishRate,
      secs: options.secs,
      procs: options.procs,
      sourceAddresses: sourceAddresses(clients, options.perSource),
      openFiles: { ...(nofileLimit() ?? openFiles), ...(openFiles.note ? { note: openFiles.note } : {}) },
    },
    runs,
    ...(redis ? { broker: 'redis' as const } : {}),
    results: [],
  };
  const stop = () => process.exit(130); // 'exit' handlers kill every process tree we started
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  console.error(`bench: ${targets.map((t) => t.id).join(', ')}; ${clients} streams from ${options.procs} client processes, ${options.publishRate} publishes/s for ${options.secs} s`);
  console.log(tableHeader());
  try {
    // Passes, not repeats of one target: a slow minute of the machine then touches every
    // target once rather than all runs of one.
    for (let run = 1; run <= runs; run++) {
      if (runs > 1) console.error(`bench: pass ${run} of ${runs}`);
      for (const [i, t] of targets.entries()) {
        if ((i > 0 || run > 1) && opts.gap) {
          console.error(`  … pausing ${opts.gap} s before ${t.id}`);
          await new Promise((r) => setTimeout(r, opts.gap! * 1000));
        }
        const result = { ...(await benchTarget(t, options)), run };
        doc.results.push(result);
        console.log(tableRow(result));
        if (opts.json) writeFileSync(opts.json, `${JSON.stringify(doc, null, 2)}\n`);
      }
    }
    if (runs > 1) {
      console.log(`\nmedians over ${runs} runs:`);
      console.log(tableHeader());
      for (const r of medians(doc.results)) console.log(tableRow(r));
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    await redis?.server.close();
  }
  if (opts.svg) writeFileSync(opts.svg, chartSvg(medians(doc.results), opts.title ?? defaultTitle(doc)));
  if (opts.markdown) console.log(`\n${markdownTable(medians(doc.results))}`);
  console.log('\np50/p99/max: publish-to-receipt over every event on every stream; lost: events missing on streams held to the end; KiB/stream: (RSS with N - idle RSS) / N, whole server process tree; client %core: each client process during publishing');
  return doc.results.some((r) => r.status === 'failed') ? 1 : 0;
}

/**
 * `--broker redis`: the example spec with `broker: redis`, rendered for the named targets (or
 * every runs target that has a Redis broker) into the cache, and a Redis on a free port; each
 * target gets a database of its own. The Redis process is not part of any server's tree: its
 * CPU shows under "others".
 */
async function brokerRenders(ids: string[], all: boolean) {
  const { generate } = await import('../generate.js');
  const { loadSpec } = await import('../spec.js');
  const { exampleSpecPath } = await import('../create.js');
  const { loadTargets, redisUnsupported } = await import('../targets.js');
  const { RedisServer } = await import('../smoke/broker.js');
  const supported = loadTargets().filter((t) => t.level === 'runs' && !redisUnsupported(t));
  const chosen = all ? supported.map((t) => t.id) : ids;
  const dir = `${cacheRoot()}/bench-redis-src`;
  await generate({ ...(await loadSpec(exampleSpecPath)), broker: 'redis' }, dir, { targets: chosen, force: true });
  const server = await RedisServer.launch();
  console.error(`bench: broker redis at 127.0.0.1:${server.port} (a database per target)`);
  return { dir, server, envFor: (id: string) => ({ SSE_REDIS_URL: `${server.url}/${chosen.indexOf(id) % 15 + 1}` }) };
}
