"""sse-server: a Server-Sent Events server (FastAPI, sse-starlette, uvicorn)."""

import asyncio
import hmac
import json
import os
import re
from collections import deque
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import SendTimeoutError
from starlette.datastructures import Headers, MutableHeaders

NAME = "sse-server"
PATH = "/events"
RETRY_MS = 3000
HEARTBEAT_S = 15
HISTORY = 100
MAX_CLIENTS = 10000
ALLOWED_ORIGINS = frozenset(["*"])
ALLOW_ANY_ORIGIN = "*" in ALLOWED_ORIGINS
ALLOW_CREDENTIALS = False
STREAM_TOKEN = os.environ.get("SSE_TOKEN") or None
PUBLISH_TOKEN = None
# (name, every ms, data) of each event sent on a timer
TIMED_EVENTS = [
    ("clock", 1000, json.loads('{"source":"server-clock","timezone":"UTC"}')),
    ("stock-price", 2000, json.loads('{"symbol":"ACME","price":128.42,"currency":"USD","exchange":"NASDAQ"}')),
]

QUEUE_FRAMES = 256  # per client; a client that falls further behind is dropped
QUEUE_BYTES = 1024 * 1024
SEND_TIMEOUT_S = 5  # a write the client does not take within this closes its connection
MAX_BODY = 64 * 1024
LAST_EVENT_ID = re.compile(r"[0-9]{1,1024}")
PREFLIGHT = {
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Last-Event-ID, Cache-Control, Content-Type, Authorization",
    "Access-Control-Max-Age": "86400",
}


