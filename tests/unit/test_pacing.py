"""sources/pacing.py: a body's loop lets the event loop run, and a body sent in crumbs is refused.

The counting is checked on its own (with a fake clock), then where it is used: an upstream
answering over a real socket, chunked, through the client ``make_client`` builds."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import socket
import zipfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modvault.errors import InvalidContent
from modvault.sources import pacing
from modvault.sources.pacing import MIN_PIECE, SLICE, WINDOW, BodyPace
from modvault.sources.upstream import HTTPUpstream, UpstreamLimits, make_client
from tests.unit.test_loopnet import Server, read_request


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_loop_runs_once_a_slice_has_passed() -> None:
    clock = Clock()
    pace = BodyPace("zip", clock)
    assert not pace.took(1000)
    clock.now += SLICE / 2
    assert not pace.took(1000)
    clock.now += SLICE / 2
    assert pace.took(1000)  # a whole slice since the start
    assert not pace.took(1000)  # and the next slice starts now
    clock.now += SLICE * 10
    assert pace.took(1)


def test_crumbs_are_refused_at_the_end_of_a_window() -> None:
    pace = BodyPace("up: zip example.com/m@v1.0.0", Clock())
    for _ in range(WINDOW - 1):
        pace.took(1)
    with pytest.raises(InvalidContent) as info:
        pace.took(1)
    assert str(info.value) == ("up: zip example.com/m@v1.0.0: body sent in pieces of 1 bytes on "
                               f"average ({WINDOW} pieces): refused, at least {MIN_PIECE} expected")


def test_each_window_is_judged_alone() -> None:
    pace = BodyPace("zip", Clock())
    pace.took(1 << 30)  # a big first piece does not pay for crumbs in a later window
    for _ in range(WINDOW - 1):
        pace.took(1)
    for _ in range(WINDOW - 1):
        pace.took(1)
    with pytest.raises(InvalidContent):
        pace.took(1)


@given(st.lists(st.integers(min_value=0, max_value=40), max_size=60))
def test_refused_exactly_when_a_window_falls_short(sizes: list[int]) -> None:
    window, floor = 4, 10  # small, so that the property covers many windows
    old = pacing.WINDOW, pacing.MIN_PIECE
    pacing.WINDOW, pacing.MIN_PIECE = window, floor
    try:
        pace = BodyPace("x", Clock())
        refused_at = None
        for i, n in enumerate(sizes):
            try:
                pace.took(n)
            except InvalidContent:
                refused_at = i
                break
    finally:
        pacing.WINDOW, pacing.MIN_PIECE = old
    expected = next((end - 1 for end in range(window, len(sizes) + 1, window)
                     if sum(sizes[end - window:end]) < window * floor), None)
    assert refused_at == expected


# -- where it is used: an upstream over a real socket ------------------------------------------


def chunked_answer(body: bytes, size: int, sent: list[int]) -> Callable[[socket.socket], None]:
    """Answer each request with *body* in chunks of *size*; *sent* counts the body bytes sent."""

    def handle(conn: socket.socket) -> None:
        while True:
            read_request(conn)
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            wire = bytearray()
            for i in range(0, len(body), size):
                piece = body[i:i + size]
                wire += b"%x\r\n%s\r\n" % (len(piece), piece)
                if len(wire) >= 65536:
                    conn.sendall(wire)
                    sent[0] = i + len(piece)
                    wire.clear()
            conn.sendall(bytes(wire) + b"0\r\n\r\n")
            sent[0] = len(body)

    return handle


def module_zip(files: int, each: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("example.com/m@v1.0.0/go.mod", "module example.com/m\n")
        for i in range(files):
            zf.writestr(f"example.com/m@v1.0.0/f{i}.bin", os.urandom(each))
    return out.getvalue()


def fetch(body: bytes, size: int, work: Callable[[HTTPUpstream], Awaitable[object]]
          ) -> tuple[object, int, int]:
    """Run *work* against a server sending *body* in chunks of *size*, beside a task that counts
    how often the event loop ran it. Returns (work's result or exception, ticks, bytes sent)."""
    sent = [0]
    server = Server(chunked_answer(body, size, sent))

    async def run() -> tuple[object, int]:
        limits = UpstreamLimits(retries=0)
        client = make_client(limits)
        upstream = HTTPUpstream(f"http://127.0.0.1:{server.port}", client, limits)
        ticks = 0
        stop = False

        async def ticker() -> None:
            nonlocal ticks
            while not stop:
                await asyncio.sleep(0)
                ticks += 1

        task = asyncio.create_task(ticker())
        try:
            result: object = await work(upstream)
        except InvalidContent as exc:
            result = exc
        finally:
            stop = True
            await task
            await client.aclose()
        return result, ticks

    try:
        result, ticks = asyncio.run(run())
    finally:
        server.close()
    return result, ticks, sent[0]


def test_a_zip_in_crumbs_is_refused_before_most_of_it_is_sent(tmp_path: Path) -> None:
    body = os.urandom(16 << 20)
    result, _, sent = fetch(body, 1, lambda up: up.zip("example.com/m", "v1.0.0",
                                                       tmp_path / "z"))
    assert isinstance(result, InvalidContent), result
    assert "pieces of 1 bytes on average" in str(result)
    assert sent < len(body) // 4  # the connection was dropped, not read to the end


def test_a_zip_in_small_chunks_arrives_whole_and_the_loop_runs_between_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = module_zip(8, 64 << 10)
    monkeypatch.setattr(pacing, "SLICE", 0.0)  # let the loop run after every piece
    dest = tmp_path / "z"
    # Twice the floor: a chunk split between two reads is two pieces.
    size = 2 * MIN_PIECE
    result, ticks, _ = fetch(body, size, lambda up: up.zip("example.com/m", "v1.0.0", dest))
    assert result == hashlib.sha256(body).hexdigest()
    assert dest.read_bytes() == body
    pieces = len(body) // size
    # Without the pause, the loop runs only when a read waits for the network: a few dozen times.
    assert ticks >= pieces // 2, (ticks, pieces)


def test_a_small_answer_in_small_chunks_is_read_with_the_loop_running(
        monkeypatch: pytest.MonkeyPatch) -> None:
    body = b"module example.com/m\n\n" + b"// a comment line of a go.mod file\n" * 8000
    monkeypatch.setattr(pacing, "SLICE", 0.0)
    result, ticks, _ = fetch(body, 2 * MIN_PIECE, lambda up: up.mod("example.com/m", "v1.0.0"))
    assert result == body
    assert ticks >= (len(body) // (2 * MIN_PIECE)) // 2, ticks
