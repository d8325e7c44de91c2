"""The I/O side of health records: measure real HTTP attempts and active probes, feed the registry.

Round-trip phases come from httpcore's ``trace`` request extension (connection.connect_tcp,
connection.start_tls, http11/http2 send_request_headers and receive_response_headers events). httpcore
resolves names inside connect_tcp, so on request traffic the ``connect`` phase includes DNS; probes
time ``getaddrinfo`` on its own first and report it as the ``dns`` phase.

Probes never wait for the default thread pool: asyncio's ``getaddrinfo`` (and httpx's, through anyio)
runs there, behind every queued file operation, so under load a probe of an upstream named by host
name used to wait for the whole queue (seconds) and report a healthy upstream as slow or failed.
Probes resolve names in a small pool of their own and connect to the address they got, sending the
name as ``Host`` and as the TLS server name, so the certificate is still checked against the name.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from modvault.errors import Unavailable
from modvault.observability import metrics
from modvault.sources.health import HealthRecord, HealthRegistry, State
from modvault.sources.lazyclient import client_ready
from modvault.sources.retry import describe

if TYPE_CHECKING:
    import httpx

LOG = logging.getLogger("modvault.health")

FAILURE_STATUSES = frozenset({429}) | frozenset(range(500, 600))


class CircuitOpen(Unavailable):
    """The upstream is skipped: its breaker is open or it was unreachable moments ago."""

    status = 503


class PhaseTrace:
    """A trace callback for one request: monotonic timestamps of connection and request events."""

    __slots__ = ("marks", "t0")

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.marks: dict[str, float] = {}

    async def __call__(self, event: str, info: dict[str, Any]) -> None:
        # "http11.send_request_headers.started" -> "send_request_headers.started"
        _, _, short = event.partition(".")
        self.marks[short] = time.perf_counter()

    def _span(self, step: str) -> float | None:
        start, end = self.marks.get(step + ".started"), self.marks.get(step + ".complete")
        return end - start if start is not None and end is not None else None

    def phases(self) -> dict[str, float]:
        """connect and tls (new connections only), ttfb (request headers sent -> answer headers)."""
        out: dict[str, float] = {}
        for phase, step in (("connect", "connect_tcp"), ("tls", "start_tls")):
            span = self._span(step)
            if span is not None:
                out[phase] = span
        sent = self.marks.get("send_request_headers.started", self.t0)
        answered = self.marks.get("receive_response_headers.complete")
        out["ttfb"] = (answered if answered is not None else time.perf_counter()) - sent
        return out


def observe_phases(name: str, phases: dict[str, float]) -> None:
    for phase, seconds in phases.items():
        metrics.UPSTREAM_PHASE.labels(name, phase).observe(seconds)


@asynccontextmanager
async def tracked_get(client: httpx.AsyncClient, url: str, registry: HealthRegistry | None,
                      rec: HealthRecord | None, **kwargs: Any) -> AsyncIterator[httpx.Response]:
    """``client.stream("GET", url)`` whose outcome and phases feed ``rec``: an answer other than
    429/5xx is a success (latency: time to first byte), a 429/5xx or a transport error a failure."""
    import httpx  # loaded with the first upstream request (sources/lazyclient.py)
    if registry is None or rec is None:
        async with client.stream("GET", url, **kwargs) as resp:
            yield resp
        return
    trace = PhaseTrace()
    answered = False
    extensions = {**kwargs.pop("extensions", {}), "trace": trace}
    try:
        async with client.stream("GET", url, extensions=extensions, **kwargs) as resp:
            answered = True
            phases = trace.phases()
            if resp.status_code in FAILURE_STATUSES:
                registry.failure(rec, f"answered {resp.status_code}")
            else:
                registry.success(rec, phases["ttfb"])
            observe_phases(rec.name, phases)
            try:
                yield resp
            finally:
                metrics.UPSTREAM_PHASE.labels(rec.name, "total").observe(
                    time.perf_counter() - trace.t0)
    except (httpx.TransportError, OSError) as exc:
        if not answered:
            registry.failure(rec, describe(exc), answered=False)
        raise


def check_allowed(registry: HealthRegistry | None, rec: HealthRecord | None) -> None:
    """Raise CircuitOpen (503, at once) when ``rec``'s breaker is open or it was just unreachable."""
    if registry is None or rec is None:
        return
    if not registry.allow(rec):
        metrics.UPSTREAM_SKIPPED.labels(rec.name).inc()
        raise CircuitOpen(registry.why_skipped(rec))


