"""An upstream GOPROXY (https:// or file://), spoken to as the go command would, and distrusted.

Every answer is checked before it leaves this module: .info is JSON with a canonical Version (the one
asked for, when a canonical version was asked for); list holds tagged versions only; .mod and .zip are
bounded, and a zip is streamed to a temp file and checked against the module zip rules by the service.
Anything that breaks a rule is InvalidContent (502) naming the upstream and the reason.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import unquote, urlsplit

from modvault.errors import (
    Gone,
    InvalidContent,
    NotFound,
    Unavailable,
)
from modvault.module.errors import ModuleError
from modvault.module.path import check, escape_path, escape_version, is_exact_request
from modvault.module.path import is_canonical_version as is_canonical
from modvault.module.pseudo import is_pseudo_version
from modvault.observability import metrics
from modvault.sources import receivebuffer
from modvault.sources.download import DownloadFile
from modvault.sources.health import HealthRecord, HealthRegistry, State
from modvault.sources.pacing import BodyPace
from modvault.sources.redact import redact_text, redact_url
from modvault.sources.retry import RETRY_STATUSES, Retry, describe, retry_after, with_retries
from modvault.sources.tracking import gave_up, probe_once, remember_unreachable, tracked_get

if TYPE_CHECKING:
    import httpx

T = TypeVar("T")

_MARKUP_TYPE = re.compile(r"html|xml", re.IGNORECASE)

PROBE_FRESH = 300.0  # an answer this recent proves an upstream reachable for /readyz
READY_FRESH = 5.0  # with health records: trust a success this recent, else ask again
_CHUNK = 256 * 1024


@dataclass(frozen=True)
class UpstreamLimits:
    # Defaults chosen so that a hung upstream fails within about half a minute (3 tries of 10 s
    # without a byte), a black-holed one within 15 s, and a slow but live body within 300 s.
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    total_timeout: float = 300.0
    retries: int = 2
    max_redirects: int = 5
    max_zip_bytes: int = 500 * 1024 * 1024
    max_mod_bytes: int = 16 * 1024 * 1024
    max_info_bytes: int = 64 * 1024
    max_list_bytes: int = 16 * 1024 * 1024
    backoff_base: float = 0.2
    backoff_max: float = 10.0
    # Extra CA certificates (PEM) trusted for upstreams, on top of the public roots.
    ca_file: str = ""
    # Upstream connections at once; more requests queue for a connection (within total_timeout)
    # instead of failing with a spurious time-out.
    max_connections: int = 64


def tls_context(ca_file: str = "") -> ssl.SSLContext:
    """The public roots (certifi, as httpx uses), plus an operator's CA for private upstreams."""
    import certifi

    ctx = ssl.create_default_context(cafile=certifi.where())
    if ca_file:
        ctx.load_verify_locations(cafile=ca_file)
    return ctx


# httpcore reads an HTTP/1.1 body 64 KiB at a time (AsyncHTTP11Connection.READ_NUM_BYTES), and
# each read is a trip through httpcore, h11 and httpx in Python: 1,600 of them for a 100 MiB zip.
# Asking for up to 1 MiB (a read returns what the socket holds; nothing is allocated ahead) took
# 13% less CPU for a cold 100 MiB zip (bench/bench_proxy.py --cold-only, server CPU per fetch).
READ_BYTES = 1024 * 1024


def _read_in_bigger_chunks() -> None:
    import httpcore

    conn = getattr(httpcore, "AsyncHTTP11Connection", None)
    if isinstance(getattr(conn, "READ_NUM_BYTES", None), int):
        conn.READ_NUM_BYTES = max(conn.READ_NUM_BYTES, READ_BYTES)  # type: ignore[union-attr]


