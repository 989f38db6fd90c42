// Check group R (docs/broker.md): two instances of one target rendered with `broker: redis`,
// on one Redis that this harness starts, stops and starts again, serve one stream.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { killTree } from '../process-tree.js';
import { normalizeSpec, type Spec } from '../spec.js';
import { request } from './client.js';
import { Context, expect, expectJsonError, fail, sleep, type ServerHandle } from './context.js';
import { freePort, HOST, ownGroup, releaseGroup, timedCheck, waitUntilReady, type Outcome, type StartServer } from './harness.js';

export type BrokerCheckId = 'R1' | 'R2' | 'R3' | 'R4' | 'R5' | 'R6' | 'R7';

export const brokerChecks: Array<{ id: BrokerCheckId; title: string }> = [
  { id: 'R1', title: 'fan-out: every publish on either instance reaches every stream once, in one order' },
  { id: 'R2', title: 'resume on the other instance with Last-Event-ID' },
  { id: 'R3', title: 'a timed event fires once per period for the deployment' },
  { id: 'R4', title: '/health carries the broker state; the Redis password is never printed' },
  { id: 'R5', title: 'Redis away for 5 s: 503 with Retry-After, streams stay open, nothing accepted is lost' },
  { id: 'R6', title: 'an instance started without Redis serves, retries, then delivers' },
  { id: 'R7', title: 'rediss://: an instance on Redis over TLS joins the stream; one that does not trust the CA stays out' },
];

export interface BrokerRun {
  error?: string;
  buildMs?: number;
  checks: Partial<Record<BrokerCheckId, Outcome>>;
}

const PUBLISH_TOKEN = 'broker-check-publish-token-0123456789abcdef';

/** The spec the group renders: the user's, with `broker: redis`, a 1 s heartbeat and one timed event every second. */
export function brokerSpec(spec: Spec): Spec {
  const timed = spec.events.find((e) => e.every > 0);
  return normalizeSpec(
    {
      ...spec,
      broker: 'redis',
      heartbeat: 1,
      history: Math.max(spec.history, 100),
      maxClients: Math.max(spec.maxClients, 100),
      auth: { required: false },
      publish: { enabled: true },
      events: [
        { name: timed?.name ?? 'clock', every: 1000, data: timed?.data ?? { source: 'clock' } },
        ...spec.events.filter((e) => e.name !== (timed?.name ?? 'clock')).map((e) => ({ ...e, every: 0 })),
      ],
    },
    'broker variant',
  );
}

// ---- a Redis of our own -------------------------------------------------------------------

/** A private CA and a certificate it signed for localhost and 127.0.0.1 (openssl, one day). */
interface TlsFiles {
  /** the CA certificate, PEM: what a client must trust */
  ca: string;
  /** the same CA as a PKCS#12 trust store (password `changeit`), for Java */
  caStore: string;
  cert: string;
  key: string;
}

function makeTlsFiles(dir: string): TlsFiles {
  const files = { ca: join(dir, 'ca.pem'), caStore: join(dir, 'ca.p12'), cert: join(dir, 'server.pem'), key: join(dir, 'server.key') };
  const caKey = join(dir, 'ca.key');
  const csr = join(dir, 'server.csr');
  const san = join(dir, 'san.ext');
  writeFileSync(san, 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  const run = (command: string, args: string[]) => execFileSync(command, args, { stdio: 'ignore' });
  try {
    run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', caKey, '-out', files.ca, '-days', '1', '-subj', '/CN=create-sse-server test CA']);
    run('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', files.key, '-out', csr, '-subj', '/CN=localhost']);
    run('openssl', ['x509', '-req', '-in', csr, '-CA', files.ca, '-CAkey', caKey, '-CAcreateserial', '-out', files.cert, '-days', '1', '-extfile', san]);
    run('keytool', ['-importcert', '-noprompt', '-alias', 'sse-test-ca', '-file', files.ca, '-keystore', files.caStore, '-storetype', 'PKCS12', '-storepass', 'changeit']);
  } catch (error) {
    throw new Error(`could not make the TLS certificates for R7 with openssl and keytool: ${(error as Error).message.split('\n')[0]}`);
  }
  return files;
}

/**
 * Debian's redis-server on a free loopback port, AOF on (so a restart keeps ids), in a scratch
 * folder, with a password (every target must take it from the URL, and never log it); with
 * `tls`, also on a second port over TLS, its certificate signed by a CA of its own.
 */
