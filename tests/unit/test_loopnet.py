"""sources/loopnet.py: the upstream client's connections on the event loop's own transports.

Every test talks to a real server over a real socket (plain TCP, and TLS with a private CA), through
the client ``make_client`` builds, so what is checked is what a fetch gets."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from modvault.sources.loopnet import (
    FIRST_READ,
    MAX_BUFFER,
    MAX_HEAD_READ,
    MIN_BUFFER,
    HeadRefused,
    LoopBackend,
    LoopStream,
    _interleave,
    _literal,
    connect_staggered,
)
from modvault.sources.retry import describe
from modvault.sources.upstream import UpstreamLimits, make_client
from tests.support.tls import make_cert

Handler = Callable[[socket.socket], None]


class Server:
    """A TCP (optionally TLS) server answering each connection with *handler*, in threads."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler, self.tls = handler, tls
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sent = 0  # body bytes the handlers got into the kernel
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            self.handler(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.sock.close()


def read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def answer(body: bytes, *, declared: int | None = None, keep_alive: bool = True,
           server: list[Server] | None = None) -> Handler:
    def handle(conn: socket.socket) -> None:
        while True:
            read_request(conn)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n"
                         % (len(body) if declared is None else declared))
            view = memoryview(body)
            for i in range(0, len(body), 256 * 1024):
                conn.sendall(view[i:i + 256 * 1024])
                if server:
                    server[0].sent += len(view[i:i + 256 * 1024])
            if not keep_alive:
                return
    return handle


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    made: list[Server] = []
    yield made
    for s in made:
        s.close()


def fetch(url: str, limits: UpstreamLimits | None = None) -> tuple[int, bytes]:
    async def main() -> tuple[int, bytes]:
        async with make_client(limits or UpstreamLimits()) as client:
            r = await client.get(url)
            return r.status_code, r.content
    return asyncio.run(main())


def test_a_large_body_arrives_whole_through_the_loops_connections(servers: list[Server]) -> None:
    body = os.urandom(24 * 1024 * 1024 + 12345)
    servers.append(Server(answer(body)))
    before = LoopBackend.connections
    status, got = fetch(f"http://127.0.0.1:{servers[0].port}/m/@v/v1.0.0.zip")
    assert status == 200 and hashlib.sha256(got).digest() == hashlib.sha256(body).digest()
    assert LoopBackend.connections == before + 1  # make_client's pool connects through ours


