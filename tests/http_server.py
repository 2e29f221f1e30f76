"""A real HTTP server on 127.0.0.1 standing in for remote services (ACLED, UCDP, data portals) in the tests.

`serve(handler)` starts a ThreadingHTTPServer on a free port in a thread and yields it; `handler(request)`
gets a `Request` (method, path, query, headers, form body) and returns a `Reply` (status, headers, body),
or a `Reply` with `delay` (answer late: a timeout) or `cut` (announce the full length, send part, close:
a body cut short). Every request is kept in `server.requests` in order.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    form: dict[str, str]


@dataclass
class Reply:
    status: int = 200
    body: bytes | str = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering
    cut: int | None = None  # send only this many bytes of the body, then close the connection


def _handler_class(server_ref):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode("utf-8") if length else ""
            form = {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}
            query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            request = Request(self.command, parts.path, query, {k.lower(): v for k, v in self.headers.items()}, form)
            server = server_ref()
            server.requests.append(request)
            reply = server.handler(request)
            if reply.delay:
                time.sleep(reply.delay)
            body = reply.body.encode("utf-8") if isinstance(reply.body, str) else reply.body
            try:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                if reply.cut is not None:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body if reply.cut is None else body[: reply.cut])
                self.wfile.flush()
                if reply.cut is not None:
                    self.close_connection = True
            except (BrokenPipeError, ConnectionResetError):
                pass

        do_GET = do_POST = _handle

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler: Callable[[Request], Reply]) -> None:
        import weakref

        self.handler = handler
        self.requests: list[Request] = []
        super().__init__(("127.0.0.1", 0), _handler_class(weakref.ref(self)))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def serve(handler: Callable[[Request], Reply]) -> Iterator[Server]:
    server = Server(handler)
    # polled every 0.05 s, not 0.5 (the default): shutdown() waits for the poll, at the end of every test that serves
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
