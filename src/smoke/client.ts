// HTTP as a careful SSE client sees it: plain requests, and streams parsed by the
// eventsource-parser package (the harness has no SSE parser of its own).
import http from 'node:http';
import net from 'node:net';
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
    req.end(options.body);
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
