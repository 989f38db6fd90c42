"""sse-server: a Server-Sent Events server (FastAPI, served by uvicorn)."""

import asyncio
import hmac
import json
import os
import re
import secrets
import socket
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from types import FrameType
from typing import Annotated, NamedTuple, NoReturn

import h11
import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.sse import format_sse_event
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

SERVER_NAME = "sse-server"
DEFAULT_PORT = 3003
STREAM_PATH = "/events"
RETRY_MS = 3000
HEARTBEAT_SECONDS = 15
HISTORY_SIZE = 100
MAX_CLIENTS = 10000
MAX_QUEUE_BYTES = 1024 * 1024  # a client further behind than this is dropped...
MAX_QUEUE_FRAMES = 256  # ...or than this many frames
MAX_BODY_BYTES = 64 * 1024
MAX_EVENT_NAME = 64
MAX_JSON_DEPTH = 64
HEADER_TIMEOUT_SECONDS = 15
SEND_TIMEOUT_SECONDS = 5  # a client that takes no bytes for this long while writes wait is cut off
LAST_EVENT_ID = re.compile(r"[0-9]{1,1024}")
STREAM_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
PREFLIGHT = {
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Last-Event-ID, Cache-Control, Content-Type, Authorization",
    "Access-Control-Max-Age": "86400",
}
HEARTBEAT = format_sse_event(comment="heartbeat")


class TimedEvent(NamedTuple):
    """An event sent on a timer for the whole server; its data gains a "timestamp"."""

    name: str
    every_ms: int
    data: dict[str, object]  # in the spec's key order


TIMED_EVENTS = [
    TimedEvent(
        name="clock",
        every_ms=1000,
        data={
            "source": "server-clock",
            "timezone": "UTC",
        },
    ),
    TimedEvent(
        name="stock-price",
        every_ms=2000,
        data={
            "symbol": "ACME",
            "price": 128.42,
            "currency": "USD",
            "exchange": "NASDAQ",
        },
    ),
]

# Tokens come from the environment only. Without SSE_TOKEN the stream is open to anyone.
stream_token = os.environ.get("SSE_TOKEN") or None
publish_token = os.environ.get("SSE_PUBLISH_TOKEN", "")
if not publish_token:
    publish_token = secrets.token_hex(16)
    print(f"publish token: {publish_token} (set SSE_PUBLISH_TOKEN to choose your own)", flush=True)


def frame(event_id: int, event: str, data: str) -> bytes:
    """FastAPI's formatter: one `data:` line per line of data (split on CRLF, CR or LF)."""
    return format_sse_event(id=str(event_id), event=event, data_str=data)


class Client:
    """One open stream: a queue of encoded frames, bounded in bytes; None ends the stream."""

    def __init__(self, replay: list[bytes]) -> None:
        self.replay = replay
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(MAX_QUEUE_FRAMES)
        self.queued_bytes = 0

    def offer(self, frame: bytes) -> bool:
        if self.queue.full() or self.queued_bytes + len(frame) > MAX_QUEUE_BYTES:
            return False
        self.queued_bytes += len(frame)
        self.queue.put_nowait(frame)
        return True

    def close(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)

    async def frames(self) -> AsyncIterator[bytes]:
        yield format_sse_event(retry=RETRY_MS)
        for kept in self.replay:
            yield kept
        while (live := await self.queue.get()) is not None:
            self.queued_bytes -= len(live)
            yield live


class Hub:
    """The id counter, the history and the open streams. Runs on the event loop only, so a
    method without an await is one step: nothing else runs in between. Each event is
    encoded once, here, and the same bytes are queued for every stream."""

    def __init__(self) -> None:
        self.last_id = 0
        self.history: deque[tuple[int, bytes]] = deque(maxlen=HISTORY_SIZE)
        self.clients: set[Client] = set()

    def subscribe(self, last_event_id: int | None) -> Client | None:
        """Join the broadcast and take the replay of the events after last_event_id."""
        if len(self.clients) >= MAX_CLIENTS:
            return None
        replay = [frame for n, frame in self.history if last_event_id is not None and n > last_event_id]
        client = Client(replay)
        self.clients.add(client)
        return client

    def unsubscribe(self, client: Client) -> None:
        self.clients.discard(client)

    def count(self) -> int:
        return len(self.clients)

    def publish(self, event: str, data: str) -> int:
        self.last_id += 1
        self.deliver(self.last_id, event, data)
        return self.last_id

    def deliver(self, event_id: int, event: str, data: str) -> None:
        encoded = frame(event_id, event, data)
        self.history.append((event_id, encoded))
        self.broadcast(encoded)

    def broadcast(self, encoded: bytes) -> None:
        for client in list(self.clients):
            if not client.offer(encoded):  # never wait for a slow client: drop it
                self.clients.discard(client)
                client.close()

    def close_all(self) -> None:
        for client in list(self.clients):
            self.clients.discard(client)
            client.close()