def gave_up(registry: HealthRegistry | None, rec: HealthRecord | None) -> bool:
    """Stop retrying: the breaker opened while we were trying."""
    return registry is not None and rec is not None and rec.state is not State.CLOSED


def remember_unreachable(registry: HealthRegistry | None, rec: HealthRecord | None,
                         reason: str) -> None:
    if registry is not None and rec is not None:
        registry.remember_unreachable(rec, reason)


# -- active probes ---------------------------------------------------------------------------


PROBE_DEADLINE = 3  # a probe's whole time, in probe time-outs (each read has one)


def make_probe_client(ctx: ssl.SSLContext | None, timeout: float) -> httpx.AsyncClient:
    """No keep-alive: every probe opens a connection, so connect and TLS phases are measured.
    On the upstreams' transport (paced reads, a bounded answer head); ``ctx`` None: the default
    trust (tls_context)."""
    import httpx  # loaded with the first upstream request (sources/lazyclient.py)

    from modvault.sources.upstream import loop_transport, tls_context

    ctx = ctx or tls_context()
    return httpx.AsyncClient(transport=loop_transport(ctx, httpx.Limits(max_keepalive_connections=0)),
                             timeout=timeout, trust_env=False,
                             headers={"User-Agent": "modvault-probe"})


_RESOLVER: ThreadPoolExecutor | None = None
RESOLVER_THREADS = 2


def resolver_pool() -> ThreadPoolExecutor:
    """The probes' own threads for ``getaddrinfo`` (never the default pool that serves file I/O)."""
    global _RESOLVER
    if _RESOLVER is None:
        _RESOLVER = ThreadPoolExecutor(RESOLVER_THREADS, thread_name_prefix="modvault-probe-dns")
    return _RESOLVER


async def resolve(host: str, port: int) -> list[str]:
    """The addresses of ``host`` (stream sockets), in getaddrinfo's order, without duplicates."""
    loop = asyncio.get_running_loop()
    infos = await loop.run_in_executor(resolver_pool(), socket.getaddrinfo, host, port, 0,
                                       socket.SOCK_STREAM)
    out: list[str] = []
    for *_, sockaddr in infos:
        addr = str(sockaddr[0])
        if addr not in out:
            out.append(addr)
    return out


def _at_address(parts: tuple[str, str, str, str, str], addr: str, port: int | None) -> str:
    scheme, _, path, query, fragment = parts
    host = f"[{addr}]" if ":" in addr else addr
    return urlunsplit((scheme, host if port is None else f"{host}:{port}", path, query, fragment))


