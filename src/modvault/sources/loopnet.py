"""Upstream connections for httpcore on the event loop's own transports, not anyio's streams.

Why: a cold zip is received on the event loop, and there httpx over anyio was the bottleneck. A
100 MiB zip from nginx on loopback, received and dropped (httpx, HTTP/1.1, median of 5): plain
HTTP 240 ms of CPU over anyio, 108 ms here; HTTPS 805 ms over anyio, 207 ms here (curl: 70 and
200 ms). anyio runs TLS through OpenSSL's memory BIO from Python, a trip per 16 KiB record, and
every read under a cancel scope; here TLS is the loop's own (uvloop's, in C) and a read is a
slice of a buffer the socket was read into.

How: a :class:`asyncio.BufferedProtocol` per connection receives into one buffer, which starts
at 64 KiB (a request for a ``.info`` never needs more) and grows, up to :data:`MAX_BUFFER`, while
a body arrives faster than it is taken: httpcore then gets up to a megabyte per read, one trip
through h11 and httpx for it instead of sixteen. A full buffer pauses reading, as a
``StreamReader`` does, so a slow consumer holds at most :data:`MAX_BUFFER` per connection, and a
connection idle in the pool gives a grown buffer back.

Connecting follows RFC 8305 ("Happy Eyeballs v2") as anyio did: the addresses of a name are
tried in getaddrinfo's order with the families interleaved, a new attempt starting every 250 ms
(section 5, the Connection Attempt Delay) while earlier ones are still pending; the first to
connect wins and the others are closed. A name whose first address is black-holed (an IPv6
route that drops packets) thus costs 250 ms, not the whole connect time-out.

The errors are httpcore's (ConnectError, ReadTimeout...), which httpx maps to its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
import time
from collections.abc import Iterable, Sequence
from contextvars import ContextVar
from typing import Any

import httpcore

from modvault.sources.pacing import SLICE

__all__ = ["CONNECT_STAGGER", "FIRST_READ", "MAX_BUFFER", "MAX_HEAD_READ", "MIN_BUFFER",
           "MIN_READ", "HeadRefused", "LoopBackend", "LoopPool", "LoopStream", "connect_staggered"]

MIN_BUFFER = 64 * 1024
MAX_BUFFER = 1024 * 1024
MIN_READ = 1024  # the least a read hands over, however slowly the caller gets through it
FIRST_READ = 16 * 1024  # the most an answer's first read hands over (then fourfold per read)
_MIN_FREE = 16 * 1024  # less room than this at the buffer's end: move what is unread to its start
CONNECT_STAGGER = 0.25  # RFC 8305 section 5: the recommended Connection Attempt Delay
# What may be read before an answer's final head is in (h11, as httpcore sets it, takes a head of
# up to 100 KiB; informational answers before it are not counted by anyone else).
MAX_HEAD_READ = 1024 * 1024


class _Receiver(asyncio.BufferedProtocol):
    """What the loop delivers for one connection: bytes in ``buf[start:end]``, EOF, the error."""

    def __init__(self) -> None:
        self.buf = bytearray(MIN_BUFFER)
        self.start = self.end = 0
        self.offered = 0  # the room given to the last read
        self.eof = False
        self.error: BaseException | None = None
        self.transport: Any = None
        self.reading_paused = False
        self.writing_paused = False
        self.waiter: asyncio.Future[None] | None = None  # a read waiting for bytes
        self.drain: asyncio.Future[None] | None = None  # a write waiting for room

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        unread = self.end - self.start
        if unread == 0:
            self.start = self.end = 0
        elif len(self.buf) - self.end < _MIN_FREE:
            # Move what is unread to the start (or into a bigger buffer: never offer less than
            # _MIN_FREE, should a transport read on while paused).
            self._move(len(self.buf) if len(self.buf) - unread >= _MIN_FREE
                       else 2 * len(self.buf))
        self.offered = len(self.buf) - self.end
        return memoryview(self.buf)[self.end:]

    def _move(self, size: int) -> None:
        unread = bytes(memoryview(self.buf)[self.start:self.end])
        if size != len(self.buf):
            self.buf = bytearray(size)
        self.buf[:len(unread)] = unread
        self.start, self.end = 0, len(unread)

    def buffer_updated(self, nbytes: int) -> None:
        self.end += nbytes
        if nbytes == self.offered and len(self.buf) < MAX_BUFFER:
            # The socket held more than there was room for: a body is streaming in, take more
            # per read.
            self._move(min(MAX_BUFFER, len(self.buf) * 4))
        elif len(self.buf) - (self.end - self.start) < _MIN_FREE and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()
        _wake(self.waiter)

    def eof_received(self) -> bool:
        self.eof = True
        _wake(self.waiter)
        return False  # close our side too (TLS transports ignore this and close)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.eof = True
        self.error = exc
        _wake(self.waiter)
        _wake(self.drain)

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        _wake(self.drain)


def _wake(fut: asyncio.Future[None] | None) -> None:
    if fut is not None and not fut.done():
        fut.set_result(None)


async def _wait(fut: asyncio.Future[None], timeout: float | None,
                error: type[httpcore.TimeoutException]) -> None:
    try:
        async with asyncio.timeout(timeout):
            await fut
    except TimeoutError:
        raise error("timed out") from None


class HeadRefused(httpcore.RemoteProtocolError):
    """No final answer head within :data:`MAX_HEAD_READ` bytes. httpx raises its own
    RemoteProtocolError from it (``__cause__``), which retry.describe names."""


class _HeadRead:
    """Bytes still allowed before the final head of the answer being read."""

    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left = MAX_HEAD_READ


_HEAD: ContextVar[_HeadRead | None] = ContextVar("modvault_loopnet_head", default=None)


class LoopPool(httpcore.AsyncConnectionPool):
    """httpcore's connection pool, with what is read before an answer's final head bounded.

    httpcore takes informational answers (``100 Continue``...) for as long as they come, so an
    upstream sending them without end held its request until the fetch's total time-out. The
    pool's ``handle_async_request`` returns once the final head is in; the reads made meanwhile
    (by :class:`LoopStream`, in the same task) are counted, and past :data:`MAX_HEAD_READ` the
    answer is refused (RemoteProtocolError: 502 for a fetch)."""

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        token = _HEAD.set(_HeadRead())
        try:
            return await super().handle_async_request(request)
        finally:
            _HEAD.reset(token)


class LoopStream(httpcore.AsyncNetworkStream):
    """httpcore's view of one connection.

    What one read hands over is also bounded by how fast the caller gets through it. h11 turns
    what a read gives into events, and httpcore takes every event already buffered before it
    reads again, without suspending: a megabyte of 1-byte chunks, or of ``100 Continue`` heads,
    is tens of thousands of events, and the loop waited for all of them (0.65 s per read of the
    heads, measured). So an answer's first read hands over at most :data:`FIRST_READ`, and reads
    grow fourfold (up to :data:`MAX_BUFFER`) while the caller comes back within a slice
    (:data:`modvault.sources.pacing.SLICE`). A read the caller took longer over, without letting
    the event loop run, is followed by a pause (``sleep(0)``), and the next read hands over what
    the caller gets through in a slice at that rate, at least :data:`MIN_READ`."""

    def __init__(self, receiver: _Receiver) -> None:
        self._r = receiver
        self._limit = FIRST_READ  # the most the next read hands over
        self._given = 0  # bytes the last read handed over
        self._given_at = 0.0  # when
        self._loop_ran = True  # whether the event loop ran since then

    def _ran(self) -> None:
        self._loop_ran = True

    async def _pace(self) -> None:
        """Adapt the read size to the caller's pace over the last read (see the class)."""
        if not self._loop_ran:
            busy = time.perf_counter() - self._given_at
            if busy > SLICE:
                self._limit = max(MIN_READ, int(self._given * SLICE / busy))
                await asyncio.sleep(0)
                return
        self._limit = min(self._limit * 4, MAX_BUFFER)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        r = self._r
        if self._given:
            await self._pace()
        while r.start == r.end and not r.eof:
            r.waiter = asyncio.get_running_loop().create_future()
            try:
                await _wait(r.waiter, timeout, httpcore.ReadTimeout)
            finally:
                r.waiter = None
        if r.start == r.end:
            if r.error is not None:
                raise httpcore.ReadError(str(r.error) or type(r.error).__name__)
            return b""
        n = min(max_bytes, r.end - r.start, self._limit)
        head = _HEAD.get()
        if head is not None:
            head.left -= n
            if head.left < 0:
                raise HeadRefused(f"no final answer head within the first {MAX_HEAD_READ} bytes")
        out = bytes(memoryview(r.buf)[r.start:r.start + n])
        r.start += n
        if r.reading_paused and len(r.buf) - (r.end - r.start) >= _MIN_FREE:
            r.reading_paused = False
            r.transport.resume_reading()
        self._given, self._given_at, self._loop_ran = n, time.perf_counter(), False
        asyncio.get_running_loop().call_soon(self._ran)
        return out

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        r = self._r
        if not buffer:
            return
        # A new request: its answer starts with a small read, not paced by the last answer's.
        self._limit, self._given = FIRST_READ, 0
        if r.transport.is_closing():
            raise httpcore.WriteError("connection closed")
        r.transport.write(buffer)
        while r.writing_paused:
            if r.transport.is_closing():
                raise httpcore.WriteError("connection closed")
            r.drain = asyncio.get_running_loop().create_future()
            try:
                await _wait(r.drain, timeout, httpcore.WriteTimeout)
            finally:
                r.drain = None

    async def aclose(self) -> None:
        self._r.transport.close()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        r = self._r
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(r.transport, r, ssl_context,
                                                 server_hostname=server_hostname)
        except TimeoutError:
            r.transport.abort()
            raise httpcore.ConnectTimeout("TLS handshake timed out") from None
        except (OSError, EOFError, ssl.SSLError) as exc:
            r.transport.abort()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from None
        if transport is None:  # the peer closed during the handshake
            raise httpcore.ConnectError("connection closed during the TLS handshake")
        r.transport = transport
        return self

    def get_extra_info(self, info: str) -> Any:
        transport = self._r.transport
        if info == "ssl_object":
            return transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return transport.get_extra_info("sockname")
        if info == "server_addr":
            return transport.get_extra_info("peername")
        if info == "socket":
            return transport.get_extra_info("socket")
        if info == "is_readable":
            # httpcore asks this of its idle pooled connections only (has_expired: was it closed,
            # did it send something unasked), at every request it places: the moment to give
            # back a buffer a body grew, so that idle keep-alive connections hold 64 KiB each.
            r = self._r
            if r.start == r.end and len(r.buf) > MIN_BUFFER:
                r.buf, r.start, r.end = bytearray(MIN_BUFFER), 0, 0
            return r.eof or r.start != r.end
        return None


