"""Test helpers: a checksum database in memory served over real HTTP (and made to misbehave on
demand), and a real HTTP server on 127.0.0.1 that runs modvault's async sumdb handlers on a
background event loop."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import threading
from collections.abc import Awaitable, Callable, Coroutine
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote

from modvault.errors import ModvaultError
from modvault.module.path import unescape_path, unescape_version
from modvault.sumdb import log as sumlog
from modvault.sumdb import note, tlog

T = TypeVar("T")

App = Callable[[str], Awaitable[tuple[int, bytes, str]]]


def fake_h1(seed: str) -> str:
    return "h1:" + base64.b64encode(hashlib.sha256(seed.encode()).digest()).decode()


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


# --- a checksum database in memory ---------------------------------------------------------------


class FakeSumdb:
    """A checksum database (x/mod sumdb server protocol) over a :class:`MemoryLog`.

    ``published`` (when set) is the tree size it claims; ``overrides`` answer given paths with
    (status, body) instead; ``data_tile_ids`` chooses the data tile format."""

    def __init__(self, name: str = "sum.test.example") -> None:
        self.name = name
        skey, self.vkey = note.generate_key(name)
        self.signer = note.new_signer(skey)
        self.signers: list[note.Signer] = [self.signer]
        self.log = sumlog.MemoryLog()
        self.ids: dict[tuple[str, str], int] = {}
        self.hashes: dict[tuple[str, str], tuple[str, str]] = {}
        self.published: int | None = None
        self.overrides: dict[str, tuple[int, bytes]] = {}
        self.requests: list[str] = []
        self.data_tile_ids = False
        self.lock = threading.Lock()

    def add(self, module: str, version: str, zip_h1: str | None = None, mod_h1: str | None = None) -> int:
        zip_h1 = zip_h1 or fake_h1(f"{module}@{version}")
        mod_h1 = mod_h1 or fake_h1(f"{module}@{version}/go.mod")
        with self.lock:
            n = self.log.size
            self.log.append([tlog.format_record(module, version, zip_h1, mod_h1)])
            self.ids[(module, version)] = n
            self.hashes[(module, version)] = (zip_h1, mod_h1)
        return n

    def add_many(self, count: int, prefix: str = "example.com/m") -> None:
        for i in range(count):
            self.add(f"{prefix}{i}", "v1.0.0")

    def replace_log(self, records: list[tuple[str, str]]) -> None:
        """Become a different log (a fork): these records, with other hashes."""
        with self.lock:
            self.log = sumlog.MemoryLog()
            self.ids.clear()
            self.hashes.clear()
        for module, version in records:
            self.add(module, version, fake_h1(f"fork {module}@{version}"), fake_h1(f"fork {module}"))

    @property
    def size(self) -> int:
        return self.log.size if self.published is None else self.published

    def note(self, size: int | None = None) -> bytes:
        n = self.size if size is None else size
        return sumlog.sign_tree(self.log.tree_at(n), self.signers)

    def serve(self, path: str) -> tuple[int, bytes]:
        with self.lock:
            self.requests.append(path)
            if path in self.overrides:
                return self.overrides[path]
            size = self.size
            if path == "/latest":
                return 200, self.note()
            if path.startswith("/lookup/"):
                spec = path[len("/lookup/"):]
                epath, _, evers = spec.partition("@")
                try:
                    key = (unescape_path(epath), unescape_version(evers))
                except ValueError:
                    return 400, b"bad lookup\n"
                rid = self.ids.get(key)
                if rid is None or rid >= size:
                    return 404, b"not found\n"
                text = self.log.records(rid, 1)[0]
                return 200, tlog.format_lookup(rid, text, self.note())
            if path.startswith("/tile/"):
                try:
                    tile = tlog.parse_tile_path(path[1:])
                except tlog.MalformedTilePath:
                    return 400, b"invalid tile syntax\n"
                if not tlog.tile_in_tree(tile, size):
                    return 404, b"tile not found\n"
                if tile.L >= 0:
                    return 200, self.log.read_tile(tile, size)
                start = tile.N << tile.H
                texts = self.log.records(start, tile.W)
                if self.data_tile_ids:
                    return 200, b"".join(tlog.format_lookup_record(start + i, t) for i, t in enumerate(texts))
                return 200, tlog.format_data_tile(texts)
            return 404, b"not found\n"

    def count(self, prefix: str) -> int:
        with self.lock:
            return sum(1 for p in self.requests if p.startswith(prefix))


class FakeSumdbServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, db: FakeSumdb) -> None:
        self.db = db
        fake = db
        server = self
        self.closed = False

        class Handler(_Quiet):
            def do_GET(self) -> None:
                if server.closed:  # a kept-alive connection outlives shutdown(): drop it
                    self.close_connection = True
                    return
                status, body = fake.serve(unquote(self.path.split("?", 1)[0]))
                self._send(status, body, "text/plain; charset=utf-8")

        super().__init__(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def stop(self) -> None:
        self.closed = True
        self.shutdown()
        self.server_close()


# --- modvault's async handlers behind a real HTTP server ----------------------------------------


class AppServer(ThreadingHTTPServer):
    """Serves ``app(path)`` (an async function of the URL-decoded path) on 127.0.0.1, port 0,
    running it on a private event loop; ``run(coro)`` runs any coroutine on that loop."""

    daemon_threads = True

    def __init__(self, app: App | None = None) -> None:
        self.app = app
        self.requests: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.loop_thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.loop_thread.start()
        server = self

        class Handler(_Quiet):
            def do_GET(self) -> None:
                path = unquote(self.path.split("?", 1)[0])
                server.requests.append(path)
                assert server.app is not None
                fut = asyncio.run_coroutine_threadsafe(_call(server.app, path), server.loop)
                status, body, ctype = fut.result(timeout=120)
                self._send(status, body, ctype)

        super().__init__(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=120)

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.loop_thread.join(timeout=10)


async def _call(app: App, path: str) -> tuple[int, bytes, str]:
    try:
        return await app(path)
    except ModvaultError as exc:
        return exc.status, (exc.message + "\n").encode(), "text/plain; charset=utf-8"


def static_file(root: Path, path: str) -> tuple[int, bytes, str]:
    """A file of a static GOPROXY directory, or 404."""
    rel = path.lstrip("/")
    f = root / rel
    if ".." in rel.split("/") or not f.is_file():
        return 404, b"not found\n", "text/plain; charset=utf-8"
    return 200, f.read_bytes(), "application/octet-stream"