export class RedisServer {
  private pid?: number;
  private exited?: Promise<void>;
  readonly password = randomBytes(12).toString('hex');
  private constructor(
    readonly port: number,
    readonly dir: string,
    /** false: the caller stops it (`up` does, on Ctrl-C); true: the harness's signal handlers kill it */
    private readonly tracked: boolean,
    readonly tls?: TlsFiles & { port: number },
  ) {}

  static async launch(options: { tracked?: boolean; tls?: boolean } = {}): Promise<RedisServer> {
    const dir = mkdtempSync(join(tmpdir(), 'sse-redis-'));
    const tls = options.tls ? { ...makeTlsFiles(dir), port: await freePort() } : undefined;
    const redis = new RedisServer(await freePort(), dir, options.tracked ?? true, tls);
    await redis.start();
    return redis;
  }

  /** SIGKILL at once (for process exit, where nothing can be awaited). */
  kill() {
    if (this.pid) killTree(this.pid);
  }

  get url() {
    return `redis://default:${this.password}@${HOST}:${this.port}`;
  }

  /** the TLS port's URL, by host name (the certificate names localhost) */
  get tlsUrl() {
    return this.tls && `rediss://default:${this.password}@localhost:${this.tls.port}`;
  }

  async start() {
    const child = spawn(
      'redis-server',
      [
        ...['--port', String(this.port), '--bind', HOST, '--dir', this.dir, '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--logfile', join(this.dir, 'redis.log'), '--requirepass', this.password],
        ...(this.tls ? ['--tls-port', String(this.tls.port), '--tls-cert-file', this.tls.cert, '--tls-key-file', this.tls.key, '--tls-ca-cert-file', this.tls.ca, '--tls-auth-clients', 'no'] : []),
      ],
      { detached: true, stdio: 'ignore' },
    );
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (error) => reject(new Error(`redis-server could not start: ${error.message} (apt-get install redis-server)`)));
    });
    this.pid = child.pid!;
    if (this.tracked) ownGroup(this.pid);
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    const t0 = Date.now();
    while (!(await redisPing(this.port, this.password))) {
      if (Date.now() - t0 > 10_000) throw new Error(`redis-server did not answer PING on port ${this.port} within 10 s`);
      await sleep(50);
    }
  }

  /** SIGTERM (Redis writes its AOF and exits), and wait until it has. */
  async stop() {
    if (!this.pid) return;
    process.kill(this.pid, 'SIGTERM');
    await Promise.race([this.exited, sleep(10_000)]);
    if (this.tracked) await releaseGroup(this.pid);
    else killTree(this.pid);
    this.pid = undefined;
  }

  async close() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** True when something on the port answers PING with +PONG. */
export function redisPing(port: number, password: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, HOST);
    const done = (ok: boolean) => (socket.destroy(), resolve(ok));
    socket.setTimeout(1000, () => done(false));
    socket.on('error', () => done(false));
    let answer = '';
    socket.on('connect', () => socket.write(`AUTH default ${password}\r\nPING\r\n`));
    socket.on('data', (chunk) => {
      answer += chunk.toString();
      if (answer.includes('\r\n+PONG') || answer.startsWith('-')) done(answer.includes('+PONG'));
    });
  });
}

// ---- the checks ---------------------------------------------------------------------------

interface Instances {
  a: Context;
  b: Context;
  redis: RedisServer;
  /** starts a third instance (R6, R7), not rebuilt, once it answers */
  launch(env: Record<string, string>): Promise<Context>;
  env: Record<string, string>;
  spec: Spec;
  /** instances started by a check (R6, R7), for the password check at the end */
  extra: ServerHandle[];
}

const ids = (events: Array<{ id?: string }>) => events.map((e) => Number(e.id));

function expectIncreasing(stream: { events: Array<{ id?: string }> }, label: string) {
  const seen = ids(stream.events);
  for (let i = 1; i < seen.length; i++) {
    expect(seen[i] > seen[i - 1], `${label}: id ${seen[i]} came after ${seen[i - 1]} (ids must increase across both instances)`);
  }
}

/** The ids of the events named `event` whose data has `run` = this run's tag, in arrival order. */
function tagged(stream: { events: Array<{ id?: string; event?: string; data: string }> }, event: string, run: string) {
  return stream.events.filter((e) => e.event === event && e.data.includes(`"run":"${run}"`));
}