def test_tls_with_a_private_ca_and_refused_without_it(servers: list[Server], tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    body = os.urandom(3 * 1024 * 1024)
    servers.append(Server(answer(body), tls=ctx))
    url = f"https://127.0.0.1:{servers[0].port}/x"
    status, got = fetch(url, UpstreamLimits(ca_file=str(cert)))
    assert status == 200 and got == body
    with pytest.raises(httpx.ConnectError, match="certificate verify failed"):
        fetch(url)


def test_requests_reuse_a_connection_and_a_closed_idle_one_is_not_reused(
        servers: list[Server]) -> None:
    def once_then_close(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        time.sleep(0.1)  # then closes, as a server's idle time-out does

    servers.append(Server(answer(b"x" * 100)))
    servers.append(Server(once_then_close))

    async def main() -> list[int]:
        async with make_client(UpstreamLimits()) as client:
            codes = [(await client.get(f"http://127.0.0.1:{servers[0].port}/a")).status_code
                     for _ in range(5)]
            for _ in range(3):
                codes.append((await client.get(f"http://127.0.0.1:{servers[1].port}/b")).status_code)
                await asyncio.sleep(0.3)
            return codes

    assert asyncio.run(main()) == [200] * 8
    assert servers[0].connections == 1
    assert servers[1].connections == 3


def test_a_consumer_that_stops_reading_stops_the_sender(servers: list[Server]) -> None:
    """Back-pressure: what is not read stays in the sender's socket, not in our memory."""
    body = os.urandom(96 * 1024 * 1024)
    servers.append(Server(answer(body, server=servers)))

    async def main() -> tuple[int, int, bytes]:
        async with make_client(UpstreamLimits()) as client, \
                client.stream("GET", f"http://127.0.0.1:{servers[0].port}/big") as r:
            await asyncio.sleep(1.0)
            stalled = servers[0].sent
            digest = hashlib.sha256()
            async for chunk in r.aiter_raw():
                digest.update(chunk)
            return stalled, servers[0].sent, digest.digest()

    stalled, sent, digest = asyncio.run(main())
    # Kernel socket buffers on both sides take some MiB; an unbounded reader would take it all.
    assert stalled < 40 * 1024 * 1024
    assert sent == len(body) and digest == hashlib.sha256(body).digest()


def test_a_body_shorter_than_declared_is_an_error(servers: list[Server]) -> None:
    servers.append(Server(answer(b"x" * 100_000, declared=200_000, keep_alive=False)))
    with pytest.raises(httpx.RemoteProtocolError):
        fetch(f"http://127.0.0.1:{servers[0].port}/short")


def test_a_silent_server_is_a_read_timeout(servers: list[Server]) -> None:
    def silent(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        time.sleep(3)

    servers.append(Server(silent))
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        fetch(f"http://127.0.0.1:{servers[0].port}/slow", UpstreamLimits(read_timeout=0.5))
    assert time.monotonic() - started < 2.5


def test_connect_refused_is_a_connect_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        with pytest.raises(httpx.ConnectError):
            fetch(f"http://127.0.0.1:{port}/x")


def _info(port: int) -> tuple[int, int, int, str, tuple[str, int]]:
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))


def test_a_black_holed_first_address_costs_one_stagger_not_the_time_out() -> None:
    """RFC 8305: the next address is tried while the first still hangs."""
    hole = socket.create_server(("127.0.0.1", 0), backlog=0)
    fillers = []
    for _ in range(3):  # fill the accept queue: further SYNs are dropped, connects hang
        f = socket.socket()
        f.setblocking(False)
        f.connect_ex(hole.getsockname())
        fillers.append(f)
    good = socket.create_server(("127.0.0.1", 0))
    try:
        async def main() -> int:
            sock = await asyncio.wait_for(connect_staggered(
                [_info(hole.getsockname()[1]), _info(good.getsockname()[1])], stagger=0.1), 5)
            with sock:
                return int(sock.getpeername()[1])

        assert asyncio.run(main()) == good.getsockname()[1]
    finally:
        for s in (hole, good, *fillers):
            s.close()


def test_all_addresses_failing_raises_the_first_error() -> None:
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    with pytest.raises(OSError):
        asyncio.run(connect_staggered([_info(p) for p in ports]))
    with pytest.raises(OSError, match="no address"):
        asyncio.run(connect_staggered([]))


def test_families_alternate_in_getaddrinfo_order() -> None:
    v6a = (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", 1, 0, 0))
    v6b = (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::2", 1, 0, 0))
    v4a = (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.1", 1))
    assert _interleave([v6a, v6b, v4a, v6a]) == [v6a, v4a, v6b]
    assert _interleave([v4a]) == [v4a]
    assert _interleave([]) == []


def test_a_tls_handshake_that_stalls_or_is_cut_fails_within_the_connect_time_out(
        servers: list[Server]) -> None:
    servers.append(Server(lambda conn: time.sleep(3)))  # accepts, never answers the ClientHello
    servers.append(Server(lambda conn: None))  # accepts and closes at once
    started = time.monotonic()
    with pytest.raises(httpx.ConnectTimeout):
        fetch(f"https://127.0.0.1:{servers[0].port}/x", UpstreamLimits(connect_timeout=0.5))
    assert time.monotonic() - started < 2.5
    with pytest.raises(httpx.ConnectError):
        fetch(f"https://127.0.0.1:{servers[1].port}/x", UpstreamLimits(connect_timeout=2))


def test_an_endless_header_is_refused_with_bounded_memory(servers: list[Server]) -> None:
    def endless(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Junk: ")
        for _ in range(64):
            conn.sendall(b"a" * 65536)

    servers.append(Server(endless))
    with pytest.raises(httpx.RemoteProtocolError):
        fetch(f"http://127.0.0.1:{servers[0].port}/x")


def test_the_buffer_grows_for_a_body_and_is_given_back_when_idle(servers: list[Server]) -> None:
    body = os.urandom(8 * 1024 * 1024)
    servers.append(Server(answer(body)))

    async def main() -> tuple[int, int, bool]:
        stream = await LoopBackend().connect_tcp("127.0.0.1", servers[0].port, timeout=5)
        assert isinstance(stream, LoopStream)
        await stream.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        whole = len(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)) + len(body)
        got, biggest = 0, 0
        while got < whole:
            await asyncio.sleep(0.002)  # a consumer that lags: the buffer fills and grows
            got += len(await stream.read(MAX_BUFFER))
            biggest = max(biggest, len(stream._r.buf))
        readable = bool(stream.get_extra_info("is_readable"))
        size = len(stream._r.buf)
        await stream.aclose()
        return biggest, size, readable

    biggest, idle, readable = asyncio.run(main())
    assert biggest == MAX_BUFFER and idle == MIN_BUFFER and not readable


def test_tls_is_verified_against_the_name_asked_for(servers: list[Server], tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path, with_ip=False)  # valid for "localhost" only
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    servers.append(Server(answer(b"by name"), tls=ctx))
    limits = UpstreamLimits(ca_file=str(cert))
    assert fetch(f"https://localhost:{servers[0].port}/x", limits) == (200, b"by name")
    with pytest.raises(httpx.ConnectError, match="certificate verify failed"):
        fetch(f"https://127.0.0.1:{servers[0].port}/x", limits)


def _loop_gaps(work: Callable[[], Awaitable[object]]) -> tuple[object, float]:
    """Run *work* beside a task that notes the longest time the event loop did not come back
    to it: what any other client of the loop would wait."""

    async def main() -> tuple[object, float]:
        worst, stop = 0.0, False

        async def ticker() -> None:
            nonlocal worst
            last = time.perf_counter()
            while not stop:
                await asyncio.sleep(0)
                now = time.perf_counter()
                worst, last = max(worst, now - last), now

        task = asyncio.create_task(ticker())
        try:
            result: object = await work()
        except (TimeoutError, httpx.HTTPError) as exc:
            result = exc
        finally:
            stop = True
            await task
        return result, worst

    return asyncio.run(main())


def test_a_flood_of_informational_heads_does_not_hold_the_loop(servers: list[Server]) -> None:
    # httpcore takes every buffered event before it reads again: a megabyte of "100 Continue"
    # heads is ~40,000 events, and before reads were paced the loop waited for each read's
    # worth (0.65 s here).
    def flood(conn: socket.socket) -> None:
        read_request(conn)
        heads = b"HTTP/1.1 100 Continue\r\n\r\n" * 4000
        ends = time.monotonic() + 5
        while time.monotonic() < ends:
            conn.sendall(heads)

    servers.append(Server(flood))

    async def work() -> object:
        async with make_client(UpstreamLimits()) as client:
            # Parsing a megabyte of heads takes about a second of CPU; 2 s was too short on a
            # loaded machine. Without the refusal the flood would end at 5 s with the connection
            # closed: another error, which the message check below tells apart.
            return await asyncio.wait_for(
                client.get(f"http://127.0.0.1:{servers[0].port}/m/@v/v1.0.0.zip"), 12.0)

    result, worst = _loop_gaps(work)
    # Refused after MAX_HEAD_READ bytes (before: the request waited for its total time-out).
    assert isinstance(result, httpx.RemoteProtocolError), result
    assert f"no final answer head within the first {MAX_HEAD_READ} bytes" in str(result)
    assert worst < 0.25, worst  # a read's worth is what the caller gets through in ~2 ms


def test_the_refusal_is_named_in_messages_other_protocol_errors_are_not() -> None:
    text = f"no final answer head within the first {MAX_HEAD_READ} bytes"
    refused = httpx.RemoteProtocolError(text)  # as httpx raises it: from loopnet's own error
    refused.__cause__ = HeadRefused(text)
    assert describe(refused) == f"no final answer head within the first {MAX_HEAD_READ} bytes"
    assert describe(httpx.RemoteProtocolError("illegal header line: bytearray(b'\\x00')")) == \
        "connection closed before the answer was complete"


def test_an_informational_answer_and_a_large_head_are_taken(servers: list[Server]) -> None:
    fields = b"".join(b"X-Field-%d: %s\r\n" % (i, b"v" * 200) for i in range(400))  # ~85 KiB
    body = os.urandom(3 * 1024 * 1024)

    def handle(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
                     b"HTTP/1.1 200 OK\r\n" + fields
                     + b"Content-Length: %d\r\n\r\n" % len(body) + body)

    servers.append(Server(handle))
    status, got = fetch(f"http://127.0.0.1:{servers[0].port}/m/@v/v1.0.0.zip")
    assert status == 200 and got == body


def test_reads_grow_to_a_megabyte_for_a_reader_that_keeps_up(servers: list[Server]) -> None:
    body = os.urandom(16 * 1024 * 1024)
    servers.append(Server(answer(body)))

    async def work() -> object:
        sizes = []
        async with make_client(UpstreamLimits()) as client, \
                client.stream("GET", f"http://127.0.0.1:{servers[0].port}/big") as r:
            async for chunk in r.aiter_raw():
                sizes.append(len(chunk))
                if len(sizes) < 12:
                    await asyncio.sleep(0.02)  # the connection's buffer fills meanwhile
        return sizes

    sizes, _ = _loop_gaps(work)
    assert isinstance(sizes, list) and sum(sizes) == len(body)
    assert sizes[0] <= 4 * FIRST_READ  # small reads first (the head may take the first alone)
    assert max(sizes) == MAX_BUFFER


def test_an_answers_first_read_is_small_even_on_a_reused_connection(servers: list[Server]) -> None:
    body = os.urandom(4 * 1024 * 1024)
    servers.append(Server(answer(body)))

    async def main() -> list[int]:
        stream = await LoopBackend().connect_tcp("127.0.0.1", servers[0].port, timeout=5)
        firsts = []
        try:
            for _ in range(2):
                await stream.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                await asyncio.sleep(0.2)  # the whole answer is buffered by now (or up to 1 MiB)
                got = await stream.read(MAX_BUFFER)
                firsts.append(len(got))
                total = len(got)
                whole = len(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)) + len(body)
                while total < whole:  # the rest of this answer
                    total += len(await stream.read(MAX_BUFFER))
        finally:
            await stream.aclose()
        return firsts

    assert asyncio.run(main()) == [FIRST_READ, FIRST_READ]


def test_an_address_written_as_such_is_not_resolved() -> None:
    assert _literal("127.0.0.1", 80) == [
        (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", 80))]
    v6 = [(socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("::1", 443, 0, 0))]
    assert _literal("::1", 443) == v6 and _literal("[::1]", 443) == v6
    assert _literal("proxy.golang.org", 443) == []
    assert _literal("fe80::1%eth0", 443) == []  # scoped: left to getaddrinfo
