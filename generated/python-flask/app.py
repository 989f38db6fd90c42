"""sse-server: a Server-Sent Events server (Flask, served by gunicorn's gevent worker)."""

import hmac
import json
import os
import queue
import re
import socket
import threading
import time
from collections import deque
from datetime import UTC, datetime

import gevent
from flask import Flask, Response, jsonify, request

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
PUBLISH_ENABLED = True
PUBLISH_TOKEN = None
# (name, every ms, data) of each event sent on a timer
TIMED_EVENTS = [
    ("clock", 1000, json.loads('{"source":"server-clock","timezone":"UTC"}')),
    ("stock-price", 2000, json.loads('{"symbol":"ACME","price":128.42,"currency":"USD","exchange":"NASDAQ"}')),
]

QUEUE_FRAMES = 256  # per client; a client that falls further behind is dropped
QUEUE_BYTES = 1024 * 1024
MAX_BODY = 64 * 1024
LAST_EVENT_ID = re.compile(r"[0-9]{1,1024}")
LINE_BREAK = re.compile(r"\r\n|\r|\n")
EVENT_STREAM = "text/event-stream; charset=utf-8"
STREAM_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
PREFLIGHT_PATHS = {PATH, "/publish"} if PUBLISH_ENABLED else {PATH}
PREFLIGHT = {
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Last-Event-ID, Cache-Control, Content-Type, Authorization",
    "Access-Control-Max-Age": "86400",
}


# Flask has no SSE support of its own: frames are written by hand.
def frame(event_id: int, event: str, text: str) -> bytes:
    data = "".join(f"data: {line}\n" for line in LINE_BREAK.split(text))
    return f"id: {event_id}\nevent: {event}\n{data}\n".encode()


class Client:
    """One open stream: a bounded queue of encoded frames; None ends the stream."""

    def __init__(self, sock: socket.socket | None) -> None:
        self.queue: queue.Queue[bytes | None] = queue.Queue(QUEUE_FRAMES)
        self.queued_bytes = 0
        self.sock = sock
        self.greenlet = gevent.getcurrent()  # the one serving this request

    def offer(self, frame: bytes) -> bool:
        if self.queue.full() or self.queued_bytes + len(frame) > QUEUE_BYTES:
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
        self.queued_bytes = 0
        self.queue.put_nowait(None)

    def hang_up(self) -> None:
        """Drop a client that stopped reading: its greenlet may be stuck in a send that never
        completes, so end it (gunicorn then closes the connection)."""
        self.close()
        self.greenlet.kill(block=False)

    def next_frame(self, timeout: float | None) -> bytes | None:
        frame = self.queue.get(timeout=timeout)  # raises queue.Empty when idle that long
        if frame is not None:
            self.queued_bytes -= len(frame)
        return frame

    def watch(self) -> None:
        """End the stream as soon as the client hangs up: it sends nothing after its request,
        so its socket turns readable only at EOF (gunicorn would notice at the next write)."""
        try:
            gone = not self.sock.recv(1, socket.MSG_PEEK)
        except OSError:
            gone = True
        if gone:
            broker.forget(self)
            self.close()