class Client:
    """One open stream: a bounded queue of encoded frames; None ends the stream."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_FRAMES)
        self.queued_bytes = 0

    def offer(self, frame: bytes) -> bool:
        if self.queue.full() or self.queued_bytes + len(frame) > QUEUE_BYTES:
            return False
        self.queued_bytes += len(frame)
        self.queue.put_nowait(frame)
        return True

    def close(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queued_bytes = 0
        self.queue.put_nowait(None)

    async def next_frame(self) -> bytes | None:
        frame = await self.queue.get()
        if frame is not None:
            self.queued_bytes -= len(frame)
        return frame


class Broker:
    """Event ids, recent history and the open streams. Runs on the event loop only."""

    def __init__(self) -> None:
        self.last_id = 0
        self.history: deque[tuple[int, bytes]] = deque(maxlen=HISTORY)
        self.clients: set[Client] = set()

    def publish(self, event: str, text: str) -> int:
        self.last_id += 1
        frame = ServerSentEvent(text, event=event, id=str(self.last_id), sep="\n").encode()
        self.history.append((self.last_id, frame))
        for client in list(self.clients):
            if not client.offer(frame):  # never wait for a slow client: drop it
                self.drop(client)
        return self.last_id

    def subscribe(self, last_id: int | None) -> tuple[Client, list[bytes]]:
        # No await in here: the replay snapshot and joining the broadcast happen in one step.
        client = Client()
        self.clients.add(client)
        replay = [frame for n, frame in self.history if last_id is not None and n > last_id]
        return client, replay

    def drop(self, client: Client) -> None:
        self.clients.discard(client)
        client.close()

    def close_all(self) -> None:
        for client in list(self.clients):
            self.drop(client)


broker = Broker()


def as_text(data) -> str:
    """A string is sent as its own text, anything else as compact JSON."""
    return data if isinstance(data, str) else json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def tick(name: str, every_ms: int, data: dict) -> None:
    loop = asyncio.get_running_loop()
    due = loop.time()
    while True:
        due += every_ms / 1000
        await asyncio.sleep(max(0, due - loop.time()))
        broker.publish(name, as_text({**data, "timestamp": now_iso()}))


@asynccontextmanager
async def lifespan(_: FastAPI):
    timers = [asyncio.create_task(tick(*event)) for event in TIMED_EVENTS]
    yield
    for timer in timers:
        timer.cancel()


class Cors:
    """CORS headers on every response, streams and errors included (pure ASGI, no buffering)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        origin = Headers(scope=scope).get("origin") if scope["type"] == "http" else None

        async def send_with_cors(message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if ALLOW_ANY_ORIGIN:
                    headers["Access-Control-Allow-Origin"] = "*"
                else:
                    headers.add_vary_header("Origin")
                    if origin in ALLOWED_ORIGINS:
                        headers["Access-Control-Allow-Origin"] = origin
                        if ALLOW_CREDENTIALS:
                            headers["Access-Control-Allow-Credentials"] = "true"
            await send(message)

        await self.app(scope, receive, send_with_cors)


app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
app.add_middleware(Cors)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def has_token(request: Request, token: str, allow_query: bool) -> bool:
    given = request.headers.get("authorization", "")
    given = given[7:] if given[:7].lower() == "bearer " else None
    if given is None and allow_query:
        given = request.query_params.get("token")
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def last_event_id(request: Request) -> int | None:
    value = request.headers.get("last-event-id") or request.query_params.get("lastEventId") or ""
    return int(value) if LAST_EVENT_ID.fullmatch(value) else None


class EventStream(EventSourceResponse):
    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except SendTimeoutError:
            pass  # the client stopped reading (see SEND_TIMEOUT_S); uvicorn closes the connection


async def frames(client: Client, replay: list[bytes]):
    try:
        yield ServerSentEvent(retry=RETRY_MS, sep="\n") if RETRY_MS else b": connected\n\n"
        for frame in replay:
            yield frame
        while (frame := await client.next_frame()) is not None:
            yield frame
    finally:  # ended, dropped, or the client went away (sse-starlette cancels us at once)
        broker.clients.discard(client)


@app.get(PATH)
async def stream(request: Request):
    if STREAM_TOKEN and not has_token(request, STREAM_TOKEN, allow_query=True):
        return error(401, "missing or wrong token", {"WWW-Authenticate": "Bearer"})
    if len(broker.clients) >= MAX_CLIENTS:
        return error(503, "too many clients", {"Retry-After": "1"})
    client, replay = broker.subscribe(last_event_id(request))
    return EventStream(
        frames(client, replay),
        sep="\n",
        ping=HEARTBEAT_S,
        ping_message_factory=lambda: ServerSentEvent(comment="heartbeat", sep="\n"),
        send_timeout=SEND_TIMEOUT_S,
    )


@app.post("/publish")
async def publish(request: Request):
    if PUBLISH_TOKEN and not has_token(request, PUBLISH_TOKEN, allow_query=False):
        return error(401, "missing or wrong token", {"WWW-Authenticate": "Bearer"})
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return error(413, "body over 64 KiB")
    try:
        message = json.loads(body)
    except ValueError:
        return error(400, "body is not JSON")
    if not isinstance(message, dict):
        return error(400, "body must be a JSON object")
    event = message.get("event", "message")
    if not isinstance(event, str) or not 0 < len(event) <= 64 or "\r" in event or "\n" in event:
        return error(400, "event must be a one-line string of 1-64 characters")
    return JSONResponse({"id": broker.publish(event, as_text(message.get("data")))}, status_code=202)


@app.options("/publish")
@app.options(PATH)
async def preflight() -> Response:
    return Response(status_code=204, headers=PREFLIGHT)


@app.get("/health")
async def health():
    return {"status": "ok", "clients": len(broker.clients)}


class Server(uvicorn.Server):
    async def startup(self, sockets=None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().startup(sockets)
        if self.started:
            print(f"{NAME} listening on http://{self.config.host}:{self.config.port}", flush=True)

    def handle_exit(self, sig, frame) -> None:
        # uvicorn waits for open responses before it exits, and streams never end by
        # themselves: end them now. Not calling super() also keeps uvicorn from re-raising
        # the signal after shutdown, so SIGTERM and SIGINT exit 0.
        self.force_exit = self.should_exit
        self.should_exit = True
        self.loop.call_soon_threadsafe(broker.close_all)


if __name__ == "__main__":
    host = os.environ.get("HOST", "0.0.0.0")
    port = int(os.environ.get("PORT", "3003"))
    Server(uvicorn.Config(app, host=host, port=port, timeout_graceful_shutdown=3)).run()