async function publishOn(ctx: Context, event: string, data: unknown) {
  return Number(await ctx.publish(event, data));
}

interface BrokerHealth {
  type?: unknown;
  connected?: unknown;
}

async function brokerHealth(ctx: Context): Promise<BrokerHealth> {
  const res = await request(`${ctx.base}/health`, { timeoutMs: 3000 });
  expect(res.status === 200, `GET /health on ${ctx.base} answered ${res.status}`);
  let body: { status?: unknown; broker?: BrokerHealth };
  try {
    body = JSON.parse(res.body);
  } catch {
    return fail(`GET /health body is not JSON: ${res.body.slice(0, 120)}`);
  }
  expect(body.status === 'ok', `GET /health says status ${JSON.stringify(body.status)}, not "ok" (the instance serves its streams either way)`);
  expect(body.broker && body.broker.type === 'redis' && typeof body.broker.connected === 'boolean', `GET /health ${res.body.slice(0, 160)} has no "broker": {"type": "redis", "connected": <bool>}`);
  return body.broker;
}

const r1 = async ({ a, b }: Instances) => {
  const run = `r1-${Date.now()}`;
  const streams = [await a.connect({}, 'stream on A'), await a.connect({}, 'stream 2 on A'), await b.connect({}, 'stream on B'), await b.connect({}, 'stream 2 on B')];
  const labels = ['A1', 'A2', 'B1', 'B2'];
  await sleep(300);
  const published: number[] = [];
  for (let i = 0; i < 20; i++) published.push(await publishOn(i % 2 ? b : a, 'notification', { run, n: i }));
  for (let i = 1; i < published.length; i++) expect(published[i] > published[i - 1], `publish ${i} answered id ${published[i]} after ${published[i - 1]}: ids must increase across instances`);
  for (const [i, s] of streams.entries()) {
    await s.until((x) => tagged(x, 'notification', run).length >= 20, 10_000).catch(() => fail(`${labels[i]} received ${tagged(s, 'notification', run).length} of the 20 publishes within 10 s (ids ${ids(tagged(s, 'notification', run)).join(',')}; published ${published.join(',')})`));
  }
  await sleep(300);
  for (const [i, s] of streams.entries()) {
    const got = ids(tagged(s, 'notification', run));
    expect(JSON.stringify(got) === JSON.stringify(published), `${labels[i]} received ids ${got.join(',')}, published were answered ${published.join(',')}`);
    expectIncreasing(s, labels[i]);
  }
  for (const s of streams) s.close();
  return `20 publishes (10 on each instance, ids ${published[0]}-${published.at(-1)}) reached 2 streams on each instance once, in one order`;
};

const r2 = async ({ a, b }: Instances) => {
  const run = `r2-${Date.now()}`;
  const moves: string[] = [];
  for (const [from, to, label, query] of [
    [a, b, 'A to B', false],
    [b, a, 'B to A', true],
  ] as const) {
    const first = await from.connect({}, `stream on ${label[0]}`);
    await sleep(200);
    const before = [await publishOn(from, 'notification', { run, step: 'before' }), await publishOn(from, 'notification', { run, step: 'before' })];
    await first.until((s) => s.ids.has(String(before[1])), 5000, `event ${before[1]} on the first instance`);
    const lastId = first.events.at(-1)!.id!;
    first.close();
    const missed: number[] = [];
    for (let i = 0; i < 3; i++) missed.push(await publishOn(to, 'notification', { run, step: 'missed', i }));
    const resumed = query ? await to.connect({ query: { lastEventId: lastId } }, `resumed stream (${label})`) : await to.connect({ headers: { 'Last-Event-ID': lastId } }, `resumed stream (${label})`);
    await resumed.until((s) => missed.every((id) => s.ids.has(String(id))), 5000, `the 3 events published while away (${label})`);
    const live = await publishOn(to, 'notification', { run, step: 'live' });
    await resumed.until((s) => s.ids.has(String(live)), 5000, `the live event after the replay (${label})`);
    const got = ids(resumed.events);
    expect(got.every((id) => id > Number(lastId)), `${label}: resumed after ${lastId} but received ${got.filter((id) => id <= Number(lastId)).join(',')} again`);
    expect(new Set(got).size === got.length, `${label}: an event arrived twice: ${got.join(',')}`);
    expectIncreasing(resumed, `resumed stream (${label})`);
    resumed.close();
    moves.push(`${label} (${query ? '?lastEventId=' : 'Last-Event-ID'} ${lastId}): ${missed.join(',')} replayed, ${live} live`);
  }
  return moves.join('; ');
};

