// What a check works with: the running server, the spec it was rendered from, and
// requests that carry the tokens that spec asks for.
import type { Browser } from 'playwright-core';
import type { Spec } from '../spec.js';
import { request, Stream, type Response } from './client.js';
import type { VariantName } from './variants.js';

export interface ServerHandle {
  host: string;
  port: number;
  /** process group of the server */
  pid: number;
  /** everything the server printed so far */
  output(): string;
  /** settles when the started process exits */
  exited: Promise<{ exitCode?: number; signal?: string }>;
  hasExited(): boolean;
}

export class CheckFailed extends Error {}
export class CheckSkipped extends Error {}

export const fail = (message: string): never => {
  throw new CheckFailed(message);
};
export const skip = (message: string): never => {
  throw new CheckSkipped(message);
};
export function expect(condition: unknown, message: string): asserts condition {
  if (!condition) fail(message);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Fails unless `res` is an error answer as the contract has them (C14): `{"error": "..."}` as
 * `application/json`; 401 with `WWW-Authenticate: Bearer`, 405 with `Allow`, 503 with
 * `Retry-After`.
 */
export function expectJsonError(res: Response, label: string) {
  const type = String(res.headers['content-type'] ?? '');
  expect(/^application\/json\b/i.test(type), `${label}: ${res.status} came as ${type || 'no Content-Type'}, not application/json: ${JSON.stringify(res.body.slice(0, 80))}`);
  let body: unknown;
  try {
    body = JSON.parse(res.body);
  } catch {
    fail(`${label}: ${res.status} body is not JSON: ${JSON.stringify(res.body.slice(0, 80))}`);
  }
  const error = (body as { error?: unknown } | null)?.error;
  expect(typeof error === 'string' && error.length > 0, `${label}: ${res.status} body ${res.body.slice(0, 80)} is not {"error": "<what is wrong>"}`);
  if (res.status === 401) expect(/^bearer\b/i.test(String(res.headers['www-authenticate'] ?? '')), `${label}: 401 without WWW-Authenticate: Bearer`);
  if (res.status === 405) expect(res.headers.allow !== undefined, `${label}: 405 without Allow`);
  if (res.status === 503) expect(res.headers['retry-after'] !== undefined, `${label}: 503 without Retry-After`);
}

export class Context {
  readonly base: string;
  readonly streams = new Set<Stream>();
  sentinel!: Stream;
  /** with `smoke --browser`: the Chromium that B1 opens pages in */
  browser?: Browser;
  /** starts another instance of the same server, not rebuilt, with this environment */
  launch?: (env: Record<string, string>) => Promise<ServerHandle>;

  constructor(
    readonly spec: Spec,
    readonly variant: VariantName,
    readonly server: ServerHandle,
    /** SSE_TOKEN as the server was started with it */
    readonly streamToken: string | null,
    /** SSE_PUBLISH_TOKEN as started with, or the one the server made and logged */
    readonly publishToken: string | null,
  ) {
    this.base = `http://${server.host}:${server.port}`;
  }

  /** Headers that authorize a stream (none when the spec has no stream token). */
  authHeaders(): Record<string, string> {
    return this.streamToken ? { Authorization: `Bearer ${this.streamToken}` } : {};
  }

  url(path: string, query: Record<string, string> = {}): string {
    const qs = new URLSearchParams(query).toString();
    return `${this.base}${path}${qs ? `?${qs}` : ''}`;
  }

  /** Open a stream on the spec's path, authorized unless `headers`/`query` say otherwise. */
  open(options: { headers?: Record<string, string>; query?: Record<string, string>; auth?: boolean } = {}): Stream {
    const headers = { ...(options.auth === false ? {} : this.authHeaders()), ...options.headers };
    const stream = new Stream(this.url(this.spec.path, options.query), headers);
    this.streams.add(stream);
    return stream;
  }

  /** Open a stream and wait for its headers; fails the check unless it answers 200. */
  async connect(options: Parameters<Context['open']>[0] = {}, what = 'stream'): Promise<Stream> {
    const stream = this.open(options);
    await Promise.race([stream.ready, sleep(5000)]);
    if (stream.error) fail(`${what}: ${stream.error.message}`);
    expect(stream.status === 200, `${what}: answered ${stream.status || 'nothing'} instead of 200${stream.body ? `: ${stream.body.slice(0, 120)}` : ''}`);
    return stream;
  }

  publishHeaders(): Record<string, string> {
    return {
      'Content-Type': 'application/json',
      ...(this.publishToken ? { Authorization: `Bearer ${this.publishToken}` } : {}),
    };
  }

  /** POST /publish; returns the response (the caller checks it). */
  publishRaw(body: string | Buffer, headers: Record<string, string> = this.publishHeaders(), query: Record<string, string> = {}): Promise<Response> {
    return request(this.url('/publish', query), { method: 'POST', headers, body });
  }

  /** Publish and expect 202 {"id": n}; returns the id as the server sent it. */
  async publish(event: string, data: unknown): Promise<string> {
    const res = await this.publishRaw(JSON.stringify({ event, data }));
    expect(res.status === 202, `POST /publish answered ${res.status} instead of 202: ${res.body.slice(0, 160)}`);
    let id: unknown;
    try {
      id = JSON.parse(res.body).id;
    } catch {
      fail(`POST /publish answered 202 with a body that is not JSON: ${res.body.slice(0, 120)}`);
    }
    expect(typeof id === 'number' && Number.isInteger(id), `POST /publish answered ${res.body.slice(0, 120)}: no integer "id"`);
    return String(id);
  }

  async health(): Promise<number> {
    const res = await request(`${this.base}/health`);
    expect(res.status === 200, `GET /health answered ${res.status}`);
    let body: { status?: unknown; clients?: unknown };
    try {
      body = JSON.parse(res.body);
    } catch {
      return fail(`GET /health body is not JSON: ${res.body.slice(0, 120)}`);
    }
    expect(body.status === 'ok' && typeof body.clients === 'number', `GET /health body ${res.body.slice(0, 120)} is not {"status":"ok","clients":<n>}`);
    return body.clients as number;
  }

  /** Poll /health until `clients` satisfies `predicate`; returns ms waited or -1 on time-out. */
  async waitForClients(predicate: (n: number) => boolean, timeoutMs: number): Promise<number> {
    const start = Date.now();
    while (Date.now() - start <= timeoutMs) {
      if (predicate(await this.health())) return Date.now() - start;
      await sleep(100);
    }
    return -1;
  }

  /**
   * Wait (up to 6 s) until the server counts no more streams than this harness holds open:
   * streams an earlier check closed may still hold slots, since a server has 5 s to notice.
   */
  settle(): Promise<number> {
    return this.waitForClients((n) => n <= this.openStreams(), 6000);
  }

  /** Streams this harness holds open right now. */
  openStreams(): number {
    return [...this.streams].filter((s) => !s.ended && s.status === 200).length;
  }

  closeAll(except?: Stream) {
    for (const s of this.streams) if (s !== except) s.close();
    for (const s of [...this.streams]) if (s.ended) this.streams.delete(s);
  }
}
