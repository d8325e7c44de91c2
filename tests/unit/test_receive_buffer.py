"""sources/receivebuffer.py: h11's buffer without its body copies, and otherwise h11's own.

The buffer is checked against h11's on random sequences of operations, and a whole h11 client
connection with it against one without, on random answers cut into random reads. The copies it
saves are checked by identity: the bytes object a read handed over is the one a body event holds.
"""

from __future__ import annotations

import itertools
from typing import Any

import h11
import pytest
from h11 import _connection, _receivebuffer
from hypothesis import example, given, settings
from hypothesis import strategies as st

from modvault.sources import receivebuffer

Fast = receivebuffer.buffer_class()
assert Fast is not None, "this h11's buffer is the one receivebuffer.py wraps"
Plain = _receivebuffer.ReceiveBuffer

chunks = st.binary(max_size=40).map(bytes) | st.binary(max_size=40).map(bytearray)
ops = st.lists(st.one_of(
    st.tuples(st.just("add"), chunks | st.sampled_from([b"\r\n", b"\n", b"\r\n\r\n", b"a\r\nb\n\n"])),
    st.tuples(st.just("at_most"), st.integers(min_value=-3, max_value=60)),
    st.tuples(st.just("line")), st.tuples(st.just("lines")), st.tuples(st.just("invalid")),
    st.tuples(st.just("bytes")),
), max_size=40)


def _apply(buf: Any, op: tuple[Any, ...]) -> Any:
    kind = op[0]
    if kind == "add":
        buf += op[1]
        return None
    if kind == "at_most":
        out = buf.maybe_extract_at_most(op[1])
        return None if out is None else bytes(out)
    if kind == "line":
        out = buf.maybe_extract_next_line()
        return None if out is None else bytes(out)
    if kind == "lines":
        lines = buf.maybe_extract_lines()
        return None if lines is None else [bytes(x) for x in lines]
    if kind == "invalid":
        return buf.is_next_line_obviously_invalid_request_line()
    return bytes(buf)


@settings(max_examples=400, deadline=None)
@given(ops)
@example([("add", b"abc"), ("at_most", 1), ("add", b"de"), ("at_most", 10), ("add", b"f\r\n"),
          ("add", b"g"), ("line",), ("at_most", 1)])
def test_same_answers_as_h11s_buffer(sequence: list[tuple[Any, ...]]) -> None:
    plain, fast = Plain(), Fast()
    for op in sequence:
        assert _apply(fast, op) == _apply(plain, op), op
        assert len(fast) == len(plain) and bool(fast) == bool(plain)
        assert bytes(fast) == bytes(plain)


def _answers(bodies: list[tuple[bytes, bool]]) -> bytes:
    out = b""
    for body, chunked in bodies:
        if chunked:
            out += b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            for i in range(0, len(body), 7):
                part = body[i:i + 7]
                out += b"%x\r\n%s\r\n" % (len(part), part)
            out += b"0\r\n\r\n"
        else:
            out += b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    return out


def _events(buffer_cls: type, wire: bytes, cuts: list[int], answers: int) -> list[Any]:
    conn = h11.Connection(h11.CLIENT)
    conn._receive_buffer = buffer_cls()  # the buffer under test, as install() would make it
    seen: list[Any] = []
    bounds = sorted({0, len(wire), *(c % (len(wire) + 1) for c in cuts)})
    reads = [wire[a:b] for a, b in itertools.pairwise(bounds)]
    for n in range(answers):
        conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
        conn.send(h11.EndOfMessage())
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(reads.pop(0) if reads else b"")
                continue
            if isinstance(event, h11.Data):
                seen.append(("data", bytes(event.data)))
            else:
                seen.append(type(event).__name__)
            if isinstance(event, h11.EndOfMessage):
                break
        if n + 1 < answers:
            conn.start_next_cycle()
    return seen


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=300), st.booleans()), min_size=1, max_size=3),
       st.lists(st.integers(min_value=0, max_value=2000), max_size=12))
