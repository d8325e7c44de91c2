"""The server's own ceiling: the least an RSGI app on granian can do to answer the benchmark's files.

bench_proxy.py runs this beside modvault on the same server as one modvault worker (granian's
embedded server on a uvloop loop, with the settings of server/embedded.py) and with the same
answers (status, headers, bodies): small bodies prebuilt in memory, whole files with
``response_file``, single ranges with ``pread`` from a cached descriptor, each answered straight
from granian's scheduler on granian's thread, as modvault's prebuilt answers are
(server/scheduling.py). Whatever separates it
from nginx is granian, the event loop and the kernel; whatever separates modvault from it is ours.
It is a reference for the benchmark only: no routing, no checks, no logging, no metrics.

    CEILING_DATA=<the benchmark's data directory> python bench/granian_ceiling.py PORT [CERT KEY]
"""

from __future__ import annotations

import os
from email.utils import formatdate
from pathlib import Path
from types import SimpleNamespace
from typing import Any

DATA = Path(os.environ.get("CEILING_DATA", "."))
_TYPES = {".info": "application/json", ".mod": "text/plain; charset=utf-8",
          ".zip": "application/zip"}
_SMALL: dict[str, tuple[list[tuple[str, str]], bytes]] = {}
_FILES: dict[str, tuple[str, int, int, list[tuple[str, str]]]] = {}


def _load() -> None:
    for path in DATA.rglob("*"):
        if not path.is_file() or "@v" not in path.parts:  # only the module files, not modvault's
            continue
        url = "/" + path.relative_to(DATA).as_posix()
        ctype = _TYPES.get(path.suffix, "text/plain; charset=utf-8")
        # The headers modvault sends with these answers (the values differ, not the count).
        base = [("cache-control", "public, max-age=31536000, immutable"),
                ("etag", f'"{path.stat().st_size:x}-{path.stat().st_mtime_ns:x}"'),
                ("last-modified", formatdate(path.stat().st_mtime, usegmt=True)),
                ("accept-ranges", "bytes"), ("cache-status", "modvault; hit")]
        if path.suffix == ".zip":
            size = path.stat().st_size
            fd = os.open(path, os.O_RDONLY)
            _FILES[url] = (str(path), fd, size,
                           [("content-type", ctype), ("content-length", str(size)), *base])
        else:
            body = path.read_bytes()
            _SMALL[url] = ([("content-type", ctype), ("content-length", str(len(body))), *base,
                            ("vary", "Accept-Encoding")], body)


def _span(header: str, size: int) -> tuple[int, int] | None:
    """A single ``bytes=a-b`` range (the benchmark sends no other kind)."""
    if not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[6:].partition("-")
    try:
        start, end = int(first), min(int(last), size - 1)
    except ValueError:
        return None
    return (start, end) if start <= end else None


def answer_now(scope: Any, proto: Any) -> bool:
    """Every answer, at once: what modvault's scheduler runs for a prebuilt answer."""
    small = _SMALL.get(scope.path)
    if small is not None:
        proto.response_bytes(200, small[0], small[1])
        return True
    found = _FILES.get(scope.path)
    if found is None:
        proto.response_bytes(404, [("content-type", "text/plain")], b"not found\n")
        return True
    path, fd, size, headers = found
    rng = scope.headers.get("range")
    span = _span(rng, size) if rng else None
    if span is None:
        proto.response_file(200, headers, path)
        return True
    start, end = span
    partial = [(k, v) for k, v in headers if k != "content-length"]
    partial += [("content-length", str(end - start + 1)),
                ("content-range", f"bytes {start}-{end}/{size}")]
    proto.response_bytes(206, partial, os.pread(fd, end - start + 1, start))
    return True


async def app(scope: Any, proto: Any) -> None:
    answer_now(scope, proto)


_load()


def serve(port: int, tls: tuple[str, str] | None) -> None:
    import asyncio

    import uvloop
    from granian.server.embed import Server

    from modvault.config import Settings
    from modvault.server import scheduling
    from modvault.server.embedded import server_options

    settings = Settings(listen=f"127.0.0.1:{port}")
    # The scheduler modvault's server processes run with: every answer is taken at once.
    hot = SimpleNamespace(serve=answer_now, serve_now=answer_now, off_loop=lambda loop: None)
    scheduling.install(SimpleNamespace(hot=hot, quick=None, answer=app))  # type: ignore[arg-type]
    server = Server(app, log_level="warning",  # type: ignore[arg-type]
                    **server_options(settings, (Path(tls[0]), Path(tls[1])) if tls else None))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (15, 2):  # SIGTERM, SIGINT
            loop.add_signal_handler(sig, stop.set)
        serving = asyncio.ensure_future(server.serve())
        await stop.wait()
        server.stop()  # type: ignore[no-untyped-call]
        await asyncio.wait({serving}, timeout=5)

    uvloop.run(main())


if __name__ == "__main__":
    import sys

    serve(int(sys.argv[1]), (sys.argv[2], sys.argv[3]) if len(sys.argv) > 3 else None)
