"""A GOPROXY test upstream on 127.0.0.1: serves a static directory, records every request, and can
be told to misbehave per path (status codes, bad bodies, lying lengths, drops, delays, redirects)."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import unquote

from tests.support.local_http import LocalHTTPServer


@dataclass
class Behaviour:
    status: int = 200
    body: bytes | None = None  # None: serve the file
    headers: dict[str, str] | None = None
    content_length: int | None = None  # lie about the length
    drop_after: int | None = None  # close the connection after this many body bytes
    delay: float = 0.0  # before answering
    trickle: float = 0.0  # seconds between chunks
    chunk: int = 1024
    no_length: bool = False  # no Content-Length: the body ends when the connection closes
    chunked: int | None = None  # Transfer-Encoding: chunked, in chunks of this many bytes
    redirect_to: str | None = None
    times: int | None = None  # apply this many times, then serve normally


class _Handler(BaseHTTPRequestHandler):
    server: TestUpstreamServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY each answer waits ~40 ms for
    # the client's delayed ACK.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        srv = self.server
        path = self.path.split("?", 1)[0]
        with srv.lock:
            srv.active.append(path)
        try:
            self._get(path)
        finally:
            with srv.lock:
                srv.active.remove(path)

    def _get(self, path: str) -> None:
        srv = self.server
        with srv.lock:
            srv.requests.append(path)
            b = srv.behaviours.get(path)
            if b is None:
                for prefix, pb in srv.prefix_behaviours.items():
                    if path.startswith(prefix):
                        b = pb
                        break
            if b is not None and b.times is not None:
                if b.times <= 0:
                    b = None
                else:
                    b.times -= 1
        if srv.hook is not None:
            srv.hook(path)
        if b is None:
            b = Behaviour()
        if b.delay:
            time.sleep(b.delay)
        if b.redirect_to is not None:
            self.send_response(302)
            self.send_header("Location", b.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b.body
        if body is None:
            f = srv.root / unquote(path).lstrip("/")
            if not f.is_file() or ".." in path:
                body = b"not found: " + path.encode() + b"\n"
                status = 404
            else:
                body = f.read_bytes()
                status = b.status
        else:
            status = b.status
        self.send_response(status)
        for k, v in (b.headers or {}).items():
            self.send_header(k, v)
        length = b.content_length if b.content_length is not None else len(body)
        if b.chunked is not None:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._send_chunked(body, b.chunked)
            return
        if b.no_length:
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        if b.drop_after is not None:
            self.wfile.write(body[: b.drop_after])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        if b.trickle:
            try:
                for i in range(0, len(body), b.chunk):
                    self.wfile.write(body[i:i + b.chunk])
                    self.wfile.flush()
                    time.sleep(b.trickle)
            except OSError:
                pass
            return
        with contextlib.suppress(OSError):
            self.wfile.write(body[:length] if length < len(body) else body)
        if length != len(body):
            self.close_connection = True

    def _send_chunked(self, body: bytes, size: int) -> None:
        """The body in chunks of ``size`` bytes, written 64 KiB of wire at a time."""
        wire = bytearray()
        with contextlib.suppress(OSError):  # the client may refuse it part way
            for i in range(0, len(body), size):
                piece = body[i:i + size]
                wire += b"%x\r\n%s\r\n" % (len(piece), piece)
                if len(wire) >= 65536:
                    self.wfile.write(wire)
                    wire.clear()
            self.wfile.write(bytes(wire) + b"0\r\n\r\n")


class TestUpstreamServer(LocalHTTPServer):
    def __init__(self, root: Path, port: int = 0) -> None:
        super().__init__(_Handler, port)
        self.root = root
        self.requests: list[str] = []
        self.active: list[str] = []  # paths being answered right now
        self.behaviours: dict[str, Behaviour] = {}
        self.prefix_behaviours: dict[str, Behaviour] = {}
        self.hook: Callable[[str], None] | None = None

    def count(self, path: str) -> int:
        with self.lock:
            return sum(1 for p in self.requests if p == path)

    def count_prefix(self, prefix: str) -> int:
        with self.lock:
            return sum(1 for p in self.requests if p.startswith(prefix))

    def busy(self, prefix: str) -> int:
        """How many requests for paths under ``prefix`` are being answered right now."""
        with self.lock:
            return sum(1 for p in self.active if p.startswith(prefix))

    def fail_everything(self, status: int = 503, delay: float = 0.0) -> None:
        """Every path answers ``status`` (after ``delay``) until reset()."""
        with self.lock:
            self.prefix_behaviours["/"] = Behaviour(status=status, body=b"down\n", delay=delay)

    def slow_everything(self, delay: float) -> None:
        """Every path is served normally, ``delay`` seconds late, until reset()."""
        with self.lock:
            self.prefix_behaviours["/"] = Behaviour(delay=delay)

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.behaviours.clear()
            self.prefix_behaviours.clear()


def serve_tree(root: Path) -> Iterator[TestUpstreamServer]:
    """The body of an upstream fixture: a running server over ``root``, stopped at teardown."""
    srv = TestUpstreamServer(root).start()
    yield srv
    srv.stop()
