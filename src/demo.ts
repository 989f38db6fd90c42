// `demo`: the page with a card per target, served from its own origin (so the browser really
// does CORS against each server), next to the servers `up` starts. The page learns each
// server's URL and publish token from this local server at run time (GET /api/targets): the
// tokens are never built into the page or written to a file.
//
// EventSource does not show comments, so the page cannot see heartbeats itself: this server
// keeps one stream open to each target and tells the page when it last saw one.
import { existsSync, readFileSync, statSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { Stream } from './smoke/client.js';
import { packageRoot } from './targets.js';
import { commandSession, stopOnInterrupt, UP_HEADER, type UpTarget } from './up.js';

export const demoRoot = join(packageRoot, 'dist', 'demo');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

export interface DemoTarget extends UpTarget {
  /** when the demo server last saw a `:` comment on this target's stream */
  lastHeartbeatAt?: number;
}

export interface DemoServerOptions {
  targets: () => UpTarget[];
  port?: number;
  host?: string;
  /** the built page (default: dist/demo) */
  root?: string;
}

/** One stream per running target, to see its heartbeats. */
class HeartbeatWatch {
  private streams = new Map<string, { stream: Stream; key: string; lastAt?: number }>();
  private timer: NodeJS.Timeout;

  constructor(private readonly targets: () => UpTarget[]) {
    this.timer = setInterval(() => this.sync(), 1000);
    this.timer.unref();
  }

  private sync() {
    for (const t of this.targets()) {
      const key = `${t.url}@${t.since}`;
      const held = this.streams.get(t.id);
      if (t.state !== 'up') {
        held?.stream.close();
        if (held) this.streams.delete(t.id);
        continue;
      }
      if (held && held.key === key && !held.stream.ended) continue;
      held?.stream.close();
      const entry: { stream: Stream; key: string; lastAt?: number } = { stream: new Stream(`${t.url}${t.path}`), key, lastAt: held?.lastAt };
      this.streams.set(t.id, entry);
    }
  }

  lastHeartbeat(id: string): number | undefined {
    const held = this.streams.get(id);
    if (!held) return undefined;
    const comment = held.stream.frames.findLast((f) => f.kind === 'comment');
    if (comment) held.lastAt = comment.at;
    return held.lastAt;
  }

  close() {
    clearInterval(this.timer);
    for (const { stream } of this.streams.values()) stream.close();
  }
}

export async function startDemoServer(options: DemoServerOptions): Promise<{ url: string; close(): Promise<void> }> {
  const root = resolve(options.root ?? demoRoot);
  if (!existsSync(join(root, 'index.html'))) {
    throw new Error(`the demo page is not built (${root}/index.html is missing): run npm run build`);
  }
  const watch = new HeartbeatWatch(options.targets);
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname === '/api/targets') {
      const body: DemoTarget[] = options.targets().map((t) => ({ ...t, lastHeartbeatAt: watch.lastHeartbeat(t.id) }));
      res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
      return res.end(JSON.stringify({ now: Date.now(), targets: body }));
    }
    const path = normalize(join(root, url.pathname === '/' ? 'index.html' : decodeURIComponent(url.pathname)));
    if (!path.startsWith(root + sep) || !existsSync(path) || !statSync(path).isFile()) {
      res.writeHead(404, { 'Content-Type': 'application/json' });
      return res.end(JSON.stringify({ error: 'not found' }));
    }
    res.writeHead(200, { 'Content-Type': TYPES[extname(path)] ?? 'application/octet-stream' });
    res.end(readFileSync(path));
  });
  await new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', done);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${options.host ?? '127.0.0.1'}:${port}/`,
    close: () =>
      new Promise((done) => {
        watch.close();
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}

/** `create-sse-server demo [DIR]`: `up`, plus the page. Runs until Ctrl-C. */
export async function demoCommand(dir: string, options: { port?: number; portBase?: number; target?: string[] }): Promise<number> {
  const session = commandSession(dir, { ids: options.target, portBase: options.portBase });
  if (!session) return 1;
  const demo = await startDemoServer({ targets: () => session.targets, port: options.port ?? 5173 });
  console.log(`demo page: ${demo.url}  (servers come up below as they are built)\n`);
  console.log(UP_HEADER);
  stopOnInterrupt(session, 'the demo and every server', demo.close);
  await session.start();
  console.log(`\nopen ${demo.url} (Ctrl-C stops everything)`);
  await new Promise(() => undefined);
  return 0;
}