def make_client(limits: UpstreamLimits) -> httpx.AsyncClient:
    """One pooled client for all HTTP upstreams: keep-alive, bounded redirects, HTTP/1.1.

    The pool holds ``max_connections``; a fetch beyond that waits for a free connection with no pool
    time-out of its own: the fetch's total deadline (with_retries) bounds the wait.

    Connections are the event loop's own (sources/loopnet.py), and HTTP/1.1 only: the h2 library
    frames a body in Python, and a 100 MiB zip over HTTP/2 from nginx took 1.2 s of the event
    loop's CPU against 0.2 s over HTTP/1.1 on the same TLS (a cold fetch of proxy.golang.org's
    zips would have paid that). Many small requests to one upstream lose nothing that matters:
    they are spread over pooled keep-alive connections instead of multiplexed over one."""
    import httpx  # loaded with the first upstream request (sources/lazyclient.py)

    _read_in_bigger_chunks()
    ctx = tls_context(limits.ca_file)
    transport = loop_transport(ctx, httpx.Limits(
        max_connections=limits.max_connections,
        max_keepalive_connections=min(20, limits.max_connections)))
    return httpx.AsyncClient(
        transport=transport,
        follow_redirects=True,
        max_redirects=limits.max_redirects,
        timeout=httpx.Timeout(
            connect=limits.connect_timeout,
            read=limits.read_timeout,
            write=limits.read_timeout,
            pool=None,
        ),
        # Identity only: what an upstream compresses we would have to inflate, and a bomb inflated
        # on the event loop stalls every client (read_bounded inflates off the loop, bounded).
        headers={"User-Agent": "modvault", "Accept-Encoding": "identity"},
        trust_env=False,
    )


def loop_transport(ctx: ssl.SSLContext, limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """An httpx transport, HTTP/1.1, whose connections are the event loop's own
    (sources/loopnet.py: paced reads, a bounded answer head)."""
    import httpx

    from modvault.sources.loopnet import LoopBackend, LoopPool

    receivebuffer.install()  # h11 keeps our reads whole, not copied (sources/receivebuffer.py)
    transport = httpx.AsyncHTTPTransport(verify=ctx, http2=False, limits=limits)
    # httpx takes no network backend of its own; its pool is rebuilt with the same settings
    # and ours (tests/unit/test_loopnet.py checks that the client's connections are ours).
    transport._pool = LoopPool(
        ssl_context=ctx, max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry, http1=True, http2=False,
        network_backend=LoopBackend())
    return transport


def first_line(body: bytes, limit: int = 200, content_type: str = "") -> str:
    """What of an upstream's error body is fit to quote in our own message: its first line, if that
    is plain text, printable, bounded and redacted (an upstream may echo our Authorization header or
    a URL with a password back to us); "" for an empty body or markup (an HTML error page), so the
    caller falls back to the status line's reason."""
    if _MARKUP_TYPE.search(content_type):
        return ""
    text = body[:4096].decode("utf-8", "replace").strip().splitlines()
    line = text[0].strip() if text else ""
    if line.startswith("<"):  # <!DOCTYPE HTML>, <html>, <?xml ...>: a page, not a reason
        return ""
    line = "".join(ch if ch.isprintable() else "?" for ch in line)
    # Redact before cutting, so a cut cannot leave half a secret the patterns no longer match.
    return redact_text(line[: limit * 4])[:limit]


def validate_info(upstream: str, body: bytes, want: str | None, limit: int,
                  module: str | None = None) -> bytes:
    """Check an .info/@latest answer (go.dev/ref/mod#goproxy-protocol: JSON with Version and Time):
    the version asked for (``want``), or for a query any canonical version valid for ``module``."""
    if len(body) > limit:
        raise InvalidContent(f"{upstream}: .info answer larger than {limit} bytes")
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidContent(f"{upstream}: .info answer is not valid JSON") from None
    except RecursionError:  # e.g. 30,000 nested arrays: a hostile answer, not our bug
        raise InvalidContent(f"{upstream}: .info answer is nested too deeply") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("Version"), str):
        raise InvalidContent(f"{upstream}: .info answer has no Version string")
    version = doc["Version"]
    if not is_canonical(version):
        raise InvalidContent(f"{upstream}: .info Version {version!r} is not a canonical version")
    if want is not None and version != want:
        raise InvalidContent(f"{upstream}: .info Version {version!r} does not match requested {want!r}")
    if module is not None:
        try:
            check(module, version)
        except ModuleError as exc:
            raise InvalidContent(f"{upstream}: .info Version {version!r} is not valid for "
                                 f"{module}: {exc}") from None
    t = doc.get("Time")
    if t is not None and not isinstance(t, str):
        raise InvalidContent(f"{upstream}: .info Time is not a string")
    return body


def parse_list(module: str, body: bytes) -> list[str]:
    """Keep the tagged, canonical versions that agree with the module path; drop pseudo-versions."""
    out: list[str] = []
    for raw in body.decode("utf-8", "replace").splitlines():
        fields = raw.split()
        if not fields:
            continue
        v = fields[0]
        if is_pseudo_version(v):
            continue
        try:
            check(module, v)
        except ModuleError:
            continue
        out.append(v)
    return out