hub = Hub()


def as_text(data: object) -> str:
    """A string is sent as its own text, anything else as compact JSON."""
    return data if isinstance(data, str) else json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def every(name: str, every_ms: int, data: dict[str, object]) -> None:
    loop = asyncio.get_running_loop()
    due = loop.time()
    while True:
        due += every_ms / 1000
        await asyncio.sleep(max(0, due - loop.time()))
        hub.publish(name, as_text({**data, "timestamp": now_iso()}))


async def heartbeat() -> None:
    """One ticker for all streams: `: heartbeat` every HEARTBEAT_SECONDS, events or not."""
    while True:
        await asyncio.sleep(HEARTBEAT_SECONDS)
        hub.broadcast(HEARTBEAT)


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(every(*event)) for event in TIMED_EVENTS]
    tasks.append(asyncio.create_task(heartbeat()))
    yield
    for task in tasks:
        task.cancel()


class Cors:
    """CORS headers on every response, streams and errors included (pure ASGI, no buffering)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Access-Control-Allow-Origin"] = "*"
            await send(message)

        await self.app(scope, receive, send_with_cors)


app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None, redirect_slashes=False)
app.add_middleware(Cors)


def error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


@app.exception_handler(StarletteHTTPException)
async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Errors are JSON, the framework's own 404 and 405 (which keeps its Allow) included."""
    message = {404: "not found", 405: "method not allowed"}.get(exc.status_code, exc.detail)
    return error(exc.status_code, message, exc.headers)


