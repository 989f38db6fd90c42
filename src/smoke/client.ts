// HTTP as a careful SSE client sees it: plain requests, and streams parsed by the
// eventsource-parser package (the harness has no SSE parser of its own).
import http from 'node:http';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { createParser } from 'eventsource-parser';

export interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** send the body in these parts, chunked (no Content-Length) */
  chunks?: string[];
  timeoutMs?: number;
}

export function request(url: string, options: RequestOptions = {}): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: options.method ?? 'GET', headers: options.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout(options.timeoutMs ?? 10_000, () => req.destroy(new Error(`no answer within ${options.timeoutMs ?? 10_000} ms`)));
    req.on('error', reject);
    if (options.chunks) {
      for (const part of options.chunks) req.write(part);
      req.end();
    } else req.end(options.body);
  });
}

export interface ReceivedEvent {
  id?: string;
  event?: string;
  data: string;
  at: number;
}

export interface Frame {
  kind: 'event' | 'comment' | 'retry';
  at: number;
  event?: ReceivedEvent;
  comment?: string;
  retry?: number;
}

/** One open event stream. Everything it receives is kept, with arrival times. */
export class Stream {
  status = 0;
  headers: http.IncomingHttpHeaders = {};
  readonly openedAt = Date.now();
  headersAt?: number;
  frames: Frame[] = [];
  /** ids of every event received */
  readonly ids = new Set<string>();
  /** body text of a non-200 answer */
  body = '';
  ended = false;
  endedAt?: number;
  error?: Error;
  private req?: http.ClientRequest;
  private res?: http.IncomingMessage;
  private waiters = new Set<() => void>();
  readonly ready: Promise<void>;

  constructor(url: string, headers: Record<string, string> = {}) {
    this.ready = new Promise((resolve) => {
      const req = http.request(url, { headers: { Accept: 'text/event-stream', ...headers }, agent: false }, (res) => {
        this.res = res;
        this.status = res.statusCode!;
        this.headers = res.headers;
        this.headersAt = Date.now();
        resolve();
        const decoder = new TextDecoder('utf-8');
        const parser = createParser({
          onEvent: (e) => this.push({ kind: 'event', at: Date.now(), event: { id: e.id, event: e.event, data: e.data, at: Date.now() } }),
          onComment: (comment) => this.push({ kind: 'comment', at: Date.now(), comment }),
          onRetry: (retry) => this.push({ kind: 'retry', at: Date.now(), retry }),
        });
        res.on('data', (chunk: Buffer) => {
          const text = decoder.decode(chunk, { stream: true });
          if (this.status === 200) parser.feed(text);
          else this.body += text;
        });
        const finish = () => {
          if (!this.ended) (this.ended = true), (this.endedAt = Date.now());
          this.wake();
        };
        res.on('end', finish);
        res.on('close', finish);
        res.on('error', (error) => ((this.error = error), finish()));
      });
      req.on('error', (error) => {
        this.error = error;
        this.ended = true;
        this.endedAt = Date.now();
        resolve();
        this.wake();
      });
      req.end();
      this.req = req;
    });
  }

  private push(frame: Frame) {
    this.frames.push(frame);
    if (frame.event?.id !== undefined) this.ids.add(frame.event.id);
    this.wake();
  }

  private wake() {
    for (const w of this.waiters) w();
  }

  get events(): ReceivedEvent[] {
    return this.frames.filter((f) => f.kind === 'event').map((f) => f.event!);
  }

  get firstFrameAt(): number | undefined {
    return this.frames[0]?.at;
  }

  /** Resolves when `predicate` holds, or rejects after `timeoutMs` with `what` in the message. */
  until(predicate: (s: Stream) => boolean, timeoutMs: number, what = 'condition'): Promise<void> {
    if (predicate(this)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (predicate(this)) done(resolve);
        else if (this.ended && !predicate(this)) done(() => reject(new Error(`stream ended before ${what}`)));
      };
      const timer = setTimeout(() => done(() => reject(new Error(`no ${what} within ${timeoutMs} ms`))), timeoutMs);
      const done = (then: () => void) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        then();
      };
      this.waiters.add(check);
    });
  }

  /** Wait for an event with this id (or any event when id is undefined). */
  async nextEvent(after: number, timeoutMs: number, what = 'event'): Promise<ReceivedEvent> {
    await this.until((s) => s.events.length > after, timeoutMs, what);
    return this.events[after];
  }

  close() {
    this.req?.destroy();
    this.res?.destroy();
    if (!this.ended) (this.ended = true), (this.endedAt = Date.now());
  }
}

/**
 * A client that sends its request and then never reads: the server's writes pile up in the
 * kernel buffers and then in the server's own queue for it.
 */