const r3 = async ({ a, b }: Instances) => {
  const timed = a.spec.events.find((e) => e.every > 0)!;
  const sa = await a.connect({}, 'stream on A');
  const sb = await b.connect({}, 'stream on B');
  await sleep(6000);
  const onA = sa.events.filter((e) => e.event === timed.name);
  const onB = sb.events.filter((e) => e.event === timed.name);
  for (const [label, got] of [
    ['A', onA],
    ['B', onB],
  ] as const) {
    expect(got.length >= 4 && got.length <= 8, `${label} received ${got.length} "${timed.name}" events in 6 s (every ${timed.every} ms for the deployment: 4 to 8 expected; two timers would give about 12)`);
  }
  const idsB = new Set(onB.map((e) => e.id));
  const first = Math.max(Number(onA[0].id), Number(onB[0].id));
  const last = Math.min(Number(onA.at(-1)!.id), Number(onB.at(-1)!.id));
  const shared = onA.filter((e) => Number(e.id) >= first && Number(e.id) <= last);
  const missing = shared.filter((e) => !idsB.has(e.id));
  expect(!missing.length, `"${timed.name}" ${missing.map((e) => e.id).join(',')} reached A but not B: one timer per instance, not one for the deployment`);
  sa.close();
  sb.close();
  return `"${timed.name}" (every ${timed.every} ms): ${onA.length} on A and ${onB.length} on B in 6 s, the same ids`;
};

const r4 = async ({ a, b, redis }: Instances) => {
  for (const [label, ctx] of [
    ['A', a],
    ['B', b],
  ] as const) {
    const broker = await brokerHealth(ctx);
    expect(broker.connected === true, `GET /health on ${label} says connected ${String(broker.connected)} while Redis is up`);
    expect(!ctx.server.output().includes(redis.password), `${label} printed the Redis password from SSE_REDIS_URL`);
  }
  return '/health on both: "broker": {"type": "redis", "connected": true}; the password in SSE_REDIS_URL appears in no output';
};

interface Attempt {
  on: 'A' | 'B';
  n: number;
  at: number;
  status: number | string;
  id?: number;
}