class LoopBackend(httpcore.AsyncNetworkBackend):
    """Connections for ``httpcore.AsyncConnectionPool(network_backend=...)``."""

    connections = 0  # made so far in this process (tests: the client uses this backend)

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None
                          ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                infos = _literal(host, port) or await loop.getaddrinfo(
                    host, port, type=socket.SOCK_STREAM)
                sock = await connect_staggered(_interleave(infos), local_address)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from None
        try:
            for option in socket_options or ():
                sock.setsockopt(*option)
            _, receiver = await loop.create_connection(_Receiver, sock=sock)
        except OSError as exc:
            sock.close()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from None
        LoopBackend.connections += 1
        return LoopStream(receiver)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


_AddrInfo = tuple[int, int, int, str, Any]


def _literal(host: str, port: int) -> list[_AddrInfo]:
    """An address written as such needs no resolver, and no thread to ask it in: a probe
    connects to the address it resolved itself (sources/tracking.py), and asyncio's getaddrinfo
    runs in the default thread pool, behind queued file work. [] for a name (or a scoped
    IPv6 address, left to getaddrinfo)."""
    try:
        addr = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return []
    if addr.version == 4:
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (str(addr), port))]
    if "%" in host:
        return []
    return [(socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (str(addr), port, 0, 0))]