async def probe_once(client: httpx.AsyncClient, url: str, registry: HealthRegistry,
                     rec: HealthRecord, timeout: float = 5.0) -> tuple[bool, str]:
    """One cheap GET: DNS timed on its own (in the probes' own threads), then the request to the
    address it gave, with its phases; feeds ``rec``."""
    import httpx  # loaded with the first upstream request (sources/lazyclient.py)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    targets: list[tuple[str, dict[str, Any]]] = [(url, {})]
    if not _is_ip_literal(host):  # an address needs no resolving: no dns phase to measure
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                addrs = await resolve(host, port)
        except TimeoutError:
            registry.failure(rec, f"resolving {host} took longer than {timeout:g}s",
                             answered=False)
            metrics.UPSTREAM_PROBES.labels(rec.name, "error").inc()
            return False, f"resolving {host} took longer than {timeout:g}s"
        except OSError as exc:
            registry.failure(rec, f"cannot resolve {host}: {exc.strerror or exc}", answered=False)
            metrics.UPSTREAM_PROBES.labels(rec.name, "error").inc()
            return False, f"cannot resolve {host}"
        metrics.UPSTREAM_PHASE.labels(rec.name, "dns").observe(time.perf_counter() - started)
        # Connect to the address (no second lookup in the default pool); the name goes in Host
        # and as the TLS server name, so virtual hosts and certificate checks see the name.
        netloc = parts.netloc.rpartition("@")[2]
        split = (parts.scheme, parts.netloc, parts.path, parts.query, parts.fragment)
        targets = [(_at_address(split, addr, parts.port),
                    {"headers": {"Host": netloc}, "extensions": {"sni_hostname": host}})
                   for addr in addrs[:3]]
    for i, (target, extra) in enumerate(targets):
        try:
            # A whole probe is bounded too: each read is, but an answer trickled byte by byte
            # would keep one going, and the prober with it.
            async with asyncio.timeout(PROBE_DEADLINE * timeout), \
                    tracked_get(client, target, registry, rec, timeout=timeout, **extra) as resp:
                status = resp.status_code
                with contextlib.suppress(httpx.HTTPError):
                    async for _ in resp.aiter_bytes():
                        break
        except TimeoutError:
            why = f"no answer within {PROBE_DEADLINE * timeout:g}s"
            registry.failure(rec, why)
            metrics.UPSTREAM_PROBES.labels(rec.name, "error").inc()
            return False, why
        except httpx.ConnectError as exc:
            if i + 1 < len(targets):
                continue  # the next address of the name (an IPv6 one may be unroutable here)
            metrics.UPSTREAM_PROBES.labels(rec.name, "error").inc()
            return False, describe(exc)
        except (httpx.HTTPError, OSError) as exc:
            metrics.UPSTREAM_PROBES.labels(rec.name, "error").inc()
            return False, describe(exc)
        break
    ok = status not in FAILURE_STATUSES
    metrics.UPSTREAM_PROBES.labels(rec.name, "ok" if ok else "error").inc()
    return ok, f"answered {status}"


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


Check = Callable[[], Awaitable[tuple[bool, str]]]


class Prober:
    """Every ``interval`` seconds, probe each peer used within ``idle`` seconds, and let an open
    breaker's half-open trial happen even when no request comes to try it.

    An HTTP peer is probed with a GET of a URL (:meth:`add`); any other peer (a git host) with a
    check of its own that feeds its record (:meth:`add_check`)."""

    def __init__(self, registry: HealthRegistry, client: httpx.AsyncClient, *, interval: float,
                 idle: float) -> None:
        self.registry = registry
        self.client = client
        self.interval = interval
        self.idle = idle
        self.targets: dict[str, tuple[HealthRecord, Check]] = {}

    def add(self, rec: HealthRecord, url: str) -> None:
        async def check() -> tuple[bool, str]:
            return await probe_once(self.client, url, self.registry, rec)

        self.targets[rec.name] = (rec, check)

    def add_check(self, rec: HealthRecord, check: Check) -> None:
        self.targets[rec.name] = (rec, check)

    @property
    def deadline(self) -> float:
        connect = self.client.timeout.connect
        return 3 * connect if connect else 30.0

    def due(self, rec: HealthRecord) -> bool:
        now = self.registry.clock()
        if rec.last_used is None or now - rec.last_used > self.idle:
            return False
        return self.registry.allow(rec, use=False)

    async def probe(self, name: str) -> tuple[bool, str]:
        _, check = self.targets[name]
        # A lazy client is made in a thread, not on first touch here: making it (httpx, the CA
        # roots) held the event loop for 40-200 ms at the first probe after a worker started.
        try:
            await client_ready(self.client)
        except Unavailable as exc:  # the client cannot be made: a failed probe, not a crash
            return False, exc.message
        try:
            async with asyncio.timeout(self.deadline):
                return await check()
        except TimeoutError:
            return False, "probe did not finish in time"

    async def round(self) -> None:
        due = [name for name, (rec, _) in list(self.targets.items()) if self.due(rec)]
        if due:
            await asyncio.gather(*(self.probe(name) for name in due), return_exceptions=True)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.round()
            except Exception:  # a probe bug must not end probing
                LOG.exception("health probe round failed")

    async def aclose(self) -> None:
        await self.client.aclose()