class Broker:
    """Event ids, recent history and the open streams, shared by every greenlet."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last_id = 0
        self.history: deque[tuple[int, bytes]] = deque(maxlen=HISTORY)
        self.clients: set[Client] = set()

    def publish(self, event: str, text: str) -> int:
        with self.lock:
            self.last_id += 1
            encoded = frame(self.last_id, event, text)
            self.history.append((self.last_id, encoded))
            for client in list(self.clients):
                if not client.offer(encoded):  # never wait for a slow client: drop it
                    self.clients.discard(client)
                    client.hang_up()
            return self.last_id

    def subscribe(self, last_id: int | None, sock: socket.socket | None) -> tuple[Client, list[bytes]]:
        # One lock: the replay snapshot and joining the broadcast happen in one step.
        client = Client(sock)
        with self.lock:
            self.clients.add(client)
            replay = [f for n, f in self.history if last_id is not None and n > last_id]
        return client, replay

    def forget(self, client: Client) -> None:
        with self.lock:
            self.clients.discard(client)

    def close_all(self) -> None:
        with self.lock:
            clients, self.clients = self.clients, set()
        for client in clients:
            client.close()


broker = Broker()


def as_text(data) -> str:
    """A string is sent as its own text, anything else as compact JSON."""
    return data if isinstance(data, str) else json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def tick(name: str, every_ms: int, data: dict) -> None:
    due = time.monotonic()
    while True:
        due += every_ms / 1000
        time.sleep(max(0, due - time.monotonic()))
        broker.publish(name, as_text({**data, "timestamp": now_iso()}))


def start_timers() -> None:
    """One timer per timed event for the whole server (gunicorn.conf.py calls this)."""
    for event in TIMED_EVENTS:
        threading.Thread(target=tick, args=event, daemon=True).start()


app = Flask(__name__)


@app.before_request
def preflight():
    if request.method == "OPTIONS" and request.path in PREFLIGHT_PATHS:
        return "", 204, PREFLIGHT
    return None


@app.after_request
def cors(response: Response) -> Response:
    if ALLOW_ANY_ORIGIN:
        response.headers["Access-Control-Allow-Origin"] = "*"
    else:
        response.vary.add("Origin")
        origin = request.headers.get("Origin")
        if origin in ALLOWED_ORIGINS:
            response.headers["Access-Control-Allow-Origin"] = origin
            if ALLOW_CREDENTIALS:
                response.headers["Access-Control-Allow-Credentials"] = "true"
    return response


def error(status: int, message: str, headers: dict[str, str] | None = None):
    return jsonify(error=message), status, headers or {}


def has_token(token: str, allow_query: bool) -> bool:
    given = request.headers.get("Authorization", "")
    given = given[7:] if given[:7].lower() == "bearer " else None
    if given is None and allow_query:
        given = request.args.get("token")
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def last_event_id() -> int | None:
    value = request.headers.get("Last-Event-ID") or request.args.get("lastEventId") or ""
    return int(value) if LAST_EVENT_ID.fullmatch(value) else None


def frames(client: Client, replay: list[bytes]):
    watcher = gevent.spawn(client.watch) if client.sock is not None else None
    try:
        yield f"retry: {RETRY_MS}\n\n".encode() if RETRY_MS else b": connected\n\n"
        yield from replay
        while True:
            try:
                frame = client.next_frame(timeout=HEARTBEAT_S or None)
            except queue.Empty:
                frame = b": heartbeat\n\n"
            if frame is None:
                return
            yield frame
    finally:  # ended, dropped, or the write failed (gunicorn closes the generator)
        broker.forget(client)
        if watcher is not None:
            watcher.kill()


@app.get(PATH)
def stream():
    if STREAM_TOKEN and not has_token(STREAM_TOKEN, allow_query=True):
        return error(401, "missing or wrong token", {"WWW-Authenticate": "Bearer"})
    if len(broker.clients) >= MAX_CLIENTS:
        return error(503, "too many clients", {"Retry-After": "1"})
    if request.method == "HEAD":  # Werkzeug never runs the body of a HEAD response: open no stream
        return Response(content_type=EVENT_STREAM, headers=STREAM_HEADERS)
    client, replay = broker.subscribe(last_event_id(), request.environ.get("gunicorn.socket"))
    return Response(frames(client, replay), content_type=EVENT_STREAM, headers=STREAM_HEADERS)


if PUBLISH_ENABLED:

    @app.post("/publish")
    def publish():
        if PUBLISH_TOKEN and not has_token(PUBLISH_TOKEN, allow_query=False):
            return error(401, "missing or wrong token", {"WWW-Authenticate": "Bearer"})
        body = request.stream.read(MAX_BODY + 1)
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
        return jsonify(id=broker.publish(event, as_text(message.get("data")))), 202


@app.get("/health")
def health():
    return jsonify(status="ok", clients=len(broker.clients))