def _interleave(infos: Sequence[_AddrInfo]) -> list[_AddrInfo]:
    """getaddrinfo's order with the address families alternating (RFC 8305 section 4)."""
    seen: set[Any] = set()
    by_family: dict[int, list[_AddrInfo]] = {}
    for info in infos:
        if info[4] not in seen:
            seen.add(info[4])
            by_family.setdefault(info[0], []).append(info)
    lists = list(by_family.values())
    out: list[_AddrInfo] = []
    for i in range(max((len(x) for x in lists), default=0)):
        out.extend(x[i] for x in lists if i < len(x))
    return out


async def connect_staggered(infos: list[_AddrInfo], local_address: str | None = None,
                            stagger: float = CONNECT_STAGGER) -> socket.socket:
    """A connected non-blocking socket to the first of *infos* that answers; an attempt starts
    every *stagger* seconds, or at once when the previous one failed. Raises the first error
    when all fail."""
    if not infos:
        raise OSError("the name has no address")
    loop = asyncio.get_running_loop()
    errors: list[OSError] = []
    pending: set[asyncio.Task[socket.socket]] = set()
    winner: socket.socket | None = None

    async def attempt(info: _AddrInfo) -> socket.socket:
        family, type_, proto, _, address = info
        sock = socket.socket(family, type_, proto)
        try:
            sock.setblocking(False)
            if local_address:
                sock.bind((local_address, 0))
            await loop.sock_connect(sock, address)
        except BaseException:
            sock.close()
            raise
        return sock

    queue = list(infos)
    try:
        while winner is None and (queue or pending):
            if queue:
                pending.add(asyncio.ensure_future(attempt(queue.pop(0))))
            done, _ = await asyncio.wait(pending, timeout=stagger if queue else None,
                                         return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                pending.discard(task)
                exc = task.exception()
                if exc is None and winner is None:
                    winner = task.result()
                elif exc is None:
                    task.result().close()
                elif isinstance(exc, OSError):
                    errors.append(exc)
                else:
                    raise exc
    finally:
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(BaseException):
                sock = await task
                sock.close()
    if winner is None:
        raise errors[0]
    return winner