def bearer_token(request: Request) -> str | None:
    """The token of "Authorization: Bearer <token>", the scheme in any case."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.lstrip(" ") if scheme.lower() == "bearer" else None


def same_token(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def stream_authorized(request: Request) -> bool:
    """With SSE_TOKEN set, the token as a Bearer header or as ?token= (either is enough)."""
    return stream_token is None or any(
        same_token(given, stream_token) for given in (bearer_token(request), request.query_params.get("token"))
    )


def last_event_id(request: Request) -> int | None:
    value = request.headers.get("last-event-id") or request.query_params.get("lastEventId") or ""
    return int(value) if LAST_EVENT_ID.fullmatch(value) else None


async def subscription(request: Request) -> AsyncIterator[Client]:
    """Refuses the stream (401, 503) before it starts; leaves the hub when the response ends,
    also when the client hung up before the first byte (FastAPI runs this `finally` after
    the response, whatever ended it)."""
    if not stream_authorized(request):
        raise HTTPException(401, "missing or wrong token", {"WWW-Authenticate": "Bearer"})
    client = hub.subscribe(last_event_id(request))
    if client is None:
        raise HTTPException(503, "too many clients", {"Retry-After": "1"})
    try:
        yield client
    finally:
        hub.unsubscribe(client)


# Not FastAPI's EventSourceResponse: it formats each event again for every stream and passes
# it through two more tasks per stream, one arming a keep-alive timer for every event: five
# times the CPU per delivered event at 1000 streams. Here the hub encodes each event once and
# sends the heartbeat, and a plain StreamingResponse writes the queued bytes.
@app.get(STREAM_PATH)
async def stream(client: Annotated[Client, Depends(subscription)]) -> StreamingResponse:
    return StreamingResponse(client.frames(), media_type="text/event-stream", headers=STREAM_HEADERS)


def publish_authorized(request: Request) -> bool:
    return same_token(bearer_token(request), publish_token)


def nesting(value: object) -> int:
    depth, level = 0, [value]
    while containers := [v for v in level if isinstance(v, dict | list)]:
        depth += 1
        level = [child for c in containers for child in (c.values() if isinstance(c, dict) else c)]
    return depth


def reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


@app.post("/publish")
async def publish(request: Request) -> JSONResponse:
    """Checks, in order: token (401), Content-Type (415), size (413), body (400)."""
    if not publish_authorized(request):
        return error(401, "missing or wrong token", {"WWW-Authenticate": "Bearer"})
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        return error(415, "Content-Type must be application/json")
    too_large = error(413, "body over 64 KiB", {"Connection": "close"})
    if int(request.headers.get("content-length", "0")) > MAX_BODY_BYTES:
        return too_large
    body = bytearray()
    async for chunk in request.stream():  # chunked or not, refused as soon as it passes the cap
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return too_large
    try:
        message = json.loads(body.decode("utf-8"), parse_constant=reject_constant)
    except UnicodeDecodeError:
        return error(400, "body is not valid UTF-8")
    except RecursionError:
        return error(400, "body nests deeper than 64 levels")
    except ValueError:
        return error(400, "body is not JSON")
    if nesting(message) > MAX_JSON_DEPTH:
        return error(400, "body nests deeper than 64 levels")
    if not isinstance(message, dict):
        return error(400, "body must be a JSON object")
    event = message.get("event", "message")
    if not isinstance(event, str) or not 0 < len(event) <= MAX_EVENT_NAME or "\r" in event or "\n" in event:
        return error(400, "event must be a string of 1-64 characters without line breaks")
    data = as_text(message.get("data"))
    try:
        (event + data).encode()
    except UnicodeEncodeError:  # a \ud800 escape: valid JSON text, not sendable as UTF-8
        return error(400, "body holds an unpaired surrogate")
    return JSONResponse({"id": hub.publish(event, data)}, status_code=202)


@app.options("/publish")
@app.options(STREAM_PATH)
async def preflight() -> Response:
    return Response(status_code=204, headers=PREFLIGHT)


@app.get("/health")
async def health() -> dict[str, str | int]:
    return {"status": "ok", "clients": hub.count()}


class Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol plus two limits it lacks. Request headers must be complete
    within HEADER_TIMEOUT_SECONDS (uvicorn's keep-alive timeout stops at a request's first
    byte). A client that takes no bytes for SEND_TIMEOUT_SECONDS while writes wait is cut
    off: uvicorn would wait for it forever, and close() would wait for its buffer to drain."""

    header_timer: asyncio.TimerHandle | None = None
    stall_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # as uvicorn types it
        super().connection_made(transport)
        self.header_timer = self.loop.call_later(HEADER_TIMEOUT_SECONDS, self.transport.abort)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.header_timer is not None and self.conn.their_state is not h11.IDLE:
            self.header_timer.cancel()  # the request's headers are in
            self.header_timer = None

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self.header_timer = self.loop.call_later(HEADER_TIMEOUT_SECONDS, self.transport.abort)

    def pause_writing(self) -> None:
        super().pause_writing()
        self.stall_timer = self.loop.call_later(SEND_TIMEOUT_SECONDS, self.transport.abort)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.stall_timer is not None:
            self.stall_timer.cancel()

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self.header_timer, self.stall_timer):
            if timer is not None:
                timer.cancel()
        super().connection_lost(exc)


class Server(uvicorn.Server):
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().startup(sockets)
        if self.started:
            print(f"{SERVER_NAME} listening on http://{self.config.host}:{self.config.port}", flush=True)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # uvicorn waits for open responses before it exits, and streams never end by
        # themselves: end them now. Not calling super() also keeps uvicorn from re-raising
        # the signal after shutdown, so SIGTERM and SIGINT exit 0.
        self.force_exit = self.should_exit
        self.should_exit = True
        self.loop.call_soon_threadsafe(hub.close_all)


if __name__ == "__main__":
    host = os.environ.get("HOST") or "0.0.0.0"  # noqa: S104 (every interface unless HOST says otherwise)
    port = int(os.environ.get("PORT") or DEFAULT_PORT)
    Server(uvicorn.Config(app, host=host, port=port, http=Protocol, timeout_graceful_shutdown=3)).run()
