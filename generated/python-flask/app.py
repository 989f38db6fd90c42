"""sse-server: a Server-Sent Events server (Flask, served by gunicorn's gevent worker)."""

import hmac
import json
import os
import queue
import re
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import NamedTuple, NoReturn

import gevent
from flask import Flask, Response, request
from flask.json.provider import DefaultJSONProvider
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

SERVER_NAME = "sse-server"
DEFAULT_PORT = 3002
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
LAST_EVENT_ID = re.compile(r"[0-9]{1,1024}")
LINE_BREAK = re.compile(r"\r\n|\r|\n")
EVENT_STREAM = "text/event-stream; charset=utf-8"
STREAM_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
PREFLIGHT_PATHS = frozenset([STREAM_PATH, "/publish"])
PREFLIGHT = {
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Last-Event-ID, Cache-Control, Content-Type, Authorization",
    "Access-Control-Max-Age": "86400",
}


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

# Tokens come from the environment only (gunicorn.conf.py refuses to start without a
# required SSE_TOKEN). Without SSE_TOKEN the stream is open to anyone.
stream_token = os.environ.get("SSE_TOKEN") or None
publish_token = os.environ.get("SSE_PUBLISH_TOKEN", "")
if not publish_token:
    publish_token = secrets.token_hex(16)
    print(f"publish token: {publish_token} (set SSE_PUBLISH_TOKEN to choose your own)", flush=True)


# Flask has no SSE support of its own: frames are written by hand.
def frame(event_id: int, event: str, data: str) -> bytes:
    lines = "".join(f"data: {line}\n" for line in LINE_BREAK.split(data))
    return f"id: {event_id}\nevent: {event}\n{lines}\n".encode()


class Client:
    """One open stream: a queue bounded in bytes; None ends the stream."""

    def __init__(self, sock: socket.socket | None) -> None:
        self.queue: queue.Queue[bytes | None] = queue.Queue(MAX_QUEUE_FRAMES)
        self.queued_bytes = 0
        self.sock = sock

    def offer(self, frame: bytes) -> bool:
        if self.queue.full() or self.queued_bytes + len(frame) > MAX_QUEUE_BYTES:
            return False
        self.queued_bytes += len(frame)
        self.queue.put_nowait(frame)
        return True

    def close(self) -> None:
        try:
            while True:
                self.queue.get_nowait()
        except queue.Empty:
            pass
        self.queue.put_nowait(None)

    def hang_up(self) -> None:
        """End a client that stopped reading. Its greenlet may wait forever in a send, so shut
        the connection down: the send fails (EPIPE) and gunicorn closes the socket. Through a
        duplicate descriptor: gevent's own shutdown() would wake that greenlet with EBADF,
        which gunicorn logs as an error."""
        self.close()
        if self.sock is not None:
            try:
                with socket.socket(fileno=os.dup(self.sock.fileno())) as dup:
                    dup.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def next_frame(self, timeout: float | None) -> bytes | None:
        frame = self.queue.get(timeout=timeout)  # raises queue.Empty when idle that long
        if frame is not None:
            self.queued_bytes -= len(frame)
        return frame

    def watch(self, sock: socket.socket) -> None:
        """End the stream as soon as the client hangs up: it sends nothing after its request,
        so its socket turns readable only at EOF (gunicorn would notice at the next write)."""
        try:
            gone = not sock.recv(1, socket.MSG_PEEK)
        except OSError:
            gone = True
        if gone:
            hub.unsubscribe(self)
            self.close()


