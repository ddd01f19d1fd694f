"""A local HTTP server whose answers are as slow as a test asks, counting requests in flight.

`/img?delay=S` answers a PNG after S seconds; `/held` answers only once `release` is set (or
after 30 s). Nothing here reaches beyond 127.0.0.1.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from tests.conftest import png_bytes

PNG = png_bytes((200, 30, 30))


@dataclass
class SlowServer:
    port: int = 0
    release: threading.Event = field(default_factory=threading.Event)
    in_flight: int = 0
    peak: int = 0
    served: int = 0
    _lock: threading.Condition = field(default_factory=threading.Condition)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_in_flight(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until at least `count` requests are being answered at once."""
        with self._lock:
            return self._lock.wait_for(lambda: self.in_flight >= count, timeout)

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            self._lock.notify_all()

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1
            self.served += 1
            self._lock.notify_all()


def _handler(state: SlowServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            state.enter()
            parts = urlsplit(self.path)
            try:
                if parts.path == "/held":
                    state.release.wait(30.0)
                elif parts.path == "/img":
                    delay = float(parse_qs(parts.query).get("delay", ["0"])[0])
                    state.release.wait(delay)  # or sooner, once released
            finally:
                # Counted out before answering: once a client has its answer, its request is
                # no longer in flight, so `peak` never counts the next one twice.
                state.leave()
            try:
                if parts.path not in ("/held", "/img"):
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(PNG)))
                self.end_headers()
                self.wfile.write(PNG)
            except OSError:
                pass  # the client gave up (its deadline passed)

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many uploads connect at once


@contextmanager
def slow_server() -> Iterator[SlowServer]:
    """A SlowServer on 127.0.0.1 for the duration of the block."""
    state = SlowServer()
    httpd = _Server(("127.0.0.1", 0), _handler(state))
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01})
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join()
