"""The RSGI application granian runs: thin routing, then the service, then HTTP semantics.

RSGI rather than ASGI because the hot path (a cached .info) is mostly header rendering and granian's
RSGI interface cuts that overhead roughly in half, and it offers zero-copy file and file-range
responses for zips.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections import OrderedDict
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from modvault.artifact import IMMUTABLE_CACHE_CONTROL, Artifact, Kind
from modvault.config import Settings
from modvault.errors import ModvaultError, NotFound
from modvault.observability import logs, metrics
from modvault.ops.http import NDJSON, index_body
from modvault.ops.runtime import OpsRuntime
from modvault.server import ranges
from modvault.server.routing import parse_artifact_path
from modvault.service import ModuleService
from modvault.wiring import build_ops, build_service

LOG = logging.getLogger("modvault.server")

SETTINGS_ENV = "MODVAULT__SETTINGS_JSON"
TEXT = "text/plain; charset=utf-8"
_MULTIPART_CHUNK = 256 * 1024
PREAD_MAX = 1024 * 1024

Headers = list[tuple[str, str]]


def _error_headers() -> Headers:
    return [("content-type", TEXT), ("cache-control", "no-store"),
            ("x-content-type-options", "nosniff")]


class Response:
    """What one request produced, for metrics and the access log."""

    __slots__ = ("size", "status", "tier", "upstream")

    def __init__(self) -> None:
        self.status = 500
        self.size = 0
        self.tier = ""
        self.upstream = ""


class App:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.service: ModuleService | None = None
        self.ops: OpsRuntime | None = None
        self.short_cache_control = f"public, max-age={max(0, int(settings.mutable_ttl))}"
        self.started = time.time()
        self.access_log = logs.AccessLog(settings.access_log)
        self.files = FileHandles()

    # RSGI lifecycle hooks: one service per worker process and event loop.
    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        logs.setup_logging(self.settings.log_level)
        self.service = build_service(self.settings)
        self.ops = build_ops(self.settings, self.service)
        self.ops.start(loop)

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.access_log.flush()
        if self.service is not None and not loop.is_closed() and not loop.is_running():
            if self.ops is not None:
                loop.run_until_complete(self.ops.aclose())
            loop.run_until_complete(self.service.aclose())

    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        if scope.proto != "http":
            return
        started = time.perf_counter()
        out = Response()
        kind = "other"
        try:
            path = scope.path
            if "/@v/" in path or path.endswith("/@latest"):
                kind = await self._artifact(scope, proto, path, out)
            else:
                kind = await self._other(scope, proto, path, out)
        except Exception:  # last resort: a bug must still answer a one-line 500, not a trace
            LOG.exception("unhandled error for %s", scope.path[:200])
            if out.status == 500 and out.size == 0:
                body = b"internal error\n"
                proto.response_bytes(500, _error_headers(), body)
        self._observe(kind, out, started)
        self.access_log(scope.method, scope.path, out.status, out.size, started, out.tier, out.upstream,
                        scope.http_version)

    @staticmethod
    def _observe(kind: str, out: Response, started: float) -> None:
        metrics.REQUESTS.inc((kind, str(out.status)))
        metrics.REQUEST_LATENCY.observe((kind,), time.perf_counter() - started)
        if out.size:
            metrics.BYTES_SERVED.inc((kind,), out.size)

    # -- module proxy paths ------------------------------------------------------------------

    async def _artifact(self, scope: Any, proto: Any, path: str, out: Response) -> str:
        method = scope.method
        kind = "invalid"
        try:
            if method not in ("GET", "HEAD"):
                self._send_error(proto, out, 405, "method not allowed", [("allow", "GET, HEAD")])
                return kind
            ref = parse_artifact_path(path)
            kind = ref.kind.value
            assert self.service is not None
            art = await self.service.get(ref)
        except ModvaultError as exc:
            self._send_error(proto, out, exc.status, exc.message)
            return kind
        out.tier, out.upstream = art.tier, art.upstream
        await self._render(scope, proto, art, out)
        return kind

    def _send_error(self, proto: Any, out: Response, status: int, message: str,
                    extra: Headers | None = None) -> None:
        body = (message.replace("\n", " ")[:1000] + "\n").encode()
        headers = _error_headers() + (extra or [])
        out.status, out.size = status, len(body)
        proto.response_bytes(status, headers, body)

    async def _render(self, scope: Any, proto: Any, art: Artifact, out: Response) -> None:
        h = scope.headers
        head = scope.method == "HEAD"
        if (art.body is not None and not head and "range" not in h and "if-none-match" not in h
                and "if-modified-since" not in h
                and (art.kind is Kind.ZIP or "accept-encoding" not in h)):
            # Hot path: a plain GET of a small body; its headers are built once per artifact.
            out.status, out.size = 200, art.size
            proto.response_bytes(200, self._plain_headers(art), art.body)
            return
        compressible = art.kind is not Kind.ZIP
        gz_etag = art.etag[:-1] + '-gzip"'
        base = self._base_headers(art)

        gz: bytes | None = None
        if compressible and ranges.accepts_gzip(h.get("accept-encoding")):
            gz = art.gzipped()
            if gz is not None and len(gz) >= art.size:
                gz = None  # tiny bodies: gzip would only add bytes
        if ranges.not_modified(h.get("if-none-match"), h.get("if-modified-since"),
                               (art.etag, gz_etag), art.mtime):
            out.status = 304
            proto.response_empty(304, [("etag", gz_etag if gz is not None else art.etag), *base])
            return

        range_header = h.get("range")
        if range_header is not None and ranges.if_range_allows(h.get("if-range"), art.etag,
                                                               art.mtime):
            try:
                spans = ranges.parse_range(range_header, art.size)
            except ranges.Unsatisfiable:
                out.status = 416
                body = b"requested range not satisfiable\n"
                proto.response_bytes(416, [("content-type", TEXT),
                                           ("content-range", f"bytes */{art.size}"),
                                           ("etag", art.etag), *base], body)
                out.size = len(body)
                return
            if spans is not None:
                await self._render_ranges(proto, art, spans, base, head, out)
                return

        if gz is not None:
            headers = [("content-type", art.media_type), ("content-encoding", "gzip"),
                       ("etag", gz_etag), ("content-length", str(len(gz))), *base]
            self._send_body(proto, out, 200, headers, gz, head)
            return
        headers = self._plain_headers(art)
        if art.body is not None:
            self._send_body(proto, out, 200, headers, art.body, head)
        else:
            assert art.path is not None
            out.status = 200
            if head:
                proto.response_empty(200, headers)
            else:
                out.size = art.size
                proto.response_file(200, headers, art.path)

    def _base_headers(self, art: Artifact) -> Headers:
        """Headers every answer about this artifact carries (200, 206, 304, 416)."""
        headers = [("cache-control", IMMUTABLE_CACHE_CONTROL if art.immutable
                    else self.short_cache_control),
                   ("last-modified", art.last_modified), ("accept-ranges", "bytes")]
        if art.kind is not Kind.ZIP:
            headers.append(("vary", "Accept-Encoding"))
        return headers

    def _plain_headers(self, art: Artifact) -> Headers:
        """A plain 200 of the identity encoding; built once and kept on the artifact."""
        if art.plain_headers is None:
            art.plain_headers = [("content-type", art.media_type), ("etag", art.etag),
                                 ("content-length", str(art.size)), *self._base_headers(art)]
        return art.plain_headers

    @staticmethod
    def _send_body(proto: Any, out: Response, status: int, headers: Headers, body: bytes,
                   head: bool) -> None:
        out.status = status
        if head:
            proto.response_empty(status, headers)
        else:
            out.size = len(body)
            proto.response_bytes(status, headers, body)

    async def _render_ranges(self, proto: Any, art: Artifact, spans: list[ranges.ByteRange],
                       base: Headers, head: bool, out: Response) -> None:
        out.status = 206
        if len(spans) == 1:
            span = spans[0]
            headers = [("content-type", art.media_type), ("etag", art.etag),
                       ("content-range", span.content_range(art.size)),
                       ("content-length", str(span.length)), *base]
            if head:
                proto.response_empty(206, headers)
            elif art.body is not None:
                out.size = span.length
                proto.response_bytes(206, headers, art.body[span.start:span.end])
            else:
                assert art.path is not None
                out.size = span.length
                if span.length <= PREAD_MAX:
                    # Small ranges: pread from a cached descriptor beats granian's file-range
                    # response by ~1.6x (measured); immutable files make cached fds safe.
                    proto.response_bytes(206, headers, self.files.pread(art.path, span.start,
                                                                        span.length))
                else:
                    proto.response_file_range(206, headers, art.path, span.start, span.end)
            return
        # RFC 9110 §14.6: multipart/byteranges, one part per range, in the order asked.
        boundary = secrets.token_hex(16)
        heads = [
            (f"\r\n--{boundary}\r\ncontent-type: {art.media_type}\r\n"
             f"content-range: {s.content_range(art.size)}\r\n\r\n").encode()
            for s in spans
        ]
        tail = f"\r\n--{boundary}--\r\n".encode()
        length = sum(len(p) for p in heads) + sum(s.length for s in spans) + len(tail)
        headers = [("content-type", f"multipart/byteranges; boundary={boundary}"),
                   ("etag", art.etag), ("content-length", str(length)), *base]
        if head:
            proto.response_empty(206, headers)
            return
        out.size = length
        if art.body is not None:
            body = b"".join(p + art.body[s.start:s.end] for p, s in zip(heads, spans, strict=True))
            proto.response_bytes(206, headers, body + tail)
            return
        assert art.path is not None
        transport = proto.response_stream(206, headers)
        await _stream_parts(transport, art.path, heads, spans, tail)

    async def _sumdb(self, scope: Any, proto: Any, rest: str, out: Response) -> None:
        """``/sumdb/<name>/...``: our own private database first, else a proxied one."""
        assert self.service is not None
        if scope.method not in ("GET", "HEAD"):
            self._send_error(proto, out, 405, "method not allowed", [("allow", "GET, HEAD")])
            return
        checksums = self.service.checksums
        try:
            private, proxy = checksums.private, checksums.proxy
            if private is not None and rest.startswith(private.name + "/"):
                resp = await private.handle(rest[len(private.name) + 1:],
                                            ensure=self.service.ensure_recorded)
            else:
                routed = proxy.route(rest) if proxy is not None else None
                if proxy is None or routed is None:
                    raise NotFound(f"checksum database not proxied here: /sumdb/{rest[:200]}")
                resp = await proxy.handle(*routed)
        except ModvaultError as exc:
            self._send_error(proto, out, exc.status, exc.message)
            return
        headers = [("content-type", resp.content_type), ("cache-control", resp.cache_control),
                   ("content-length", str(len(resp.body)))]
        out.status = resp.status
        if scope.method == "HEAD":
            proto.response_empty(resp.status, headers)
        else:
            out.size = len(resp.body)
            proto.response_bytes(resp.status, headers, resp.body)

    async def _index(self, scope: Any, proto: Any, out: Response) -> None:
        if scope.method not in ("GET", "HEAD"):
            self._send_error(proto, out, 405, "method not allowed", [("allow", "GET, HEAD")])
            return
        assert self.ops is not None
        try:
            body = await index_body(self.ops, scope.query_string or "")
        except ModvaultError as exc:
            self._send_error(proto, out, exc.status, exc.message)
            return
        headers = [("content-type", NDJSON), ("cache-control", "no-store"),
                   ("content-length", str(len(body)))]
        self._send_body(proto, out, 200, headers, body, scope.method == "HEAD")

    # -- other endpoints ---------------------------------------------------------------------

    async def _other(self, scope: Any, proto: Any, path: str, out: Response) -> str:
        if path == "/healthz":
            out.status = 200
            proto.response_bytes(200, [("content-type", TEXT), ("cache-control", "no-store")],
                                 b"ok\n")
            return "health"
        if path == "/readyz":
            assert self.service is not None
            ok, why = await self.service.ready()
            status = 200 if ok else 503
            out.status = status
            proto.response_bytes(status, [("content-type", TEXT), ("cache-control", "no-store")],
                                 (why + "\n").encode())
            return "health"
        if path.startswith("/sumdb/"):
            await self._sumdb(scope, proto, path[len("/sumdb/"):], out)
            return "sumdb"
        if path == "/index":
            await self._index(scope, proto, out)
            return "index"
        if path == "/metrics":
            body = generate_latest(metrics.REGISTRY)
            out.status, out.size = 200, len(body)
            proto.response_bytes(200, [("content-type", CONTENT_TYPE_LATEST),
                                       ("cache-control", "no-store")], body)
            return "metrics"
        if path == "/":
            body = (b"modvault: a Go module proxy. Point GOPROXY at this URL.\n")
            out.status, out.size = 200, len(body)
            proto.response_bytes(200, [("content-type", TEXT)], body)
            return "other"
        err = NotFound("not found")
        self._send_error(proto, out, err.status, err.message)
        return "other"


async def _stream_parts(transport: Any, path: str, heads: list[bytes],
                        spans: list[ranges.ByteRange], tail: bytes) -> None:
    """Send multipart ranges of a file without holding more than one chunk in memory."""
    try:
        with open(path, "rb") as fh:
            for head, span in zip(heads, spans, strict=True):
                await transport.send_bytes(head)
                fh.seek(span.start)
                left = span.length
                while left > 0:
                    chunk = fh.read(min(_MULTIPART_CHUNK, left))
                    if not chunk:
                        return
                    left -= len(chunk)
                    await transport.send_bytes(chunk)
            await transport.send_bytes(tail)
    except Exception:  # client went away
        return


class FileHandles:
    """A bounded cache of read-only descriptors for stored (immutable) files."""

    def __init__(self, limit: int = 256) -> None:
        self.limit = limit
        self._fds: OrderedDict[str, int] = OrderedDict()

    def pread(self, path: str, start: int, length: int) -> bytes:
        fd = self._fds.get(path)
        if fd is None:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            self._fds[path] = fd
            if len(self._fds) > self.limit:
                _, old = self._fds.popitem(last=False)
                os.close(old)
        else:
            self._fds.move_to_end(path)
        return os.pread(fd, length, start)


def create_app() -> App:
    """Factory granian calls in each worker; settings arrive through the environment."""
    raw = os.environ.get(SETTINGS_ENV)
    settings = Settings.from_json(raw) if raw else Settings()
    return App(settings)
