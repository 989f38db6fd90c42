# gunicorn settings for sse-server: `gunicorn -c gunicorn.conf.py app:app`.
import os
import signal
from collections.abc import Callable
from types import FrameType

from gunicorn.workers.base import Worker

SignalHandler = Callable[[int, FrameType | None], None]

_host = os.environ.get("HOST") or "0.0.0.0"  # noqa: S104 (every interface unless HOST says otherwise)
_port = int(os.environ.get("PORT") or "3002")

bind = f"[{_host}]:{_port}" if ":" in _host else f"{_host}:{_port}"
# One process: event ids, history and the open streams live in its memory.
workers = 1
# gevent: each open stream is a greenlet, not a thread, and writes go straight to the socket.
worker_class = "gevent"
worker_connections = 10000 + 100  # the app answers 503 past 10000 streams
# The gevent worker gives each request's headers this long to arrive (then closes the
# connection); it is also how long an idle keep-alive connection stays open.
keepalive = 15
# Streams are ended on SIGTERM (below); this only bounds a stream stuck in a write.
graceful_timeout = 3
control_socket_disable = True  # no ~/.gunicorn/gunicorn.ctl shared by every gunicorn on the machine


def post_worker_init(worker: Worker) -> None:
    import gevent

    from app import SERVER_NAME, hub, start_timers

    start_timers()

    # On SIGTERM gunicorn stops accepting and waits for open requests, but a stream never
    # finishes by itself: end every stream first. (Off the signal handler: it takes a lock.)
    def ending_streams(then: SignalHandler) -> SignalHandler:
        def handler(sig: int, frame: FrameType | None) -> None:
            gevent.spawn(hub.close_all)
            then(sig, frame)

        return handler

    signal.signal(signal.SIGTERM, ending_streams(worker.handle_exit))
    signal.signal(signal.SIGINT, ending_streams(worker.handle_quit))
    signal.signal(signal.SIGQUIT, ending_streams(worker.handle_quit))
    print(f"{SERVER_NAME} listening on http://{_host}:{_port}", flush=True)