export function stalledClient(host: string, port: number, path: string, headers: Record<string, string>): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port }, () => {
      const lines = [`GET ${path} HTTP/1.1`, `Host: ${host}:${port}`, 'Accept: text/event-stream'];
      for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
      socket.write(`${lines.join('\r\n')}\r\n\r\n`);
      socket.pause();
      resolve(socket);
    });
    socket.on('error', reject);
  });
}

/** Does anything accept a TCP connection at host:port? */
export function canConnect(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.on('connect', () => done(true));
    socket.on('error', () => done(false));
  });
}

export interface StreamedBodyResult {
  /** 0 when no answer came */
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** body bytes written before the answer came (or in all, when none came) */
  sentBytes: number;
  /** the request body was never finished: the answer came while it was still arriving */
  error?: string;
}

/**
 * POST a body that keeps arriving and never ends: chunked (no `contentLength`), or with a
 * `Content-Length` larger than what is sent. A server that enforces its size limit while the
 * body arrives answers before the body is complete; one that buffers first never answers.
 */
export function postEndlessBody(
  url: string,
  headers: Record<string, string>,
  options: { contentLength?: number; maxBytes: number; waitMs: number },
): Promise<StreamedBodyResult> {
  return new Promise((resolve) => {
    const CHUNK = Buffer.alloc(8 * 1024, 'x');
    let sentBytes = 0;
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (result: Omit<StreamedBodyResult, 'sentBytes'>) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.destroy();
      resolve({ ...result, sentBytes });
    };
    const extra: Record<string, string> = options.contentLength === undefined ? { 'Transfer-Encoding': 'chunked' } : { 'Content-Length': String(options.contentLength) };
    const req = http.request(url, { method: 'POST', headers: { ...headers, ...extra }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      const answer = () => finish({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.on('end', answer);
      res.on('close', answer);
      res.on('error', answer);
    });
    req.on('error', (error) => {
      // An answer may still be on its way when the server closes; give it a moment.
      setTimeout(() => finish({ status: 0, headers: {}, body: '', error: `connection failed before an answer: ${error.message}` }), 200);
    });
    req.flushHeaders();
    // Paced, so that an answer is read as soon as it comes and not lost to a reset.
    const pump = () => {
      if (done) return;
      if (sentBytes >= options.maxBytes) {
        timer = setTimeout(() => finish({ status: 0, headers: {}, body: '' }), options.waitMs);
        return;
      }
      sentBytes += CHUNK.length;
      if (req.write(CHUNK)) timer = setTimeout(pump, 10);
      else req.once('drain', () => (timer = setTimeout(pump, 10)));
    };
    pump();
  });
}

/** Send a request and hang up at once, before the first byte of the answer can arrive. */
export function hangUpAfterRequest(host: string, port: number, path: string, headers: Record<string, string>): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port }, () => {
      const lines = [`GET ${path} HTTP/1.1`, `Host: ${host}:${port}`, 'Accept: text/event-stream'];
      for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
      socket.write(`${lines.join('\r\n')}\r\n\r\n`, () => {
        socket.destroy();
        resolve();
      });
    });
    socket.on('error', () => resolve());
  });
}

/**
 * Start a request whose headers never complete; resolves with the ms until the server
 * closed the connection (or -1 after `timeoutMs`).
 */
export function slowHeaders(host: string, port: number, timeoutMs: number): Promise<number> {
  return new Promise((resolve) => {
    const start = Date.now();
    const socket = net.connect({ host, port }, () => socket.write(`GET /health HTTP/1.1\r\nHost: ${host}:${port}\r\nX-Slow: `));
    const timer = setTimeout(() => done(-1), timeoutMs);
    const done = (ms: number) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ms);
    };
    socket.on('data', () => undefined);
    socket.on('end', () => done(Date.now() - start));
    socket.on('close', () => done(Date.now() - start));
    socket.on('error', () => done(Date.now() - start));
  });
}

const TCP_STATES: Record<string, string> = {
  '01': 'ESTABLISHED', '02': 'SYN_SENT', '03': 'SYN_RECV', '04': 'FIN_WAIT1', '05': 'FIN_WAIT2', '06': 'TIME_WAIT',
  '07': 'CLOSE', '08': 'CLOSE_WAIT', '09': 'LAST_ACK', '0A': 'LISTEN', '0B': 'CLOSING',
};

/**
 * The state of the server's side of a TCP connection on this machine (from /proc/net/tcp and
 * tcp6): the socket whose local port is `serverPort` and whose peer port is `clientPort`.
 * `undefined` when the kernel no longer has it.
 */
export function serverSideState(serverPort: number, clientPort: number): string | undefined {
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 4) continue;
      const local = parseInt(f[1].split(':').at(-1)!, 16);
      const remote = parseInt(f[2].split(':').at(-1)!, 16);
      if (local === serverPort && remote === clientPort) return TCP_STATES[f[3]] ?? f[3];
    }
  }
  return undefined;
}
