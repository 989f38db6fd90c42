// sse-server: a Server-Sent Events server on Deno and Oak.
import { timingSafeEqual } from "node:crypto";
import { Application, type Context, Router } from "@oak/oak";

const NAME = "sse-server";
const PORT = Number(Deno.env.get("PORT") ?? 3017);
const HOST = Deno.env.get("HOST") ?? "0.0.0.0";
const STREAM_PATH = "/events";
const RETRY_MS = 3000;
const HEARTBEAT_S = 15;
const HISTORY = 100;
const MAX_CLIENTS = 10000;
const STREAM_TOKEN = Deno.env.get("SSE_TOKEN") || null;
const PUBLISH_ENABLED = true;
const PUBLISH_TOKEN: string | null = null;
const CORS_ANY = true;
const CORS_ORIGINS = new Set<string>(JSON.parse("[\"*\"]"));
const CORS_CREDENTIALS = false;
const MAX_BODY = 64 * 1024;
const TIMED_EVENTS: { name: string; every: number; data: Record<string, unknown> }[] = [
  { name: "clock", every: 1000, data: JSON.parse("{\"source\":\"server-clock\",\"timezone\":\"UTC\"}") },
  { name: "stock-price", every: 2000, data: JSON.parse("{\"symbol\":\"ACME\",\"price\":128.42,\"currency\":\"USD\",\"exchange\":\"NASDAQ\"}") },
];

const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface Client {
  send(frame: Uint8Array): void;
  end(): void;
}

const clients = new Set<Client>();
const history: { id: number; frame: Uint8Array }[] = [];
let lastId = 0;

function broadcast(event: string, data: unknown): number {
  const id = ++lastId;
  const text = typeof data === "string" ? data : JSON.stringify(data);
  const lines = text.split(/\r\n|\r|\n/).map((line) => `data: ${line}\n`).join("");
  const frame = encoder.encode(`id: ${id}\nevent: ${event}\n${lines}\n`);
  if (HISTORY > 0) {
    history.push({ id, frame });
    if (history.length > HISTORY) history.shift();
  }
  for (const client of clients) client.send(frame);
  return id;
}

// Oak 14 from npm runs its Node.js server under Deno, where ctx.sendEvents() never sends a
// byte; a ReadableStream body streams, so frames are written by hand.
function openStream(since: number | null, hangUp: () => void): ReadableStream<Uint8Array> {
  let client: Client;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      client = {
        send(frame) {
          // Oak reads the next chunk only once the previous write completed, so a full queue
          // means the client stopped reading: drop it instead of buffering without end.
          if (controller.desiredSize! <= 0) {
            clients.delete(client);
            controller.error(new Error("client too slow"));
            hangUp();
            return;
          }
          controller.enqueue(frame);
        },
        end() {
          clients.delete(client);
          controller.close();
        },
      };
      controller.enqueue(encoder.encode(RETRY_MS > 0 ? `retry: ${RETRY_MS}\n\n` : ": connected\n\n"));
      // start() runs synchronously: the replay and joining the broadcast happen in one turn.
      if (since !== null) {
        for (const { id, frame } of history) if (id > since) controller.enqueue(frame);
      }
      clients.add(client);
    },
    // Called when a write fails because the client went away: at the next event or heartbeat.
    cancel() {
      clients.delete(client);
    },
  }, { highWaterMark: 1024 * 1024, size: (chunk) => Math.max(chunk.byteLength, 4096) }); // <= 256 frames, ~1 MiB
}

function sameSecret(given: string | null, secret: string): boolean {
  if (given === null) return false;
  const a = encoder.encode(given), b = encoder.encode(secret);
  return a.length === b.length && timingSafeEqual(a, b);
}

function bearer(ctx: Context): string | null {
  const header = ctx.request.headers.get("Authorization");
  return header?.startsWith("Bearer ") ? header.slice(7) : null;
}

function reply(ctx: Context, status: number, body: Record<string, unknown>) {
  ctx.response.status = status;
  ctx.response.body = body;
}