def test_a_connection_reads_the_same_events(bodies: list[tuple[bytes, bool]],
                                            cuts: list[int]) -> None:
    wire = _answers(bodies)
    assert _events(Fast, wire, cuts, len(bodies)) == _events(Plain, wire, cuts, len(bodies))


def test_a_body_read_is_handed_over_without_a_copy() -> None:
    conn = h11.Connection(h11.CLIENT)
    conn._receive_buffer = Fast()
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n")
    assert isinstance(conn.next_event(), h11.Response)
    assert conn.next_event() is h11.NEED_DATA
    read = bytes(1_000_000)
    conn.receive_data(read)
    event = conn.next_event()
    assert isinstance(event, h11.Data)
    assert event.data is read  # not copied by h11...
    assert bytes(event.data) is read  # ...nor by httpcore's bytes()
    # Half a read: the rest stays, and comes out in order.
    conn.receive_data(read[:600_000] + b"x" * 400_000)
    event = conn.next_event()
    assert isinstance(event, h11.Data) and bytes(event.data) == read[:600_000] + b"x" * 400_000
    assert isinstance(conn.next_event(), h11.EndOfMessage)


def test_install_takes_only_h11s_own_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_connection, "ReceiveBuffer", Plain)  # restored after the test
    assert receivebuffer.install()
    assert type(h11.Connection(h11.CLIENT)._receive_buffer).__name__ == "WholeReadBuffer"
    assert receivebuffer.install()  # once is enough

    class Theirs(Plain):  # type: ignore[misc, valid-type]
        pass

    monkeypatch.setattr(_connection, "ReceiveBuffer", Theirs)
    assert not receivebuffer.install()  # someone else's buffer is left alone
    assert _connection.ReceiveBuffer is Theirs

    class Unknown:  # a later h11 whose buffer has other methods
        def __init__(self) -> None:
            self._data = bytearray()

    monkeypatch.setattr(_receivebuffer, "ReceiveBuffer", Unknown)
    monkeypatch.setattr(_connection, "ReceiveBuffer", Unknown)
    assert receivebuffer.buffer_class() is None
    assert not receivebuffer.install()
    assert _connection.ReceiveBuffer is Unknown


def test_upstream_downloads_take_the_reads_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the upstreams' own client, over a socket: the chunks httpx hands out are the very
    objects our connection's reads returned, and together they are the body."""
    import asyncio

    from modvault.sources import loopnet
    from modvault.sources.upstream import UpstreamLimits, make_client

    monkeypatch.setattr(_connection, "ReceiveBuffer", Plain)  # make_client installs it again
    body = bytes(range(256)) * (12 << 10)  # 3 MiB
    reads: list[bytes] = []
    real_read = loopnet.LoopStream.read

    async def read(self: Any, max_bytes: int, timeout: float | None = None) -> bytes:
        out = await real_read(self, max_bytes, timeout)
        reads.append(out)
        return out

    monkeypatch.setattr(loopnet.LoopStream, "read", read)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
        for i in range(0, len(body), 256 << 10):
            writer.write(body[i:i + (256 << 10)])
            await writer.drain()
        writer.close()

    async def main() -> list[bytes]:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = make_client(UpstreamLimits())
        try:
            async with client.stream("GET", f"http://127.0.0.1:{port}/z") as resp:
                return [chunk async for chunk in resp.aiter_raw()]
        finally:
            await client.aclose()
            server.close()

    chunks = asyncio.run(main())
    assert receivebuffer.installed()
    assert b"".join(chunks) == body
    whole = [c for c in chunks if any(c is r for r in reads)]
    # All but the first chunk (it came in the read with the head) are reads handed over as is.
    assert len(chunks) > 2 and len(whole) >= len(chunks) - 1, (len(chunks), len(whole))