# Bodies at least this big are parsed in a thread: a million-line list took 25 s of event loop.
OFF_LOOP_BYTES = 64 * 1024


async def parse_list_off_loop(module: str, body: bytes) -> list[str]:
    if len(body) < OFF_LOOP_BYTES:
        return parse_list(module, body)
    return await asyncio.to_thread(parse_list, module, body)


class HTTPUpstream:
    """A GOPROXY reached over HTTP(S)."""

    def __init__(self, url: str, client: httpx.AsyncClient, limits: UpstreamLimits,
                 health: HealthRegistry | None = None) -> None:
        self.base = url.rstrip("/")
        # Credentials in the URL are used but never shown.
        self.name = redact_url(self.base)
        self._secrets = url_secrets(self.base)
        self.client = client
        self.limits = limits
        self.last_contact: float | None = None  # monotonic time of the last HTTP answer
        # Every attempt feeds this record (breaker, latency, phases); the chain reads it.
        self.health = health
        self.record: HealthRecord | None = health.get(self.name, "proxy") if health else None

    @property
    def probe_url(self) -> str:
        return self.base + "/"

    async def probe(self) -> tuple[bool, str]:
        if self.health is not None and self.record is not None:
            return await readiness(self.health, self.record, self.client, self.probe_url)
        if self.last_contact is not None and time.monotonic() - self.last_contact < PROBE_FRESH:
            return True, "reached recently"
        import httpx

        try:
            resp = await self.client.get(self.probe_url, timeout=5.0)
        except (httpx.HTTPError, OSError) as exc:
            return False, describe(exc)
        self.last_contact = time.monotonic()
        return True, f"answered {resp.status_code}"

    def _url(self, module: str, tail: str) -> str:
        return f"{self.base}/{escape_path(module)}/{tail}"

    async def _with_retries(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        started = time.perf_counter()
        kind = what.split(" ")[0]

        def outcome(result: str) -> None:
            metrics.UPSTREAM_REQUESTS.labels(self.name, kind, result).inc()
            metrics.UPSTREAM_LATENCY.labels(self.name).observe(time.perf_counter() - started)

        health, rec = self.health, self.record
        return await with_retries(self.name, what, self.limits, attempt,
                                  on_outcome=outcome,
                                  on_retry=metrics.UPSTREAM_RETRIES.labels(self.name).inc,
                                  stop=lambda: gave_up(health, rec),
                                  on_unreachable=lambda why: remember_unreachable(health, rec, why))

    @asynccontextmanager
    async def _get(self, url: str, what: str) -> AsyncIterator[httpx.Response]:
        async with tracked_get(self.client, url, self.health, self.record) as resp:
            self.last_contact = time.monotonic()
            if resp.status_code == 200:
                yield resp
                return
            body = await read_bounded(resp, 4096, truncate=True)
            reason = scrub(first_line(body, content_type=resp.headers.get("content-type", "")),
                           self._secrets) or resp.reason_phrase or f"HTTP {resp.status_code}"
            if resp.status_code == 404:
                raise NotFound(f"{self.name}: {what}: not found: {reason}")
            if resp.status_code == 410:
                raise Gone(f"{self.name}: {what}: gone: {reason}")
            err = Unavailable(f"{self.name}: {what}: upstream answered {resp.status_code} {reason}")
            if resp.status_code in RETRY_STATUSES:
                raise Retry(err, retry_after(resp.headers.get("retry-after")))
            raise err

    async def _fetch_small(self, url: str, what: str, limit: int) -> bytes:
        async def attempt() -> bytes:
            async with self._get(url, what) as resp:
                return await read_bounded(resp, limit, what=f"{self.name}: {what}")

        return await self._with_retries(what, attempt)

    async def list(self, module: str) -> list[str]:
        body = await self._fetch_small(
            self._url(module, "@v/list"), f"list {module}", self.limits.max_list_bytes)
        return await parse_list_off_loop(module, body)

    async def latest(self, module: str) -> bytes:
        body = await self._fetch_small(
            self._url(module, "@latest"), f"latest {module}", self.limits.max_info_bytes)
        return validate_info(self.name, body, None, self.limits.max_info_bytes, module)

    async def info(self, module: str, version: str) -> bytes:
        url = self._url(module, f"@v/{escape_version(version)}.info")
        body = await self._fetch_small(url, f"info {module}@{version}", self.limits.max_info_bytes)
        want = version if is_exact_request(module, version) else None
        return validate_info(self.name, body, want, self.limits.max_info_bytes, module)

    async def mod(self, module: str, version: str) -> bytes:
        url = self._url(module, f"@v/{escape_version(version)}.mod")
        return await self._fetch_small(url, f"mod {module}@{version}", self.limits.max_mod_bytes)

    async def zip(self, module: str, version: str, dest: Path) -> str:
        """Stream the zip to ``dest``; returns its SHA-256 (hex), computed on the way."""
        url = self._url(module, f"@v/{escape_version(version)}.zip")
        what = f"zip {module}@{version}"
        limit = self.limits.max_zip_bytes

        async def attempt() -> str:
            async with self._get(url, what) as resp:
                declared = resp.headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > limit:
                    raise InvalidContent(f"{self.name}: {what}: zip larger than {limit} bytes")
                encoding = resp.headers.get("content-encoding", "identity").strip().lower()
                if encoding not in ("", "identity"):
                    raise InvalidContent(f"{self.name}: {what}: zip sent with Content-Encoding "
                                         f"{encoding[:40]!r} although identity was asked for")
                got = 0
                pace = BodyPace(f"{self.name}: {what}")
                async with DownloadFile(dest, what) as out:
                    # Chunks as they come off the connection (no re-chunking copy).
                    async for chunk in resp.aiter_raw():
                        got += len(chunk)
                        if got > limit:
                            raise InvalidContent(
                                f"{self.name}: {what}: zip larger than {limit} bytes")
                        await out.write(chunk)
                        if pace.took(len(chunk)):
                            await asyncio.sleep(0)
                if declared is not None and declared.isdigit() and got != int(declared):
                    raise Retry(Unavailable(
                        f"{self.name}: {what}: body of {got} bytes, Content-Length said {declared}"),
                        None)
            metrics.UPSTREAM_BYTES.labels(self.name).inc(got)
            return out.sha256

        return await self._with_retries(what, attempt)

    async def aclose(self) -> None:
        return None


class FileUpstream:
    """A GOPROXY in a local directory (``file://``), as the go command supports."""

    def __init__(self, url: str, limits: UpstreamLimits) -> None:
        self.name = url
        self.root = Path(unquote(urlsplit(url).path))
        self.limits = limits

    async def probe(self) -> tuple[bool, str]:
        ok = await asyncio.to_thread(self.root.is_dir)
        return ok, "directory present" if ok else "directory missing"

    def _path(self, module: str, tail: str) -> Path:
        return self.root / escape_path(module) / tail

    def _read(self, p: Path, what: str, limit: int) -> bytes:
        try:
            size = p.stat().st_size
            if size > limit:
                raise InvalidContent(f"{self.name}: {what}: answer larger than {limit} bytes")
            return p.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"{self.name}: {what}: not found") from None
        except OSError as exc:
            raise Unavailable(f"{self.name}: {what}: {exc.strerror}") from None

    async def list(self, module: str) -> list[str]:
        body = await asyncio.to_thread(
            self._read, self._path(module, "@v/list"), f"list {module}", self.limits.max_list_bytes)
        return await parse_list_off_loop(module, body)

    async def latest(self, module: str) -> bytes:
        body = await asyncio.to_thread(
            self._read, self._path(module, "@latest"), f"latest {module}", self.limits.max_info_bytes)
        return validate_info(self.name, body, None, self.limits.max_info_bytes, module)

    async def info(self, module: str, version: str) -> bytes:
        p = self._path(module, f"@v/{escape_version(version)}.info")
        body = await asyncio.to_thread(
            self._read, p, f"info {module}@{version}", self.limits.max_info_bytes)
        want = version if is_exact_request(module, version) else None
        return validate_info(self.name, body, want, self.limits.max_info_bytes, module)

    async def mod(self, module: str, version: str) -> bytes:
        p = self._path(module, f"@v/{escape_version(version)}.mod")
        return await asyncio.to_thread(
            self._read, p, f"mod {module}@{version}", self.limits.max_mod_bytes)

    async def zip(self, module: str, version: str, dest: Path) -> str:
        p = self._path(module, f"@v/{escape_version(version)}.zip")
        what = f"zip {module}@{version}"

        def copy() -> str:
            try:
                src = open(p, "rb")  # noqa: SIM115
            except (FileNotFoundError, NotADirectoryError):
                raise NotFound(f"{self.name}: {what}: not found") from None
            except OSError as exc:
                raise Unavailable(f"{self.name}: {what}: {exc.strerror}") from None
            with src:
                if os.fstat(src.fileno()).st_size > self.limits.max_zip_bytes:
                    raise InvalidContent(
                        f"{self.name}: {what}: zip larger than {self.limits.max_zip_bytes} bytes")
                with DownloadFile(dest, what) as out:
                    while True:
                        try:
                            chunk = src.read(_CHUNK)
                        except OSError as exc:
                            raise Unavailable(f"{self.name}: {what}: {exc.strerror}") from None
                        if not chunk:
                            break
                        out.write_sync(chunk)
                return out.sha256

        return await asyncio.to_thread(copy)

    async def aclose(self) -> None:
        return None