function preflight(ctx: Context) {
  ctx.response.status = 204;
  ctx.response.headers.set("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
  ctx.response.headers.set("Access-Control-Allow-Headers", "Last-Event-ID, Cache-Control, Content-Type, Authorization");
  ctx.response.headers.set("Access-Control-Max-Age", "86400");
}

const router = new Router();

router.get(STREAM_PATH, (ctx) => {
  if (STREAM_TOKEN && ![bearer(ctx), ctx.request.url.searchParams.get("token")].some((t) => sameSecret(t, STREAM_TOKEN))) {
    return reply(ctx, 401, { error: "unauthorized" });
  }
  if (clients.size >= MAX_CLIENTS) {
    ctx.response.headers.set("Retry-After", "1");
    return reply(ctx, 503, { error: "too many clients" });
  }
  const lastEventId = ctx.request.headers.get("Last-Event-ID") ?? ctx.request.url.searchParams.get("lastEventId");
  const since = lastEventId !== null && /^[0-9]{1,1024}$/.test(lastEventId) ? Number(lastEventId) : null;
  ctx.response.headers.set("Content-Type", "text/event-stream; charset=utf-8");
  ctx.response.headers.set("Cache-Control", "no-store");
  ctx.response.headers.set("X-Accel-Buffering", "no");
  // router.get() answers HEAD too: headers only, no stream.
  if (ctx.request.method === "HEAD") {
    ctx.response.status = 200;
    return;
  }
  // Erroring the body stream leaves the socket open; originalRequest.error() destroys it.
  ctx.response.body = openStream(since, () => ctx.request.originalRequest.error());
});
router.options(STREAM_PATH, preflight);

router.get("/health", (ctx) => reply(ctx, 200, { status: "ok", clients: clients.size }));

if (PUBLISH_ENABLED) {
  router.post("/publish", async (ctx) => {
    if (PUBLISH_TOKEN && !sameSecret(bearer(ctx), PUBLISH_TOKEN)) return reply(ctx, 401, { error: "unauthorized" });
    if (Number(ctx.request.headers.get("Content-Length") ?? 0) > MAX_BODY) return reply(ctx, 413, { error: "body over 64 KiB" });
    const raw = await ctx.request.body.arrayBuffer();
    if (raw.byteLength > MAX_BODY) return reply(ctx, 413, { error: "body over 64 KiB" });
    let body: unknown;
    try {
      body = JSON.parse(decoder.decode(raw));
    } catch {
      return reply(ctx, 400, { error: "body is not JSON" });
    }
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      return reply(ctx, 400, { error: "body must be a JSON object" });
    }
    const { event = "message", data = null } = body as { event?: unknown; data?: unknown };
    if (typeof event !== "string" || !/^[^\r\n]{1,64}$/u.test(event)) {
      return reply(ctx, 400, { error: "event must be a string of 1-64 characters without line breaks" });
    }
    reply(ctx, 202, { id: broadcast(event, data) });
  });
  router.options("/publish", preflight);
}

const app = new Application({ logErrors: false });

app.use(async (ctx, next) => {
  const origin = ctx.request.headers.get("Origin");
  if (CORS_ANY) {
    ctx.response.headers.set("Access-Control-Allow-Origin", "*");
  } else {
    ctx.response.headers.set("Vary", "Origin");
    if (origin !== null && CORS_ORIGINS.has(origin)) {
      ctx.response.headers.set("Access-Control-Allow-Origin", origin);
      if (CORS_CREDENTIALS) ctx.response.headers.set("Access-Control-Allow-Credentials", "true");
    }
  }
  await next();
});
app.use(router.routes());
app.use(router.allowedMethods());

const timers = TIMED_EVENTS.map(({ name, every, data }) =>
  setInterval(() => broadcast(name, { ...data, timestamp: new Date().toISOString() }), every)
);
if (HEARTBEAT_S > 0) {
  const heartbeat = encoder.encode(": heartbeat\n\n");
  timers.push(setInterval(() => {
    for (const client of clients) client.send(heartbeat);
  }, HEARTBEAT_S * 1000));
}

const shutdown = new AbortController();
function stop() {
  if (shutdown.signal.aborted) return;
  shutdown.abort();
  timers.forEach(clearInterval);
  for (const client of clients) client.end();
  // Oak's Node.js server keeps listening after the abort; exit once the streams have ended.
  setTimeout(() => Deno.exit(0), 200);
}
Deno.addSignalListener("SIGTERM", stop);
Deno.addSignalListener("SIGINT", stop);

app.addEventListener("listen", ({ hostname, port }) => console.log(`${NAME} listening on http://${hostname}:${port}`));
await app.listen({ hostname: HOST, port: PORT, signal: shutdown.signal });