const r5 = async ({ a, b, redis }: Instances) => {
  const run = `r5-${Date.now()}`;
  const streams = [await a.connect({}, 'stream on A'), await a.connect({}, 'stream 2 on A'), await b.connect({}, 'stream on B'), await b.connect({}, 'stream 2 on B')];
  const labels = ['A1', 'A2', 'B1', 'B2'];
  await sleep(300);
  const attempts: Attempt[] = [];
  let stopAt = Infinity;
  let downFrom = Infinity;
  let upAt = Infinity;
  let n = 0;
  let publishing = true;
  let badError: string | undefined;
  const loop = (async () => {
    while (publishing) {
      const ctx = n % 2 ? b : a;
      const attempt: Attempt = { on: n % 2 ? 'B' : 'A', n, at: Date.now(), status: 0 };
      try {
        const res = await ctx.publishRaw(JSON.stringify({ event: 'notification', data: { run, n } }));
        attempt.status = res.status;
        if (res.status === 202) attempt.id = JSON.parse(res.body).id;
        else if (res.status === 503) {
          try {
            expectJsonError(res, `publish on ${attempt.on} while Redis is away`);
          } catch (error) {
            badError ??= (error as Error).message;
          }
        }
      } catch (error) {
        attempt.status = (error as Error).message;
      }
      attempts.push(attempt);
      n++;
      await sleep(250);
    }
  })();
  let sawDisconnected = false;
  try {
    await sleep(1000);
    stopAt = Date.now();
    await redis.stop();
    downFrom = Date.now();
    const t0 = Date.now();
    while (Date.now() - t0 < 5000) {
      const [ha, hb] = [await brokerHealth(a), await brokerHealth(b)];
      if (ha.connected === false && hb.connected === false) sawDisconnected = true;
      await sleep(500);
    }
    upAt = Date.now();
    await redis.start();
    // publishing goes on until both instances accept again, then three more each
    const t1 = Date.now();
    while (!(['A', 'B'] as const).every((on) => attempts.some((x) => x.on === on && x.at > upAt && x.status === 202))) {
      if (Date.now() - t1 > 15_000) fail(`no 202 from ${attempts.some((x) => x.on === 'A' && x.at > upAt && x.status === 202) ? 'B' : 'A'} within 15 s of Redis starting again (last answers: ${attempts.slice(-4).map((x) => `${x.on} ${x.status}`).join(', ')})`);
      await sleep(200);
    }
    await sleep(1600);
  } finally {
    publishing = false;
    await loop;
  }
  const accepted = attempts.filter((x) => x.status === 202);
  const refused = attempts.filter((x) => x.status === 503);
  const other = attempts.filter((x) => x.status !== 202 && x.status !== 503);
  expect(!other.length, `publishes answered neither 202 nor 503: ${other.slice(0, 4).map((x) => `${x.on}#${x.n} ${x.status}`).join('; ')}`);
  const duringOutage = accepted.filter((x) => x.at > downFrom + 100 && x.at + 100 < upAt);
  expect(!duringOutage.length, `${duringOutage.length} publishes were answered 202 while Redis was stopped (${duringOutage.map((x) => `${x.on}#${x.n}`).join(', ')}): accepted where?`);
  expect(refused.length > 0, 'no publish was answered 503 while Redis was stopped');
  if (badError) fail(badError);
  expect(sawDisconnected, '/health never said "connected": false on both instances while Redis was stopped');
  const wanted = accepted.map((x) => x.id!);
  // A publish answered 503 may still have been applied (Redis ran the script, the answer was
  // lost with the connection; docs/broker.md): it may arrive, once. An accepted one must.
  const nOf = (data: string) => (JSON.parse(data) as { n: number }).n;
  const refusedN = new Set(refused.map((x) => x.n));
  let late = 0;
  for (const [i, s] of streams.entries()) {
    expect(!s.ended, `${labels[i]} ended while Redis was away (streams must stay open)`);
    const have = () => new Set(ids(tagged(s, 'notification', run)));
    await s.until(() => wanted.every((id) => have().has(id)), 10_000).catch(() => {
      fail(`${labels[i]} received ${wanted.filter((id) => have().has(id)).length} of the ${wanted.length} accepted publishes within 10 s; missing ids ${wanted.filter((id) => !have().has(id)).join(',')}`);
    });
    const got = tagged(s, 'notification', run);
    const extra = got.filter((e) => !wanted.includes(Number(e.id)));
    expect(extra.every((e) => refusedN.has(nOf(e.data))), `${labels[i]} received ${extra.map((e) => e.id).join(',')}, which no publish was answered with (accepted were ${wanted.join(',')})`);
    expect(new Set(got.map((e) => nOf(e.data))).size === got.length, `${labels[i]} received a publish twice: ids ${ids(got).join(',')}`);
    late = Math.max(late, extra.length);
    expectIncreasing(s, labels[i]);
  }
  for (const s of streams) s.close();
  return `Redis stopped ${((upAt - stopAt) / 1000).toFixed(1)} s: ${refused.length} publishes 503 (JSON, Retry-After), ${accepted.length} accepted, all ${accepted.length} on every stream once, in order${late ? ` (and ${late} answered 503 that Redis had applied)` : ''}; 4 streams stayed open`;
};

const r6 = async ({ redis, launch, env }: Instances) => {
  await redis.stop();
  let c: Context | undefined;
  try {
    c = await launch(env);
    const broker = await brokerHealth(c);
    expect(broker.connected === false, `GET /health says connected ${String(broker.connected)} with Redis down`);
    const res = await c.publishRaw(JSON.stringify({ event: 'notification', data: { step: 'no redis' } }));
    expect(res.status === 503, `publish with Redis down answered ${res.status}, not 503: ${res.body.slice(0, 120)}`);
    expectJsonError(res, 'publish with Redis down');
    await sleep(3000);
    expect(!c.server.hasExited(), `the instance exited while Redis was down:\n${c.server.output().trim().split('\n').slice(-5).join('\n')}`);
    await redis.start();
    const stream = await c.connect({}, 'stream on the late instance');
    const t0 = Date.now();
    let id: string | undefined;
    while (!id) {
      const answer = await c.publishRaw(JSON.stringify({ event: 'notification', data: { step: 'redis back' } }));
      if (answer.status === 202) id = String(JSON.parse(answer.body).id);
      else if (Date.now() - t0 > 15_000) fail(`publish still answered ${answer.status} 15 s after Redis started`);
      else await sleep(300);
    }
    await stream.until((s) => s.ids.has(id), 10_000, `event ${id} on the late instance's stream`);
    stream.close();
    c.closeAll();
    return `started with Redis down: /health connected false, publish 503, still running after 3 s; Redis up: delivered after ${((Date.now() - t0) / 1000).toFixed(1)} s`;
  } finally {
    if (c) await releaseGroup(c.server.pid);
  }
};

/**
 * How the harness has a private CA trusted, through each ecosystem's own setting: OpenSSL's
 * SSL_CERT_FILE (Python, Ruby, PHP, Perl, Go, Rust's native roots, Haskell, OpenResty's start
 * script), Node's NODE_EXTRA_CA_CERTS, Deno's DENO_CERT, and the JVM's trust store.
 */
function trustEnv(tls: TlsFiles): Record<string, string> {
  return {
    SSL_CERT_FILE: tls.ca,
    NODE_EXTRA_CA_CERTS: tls.ca,
    DENO_CERT: tls.ca,
    JAVA_TOOL_OPTIONS: `-Djavax.net.ssl.trustStore=${tls.caStore} -Djavax.net.ssl.trustStorePassword=changeit -Djavax.net.ssl.trustStoreType=PKCS12`,
  };
}

const r7 = async ({ a, redis, launch, env }: Instances) => {
  const tls = redis.tls ?? fail('the harness started Redis without TLS');
  let c: Context | undefined;
  let d: Context | undefined;
  try {
    // first one that does not trust the run's CA: it must refuse the certificate
    d = await launch({ ...env, SSE_REDIS_URL: redis.tlsUrl! });
    await sleep(3000);
    expect((await brokerHealth(d)).connected === false, `an instance on rediss:// that does not trust the run's CA says connected: it does not verify Redis's certificate`);
    const refused = await d.publishRaw(JSON.stringify({ event: 'notification', data: { step: 'tls, untrusted' } }));
    expect(refused.status === 503, `publish on an instance that does not trust Redis's certificate answered ${refused.status}, not 503`);
    await releaseGroup(d.server.pid);
    d = undefined;

    c = await launch({ ...env, SSE_REDIS_URL: redis.tlsUrl!, ...trustEnv(tls) });
    const t0 = Date.now();
    while ((await brokerHealth(c)).connected !== true) {
      if (Date.now() - t0 > 20_000) fail(`an instance on ${redis.tlsUrl!.replace(redis.password, '***')} (the CA in SSL_CERT_FILE and the rest) did not report connected within 20 s`);
      await sleep(200);
    }
    const connectedMs = Date.now() - t0;
    const onA = await a.connect({}, 'stream on A');
    const onC = await c.connect({}, 'stream on the TLS instance');
    await sleep(300);
    const fromA = String(await publishOn(a, 'notification', { step: 'tls, from A' }));
    await onC.until((s) => s.ids.has(fromA), 10_000, `event ${fromA} (published on A) on the TLS instance's stream`);
    const fromC = String(await publishOn(c, 'notification', { step: 'tls, from the TLS instance' }));
    await onA.until((s) => s.ids.has(fromC), 10_000, `event ${fromC} (published on the TLS instance) on A's stream`);
    c.closeAll();
    return `rediss:// without the CA: not connected, publish 503; with the CA trusted the ecosystem's way: connected in ${connectedMs} ms, publishes crossed both ways with the plain-TCP instance A (ids ${fromA}, ${fromC})`;
  } finally {
    if (d) await releaseGroup(d.server.pid);
    if (c) await releaseGroup(c.server.pid);
  }
};

const RUNS: Record<BrokerCheckId, (i: Instances) => Promise<string>> = { R1: r1, R2: r2, R3: r3, R4: r4, R5: r5, R6: r6, R7: r7 };

/**
 * Build once, start instance A from `starters[0]` and B from `starters[1]` (the same target
 * unless a mixed pair is asked for), both on one fresh Redis, and run R1-R7 (or `only`).
 */
export async function runBrokerChecks(baseSpec: Spec, starters: [StartServer, StartServer?], options: { only?: BrokerCheckId[] } = {}): Promise<BrokerRun> {
  const spec = brokerSpec(baseSpec);
  const report: BrokerRun = { checks: {} };
  const handles: ServerHandle[] = [];
  const contexts: Context[] = [];
  let redis: RedisServer | undefined;
  try {
    redis = await RedisServer.launch({ tls: true });
    const env = { SSE_PUBLISH_TOKEN: PUBLISH_TOKEN, SSE_REDIS_URL: redis.url };
    const [startA, startB] = starters;
    const a = await startA(spec, 'spec', HOST, await freePort(), env);
    report.buildMs = a.buildMs;
    ownGroup(a.handle.pid);
    handles.push(a.handle);
    const b = startB ? await startB(spec, 'spec', HOST, await freePort(), env) : await startA(spec, 'spec', HOST, await freePort(), env, { build: false });
    ownGroup(b.handle.pid);
    handles.push(b.handle);
    await Promise.all(handles.map(waitUntilReady));
    const [ca, cb] = handles.map((h) => new Context(spec, 'spec', h, null, PUBLISH_TOKEN));
    contexts.push(ca, cb);
    const t0 = Date.now();
    // both readers connected before anything is published (a /health without the broker's state is R4's to fail)
    const ready = async (c: Context) => {
      const body = await request(`${c.base}/health`, { timeoutMs: 3000 }).then((r) => JSON.parse(r.body) as { broker?: BrokerHealth }, () => ({}) as { broker?: BrokerHealth });
      return !body.broker || body.broker.connected === true;
    };
    while (!(await Promise.all([ca, cb].map(ready))).every(Boolean)) {
      if (Date.now() - t0 > 20_000) throw new Error('the instances did not report "broker": {"connected": true} within 20 s of starting');
      await sleep(200);
    }
    const instances: Instances = {
      a: ca,
      b: cb,
      redis,
      env,
      spec,
      extra: [],
      launch: async (launchEnv) => {
        const another = await startA(spec, 'spec', HOST, await freePort(), launchEnv, { build: false });
        ownGroup(another.handle.pid);
        instances.extra.push(another.handle);
        try {
          await waitUntilReady(another.handle);
        } catch (error) {
          await releaseGroup(another.handle.pid);
          throw error;
        }
        return new Context(spec, 'spec', another.handle, null, PUBLISH_TOKEN);
      },
    };
    for (const { id } of brokerChecks) {
      if (options.only && !options.only.includes(id)) continue;
      const dead = handles.find((h) => h.hasExited());
      if (dead) {
        report.checks[id] = { status: 'fail', detail: `instance ${dead === handles[0] ? 'A' : 'B'} is gone. Its last output:\n${dead.output().trim().split('\n').slice(-8).join('\n')}`, ms: 0 };
        continue;
      }
      report.checks[id] = await runOne(RUNS[id], instances, handles);
    }
    // R5 and R6 make servers log their Redis errors: the password must not be in those either
    const leaked = [...handles, ...instances.extra].findIndex((h) => h.output().includes(redis!.password));
    if (leaked >= 0 && report.checks.R4?.status === 'pass') {
      report.checks.R4 = { status: 'fail', detail: `instance ${'ABC'[leaked]} printed the Redis password from SSE_REDIS_URL (after Redis went away)`, ms: 0 };
    }
  } catch (error) {
    report.error = (error as Error).message + (handles.length ? `\n${handles.map((h, i) => `[${'AB'[i]}] ${h.output().trim().split('\n').slice(-6).join('\n')}`).join('\n')}` : '');
  } finally {
    for (const c of contexts) c.closeAll();
    for (const h of handles) await releaseGroup(h.pid);
    await redis?.close();
  }
  return report;
}

async function runOne(run: (i: Instances) => Promise<string>, instances: Instances, handles: ServerHandle[]): Promise<Outcome> {
  try {
    return await timedCheck(
      () => run(instances),
      (detail) => `${detail}\n${handles.map((h, i) => `[${'AB'[i]}] ${h.output().trim().split('\n').slice(-5).join('\n     ')}`).join('\n')}`,
    );
  } finally {
    instances.a.closeAll();
    instances.b.closeAll();
    // a check that failed half-way may have left Redis stopped
    if (!(await redisPing(instances.redis.port, instances.redis.password))) await instances.redis.start().catch(() => undefined);
  }
}