def url_secrets(url: str) -> tuple[str, ...]:
    """The credentials in an upstream URL as an echoing upstream could quote them back: the
    password, ``user:password`` and its Basic (base64) form, raw and percent-decoded."""
    parts = urlsplit(url)
    out: set[str] = set()
    for user, password in ((parts.username, parts.password),
                           (unquote(parts.username or ""), unquote(parts.password or ""))):
        if not password:
            continue
        pair = f"{user or ''}:{password}"
        out.update({password, pair, base64.b64encode(pair.encode()).decode()})
    return tuple(sorted((s for s in out if len(s) >= 4), key=len, reverse=True))


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` without the given configured secrets (longest first)."""
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


async def read_bounded(resp: httpx.Response, limit: int, *, what: str = "",
                       truncate: bool = False) -> bytes:
    """The body, at most ``limit`` bytes: cut there with ``truncate``, else InvalidContent.

    Read raw; an answer compressed despite ``Accept-Encoding: identity`` is inflated in a thread
    and never past ``limit`` (a gzip bomb costs neither the event loop nor memory)."""
    encoding = resp.headers.get("content-encoding", "identity").strip().lower()
    buf = bytearray()
    pace = BodyPace(what or "upstream answer")
    async for chunk in resp.aiter_raw():
        buf += chunk
        if len(buf) > limit:
            if truncate:
                del buf[limit:]
                break
            raise InvalidContent(f"{what}: answer larger than {limit} bytes")
        if pace.took(len(chunk)):
            await asyncio.sleep(0)
    if encoding in ("", "identity"):
        return bytes(buf)
    return await asyncio.to_thread(inflate_bounded, bytes(buf), encoding, limit, what, truncate)


def inflate_bounded(raw: bytes, encoding: str, limit: int, what: str, truncate: bool) -> bytes:
    """Undo a gzip/deflate Content-Encoding, producing at most ``limit`` bytes. Blocking."""
    if encoding in ("gzip", "x-gzip"):
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    elif encoding == "deflate":
        inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS)
    else:
        raise InvalidContent(f"{what}: unsupported Content-Encoding {encoding[:40]!r}")
    try:
        out = inflater.decompress(raw, limit + 1)
    except zlib.error:
        if truncate:
            return b""
        raise InvalidContent(f"{what}: corrupt {encoding} body") from None
    if len(out) > limit:
        if truncate:
            return out[:limit]
        raise InvalidContent(f"{what}: answer larger than {limit} bytes once inflated")
    return out


def upstream_from_url(url: str, client: httpx.AsyncClient, limits: UpstreamLimits,
                      health: HealthRegistry | None = None) -> HTTPUpstream | FileUpstream:
    if url.startswith("file://"):
        return FileUpstream(url, limits)
    return HTTPUpstream(url, client, limits, health)


async def readiness(health: HealthRegistry, rec: HealthRecord, client: httpx.AsyncClient,
                    url: str) -> tuple[bool, str]:
    """Is this peer a working route now? Its breaker must be closed and its last word a success
    (recent enough), else it is asked once more, right now."""
    now = health.clock()
    if rec.state is not State.CLOSED and not health.allow(rec, use=False):
        return False, health.why_skipped(rec)  # open, and not yet time for a trial
    last_ok = rec.last_success is not None and (rec.last_failure is None
                                               or rec.last_success >= rec.last_failure)
    if last_ok and rec.last_success is not None and now - rec.last_success < READY_FRESH \
            and rec.state is State.CLOSED:
        return True, "answered recently"
    ok, why = await probe_once(client, url, health, rec)
    return ok and rec.breaker.state is not State.OPEN, why


