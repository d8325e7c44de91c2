"""server/idlememory.py: an idle worker hands the heap's free pages back to the system, once per
idle spell, and never while requests come or one is in flight."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from modvault.server.idlememory import IdleTrim, glibc_trim
from tests.support.modvault_proc import ModvaultProcess
from tests.support.waits import wait_for


class Counts:
    def __init__(self) -> None:
        self.served = 0
        self.in_flight = 0
        self.trims = 0

    def trim(self) -> None:
        self.trims += 1


def idle_trim(counts: Counts) -> IdleTrim:
    return IdleTrim(lambda: counts.served, lambda: counts.in_flight, counts.trim)


def test_trims_once_per_idle_spell() -> None:
    counts = Counts()
    idle = idle_trim(counts)
    assert idle.check() and counts.trims == 1  # nothing since start-up: its garbage goes
    assert not idle.check() and counts.trims == 1  # still idle: nothing new to give back
    counts.served += 3
    assert not idle.check() and counts.trims == 1  # requests came during this check
    assert idle.check() and counts.trims == 2  # a whole check without one
    assert not idle.check() and counts.trims == 2


def test_no_trim_under_steady_load_or_with_a_request_in_flight() -> None:
    counts = Counts()
    idle = idle_trim(counts)
    for _ in range(5):
        counts.served += 1
        assert not idle.check()
    counts.in_flight = 1  # a long download: counted only once done
    assert not idle.check() and not idle.check()
    counts.in_flight = 0
    assert idle.check() and counts.trims == 1


def test_nothing_runs_where_the_c_library_cannot_trim() -> None:
    idle = IdleTrim(lambda: 0, lambda: 0, None, interval=0.001)
    assert not idle.check()
    loop = asyncio.new_event_loop()
    try:
        idle.start(loop)
        assert idle._task is None
    finally:
        loop.close()


def test_the_task_checks_every_interval_and_stops() -> None:
    counts = Counts()

    async def run() -> None:
        idle = IdleTrim(lambda: counts.served, lambda: counts.in_flight, counts.trim,
                        interval=0.01)
        idle.start(asyncio.get_running_loop())
        assert counts.trims == 1  # at once: what start-up left
        await asyncio.sleep(0.1)
        assert counts.trims == 1  # idle since: nothing new to give back
        counts.served += 1
        for _ in range(200):
            await asyncio.sleep(0.01)
            if counts.trims == 2:
                break
        idle.stop()
        assert idle._task is None

    asyncio.run(run())
    assert counts.trims == 2


def rss_kib() -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))


def test_glibc_trim_returns_free_pages_below_live_memory() -> None:
    """What free() alone keeps: 64 MiB in 4 KiB blocks freed under one block still in use at
    the heap's top, so glibc cannot shrink the heap and the pages stay resident until trimmed."""
    trim = glibc_trim()
    if trim is None:
        pytest.skip("no malloc_trim in this C library")
    blocks = [bytearray(4096) for _ in range(16384)]  # above pymalloc's 512 bytes: glibc's
    top = bytearray(4096)
    for b in blocks:
        b[0] = 1
    del blocks
    before = rss_kib()
    trim()
    after = rss_kib()
    assert before - after > 32 * 1024, (before, after)
    del top


def test_a_real_worker_trims_once_it_is_built(tmp_path: Path) -> None:
    """The server wires it in: a worker's debug log says the start-up trim ran (every process
    model builds its worker through the same App)."""
    (tmp_path / "data").mkdir()
    mv = ModvaultProcess(tmp_path / "data", "off", "--offline", "--log-level", "debug")
    try:
        assert httpx.get(mv.url + "/healthz", timeout=10).status_code == 200
        assert wait_for(lambda: "start-up: free heap pages returned" in mv.output(), 20)
    finally:
        mv.stop()