class Hub:
    """The id counter, the history and the open streams, shared by every greenlet."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last_id = 0
        self.history: deque[tuple[int, bytes]] = deque(maxlen=HISTORY_SIZE)
        self.clients: set[Client] = set()

    def subscribe(self, last_event_id: int | None, sock: socket.socket | None) -> tuple[Client | None, list[bytes]]:
        """Join the broadcast and take the replay in one step (one lock); None when full."""
        with self.lock:
            if len(self.clients) >= MAX_CLIENTS:
                return None, []
            client = Client(sock)
            self.clients.add(client)
            replay = [f for n, f in self.history if last_event_id is not None and n > last_event_id]
        return client, replay

    def unsubscribe(self, client: Client) -> None:
        with self.lock:
            self.clients.discard(client)

    def count(self) -> int:
        return len(self.clients)

    def publish(self, event: str, data: str) -> int:
        with self.lock:
            self.last_id += 1
            encoded = frame(self.last_id, event, data)
            self.history.append((self.last_id, encoded))
            for client in list(self.clients):
                if not client.offer(encoded):  # never wait for a slow client: drop it
                    self.clients.discard(client)
                    client.hang_up()
            return self.last_id

    def close_all(self) -> None:
        with self.lock:
            clients, self.clients = self.clients, set()
        for client in clients:
            client.close()


hub = Hub()


def as_text(data: object) -> str:
    """A string is sent as its own text, anything else as compact JSON."""
    return data if isinstance(data, str) else json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def every(name: str, every_ms: int, data: dict[str, object]) -> None:
    due = time.monotonic()
    while True:
        due += every_ms / 1000
        time.sleep(max(0, due - time.monotonic()))
        hub.publish(name, as_text({**data, "timestamp": now_iso()}))


def start_timers() -> None:
    """One timer per timed event for the whole server (gunicorn.conf.py calls this)."""
    for event in TIMED_EVENTS:
        threading.Thread(target=every, args=event, daemon=True).start()


class JSONProvider(DefaultJSONProvider):
    sort_keys = False  # bodies keep their keys in the order written


app = Flask(__name__)
app.json = JSONProvider(app)


@app.before_request
def preflight() -> ResponseReturnValue | None:
    if request.method == "OPTIONS" and request.path in PREFLIGHT_PATHS:
        return "", 204, PREFLIGHT
    return None


@app.after_request
def cors(response: Response) -> Response:
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


def error(status: int, message: str, headers: dict[str, str] | None = None) -> ResponseReturnValue:
    return {"error": message}, status, headers or {}


@app.errorhandler(HTTPException)
def http_error(exc: HTTPException) -> ResponseReturnValue:
    """Errors are JSON, Werkzeug's own 404 and 405 (with its Allow) included."""
    messages = {404: "not found", 405: "method not allowed"}
    message = messages.get(exc.code or 0, exc.description or exc.name)
    response = exc.get_response()
    response.set_data(json.dumps({"error": message}, separators=(",", ":")))
    response.content_type = "application/json"
    return response


def bearer_token() -> str | None:
    """The token of "Authorization: Bearer <token>", the scheme in any case."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.lstrip(" ") if scheme.lower() == "bearer" else None


def same_token(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def stream_authorized() -> bool:
    """With SSE_TOKEN set, the token as a Bearer header or as ?token= (either is enough)."""
    return stream_token is None or any(
        same_token(given, stream_token) for given in (bearer_token(), request.args.get("token"))
    )


def last_event_id() -> int | None:
    value = request.headers.get("Last-Event-ID") or request.args.get("lastEventId") or ""
    return int(value) if LAST_EVENT_ID.fullmatch(value) else None


def frames(client: Client, replay: list[bytes]) -> Iterator[bytes]:
    watcher = gevent.spawn(client.watch, client.sock) if client.sock is not None else None
    try:
        yield b"retry: %d\n\n" % RETRY_MS
        yield from replay
        next_beat = time.monotonic() + HEARTBEAT_SECONDS
        while True:
            try:
                frame = client.next_frame(timeout=max(0, next_beat - time.monotonic()))
            except queue.Empty:  # every HEARTBEAT_SECONDS, events or not
                frame = b": heartbeat\n\n"
                next_beat = time.monotonic() + HEARTBEAT_SECONDS
            if frame is None:
                return
            yield frame
    finally:
        if watcher is not None:
            watcher.kill()


@app.get(STREAM_PATH)
def stream() -> ResponseReturnValue:
    if not stream_authorized():
        return error(401, "missing or wrong token", {"WWW-Authenticate": "Bearer"})
    if request.method == "HEAD":  # Werkzeug never runs the body of a HEAD response: open no stream
        return Response(content_type=EVENT_STREAM, headers=STREAM_HEADERS)
    client, replay = hub.subscribe(last_event_id(), request.environ.get("gunicorn.socket"))
    if client is None:
        return error(503, "too many clients", {"Retry-After": "1"})
    response = Response(frames(client, replay), content_type=EVENT_STREAM, headers=STREAM_HEADERS)
    # gunicorn closes the response whatever ended it (done, dropped, a failed write, or a
    # hang-up before the first byte, when the generator never ran): leave the hub then.
    response.call_on_close(lambda: hub.unsubscribe(client))
    return response


def publish_authorized() -> bool:
    return same_token(bearer_token(), publish_token)


def nesting(value: object) -> int:
    depth, level = 0, [value]
    while containers := [v for v in level if isinstance(v, dict | list)]:
        depth += 1
        level = [child for c in containers for child in (c.values() if isinstance(c, dict) else c)]
    return depth


def reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


@app.post("/publish")
def publish() -> ResponseReturnValue:
    """Checks, in order: token (401), Content-Type (415), size (413), body (400)."""
    if not publish_authorized():
        return error(401, "missing or wrong token", {"WWW-Authenticate": "Bearer"})
    if request.mimetype != "application/json":
        return error(415, "Content-Type must be application/json")
    if (request.content_length or 0) > MAX_BODY_BYTES:
        return error(413, "body over 64 KiB")
    # Werkzeug's MAX_CONTENT_LENGTH would cut a chunked body at the cap without an error;
    # gunicorn reads chunked bodies, so read one byte past the cap and look.
    body = request.stream.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        return error(413, "body over 64 KiB")
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
    return {"id": hub.publish(event, data)}, 202


@app.get("/health")
def health() -> dict[str, str | int]:
    return {"status": "ok", "clients": hub.count()}
