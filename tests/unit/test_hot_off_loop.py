"""server/hotpath.py, ``HotPath.serve_now``: prebuilt answers given on granian's thread change
nothing the loop's thread owns, decline whatever needs a change, and queue what they record for
the loop's thread (``settle``), where nothing of it is lost. In-process, with a real service over
a store on disk; the server-level behaviour is in tests/e2e/test_hot_path.py."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from modvault.cache.coordination.state import LocalChanges
from modvault.config import Settings
from modvault.observability import logs, metrics
from modvault.server import hotpath
from modvault.server.app import App
from modvault.wiring import build_service
from tests.support.rsgi import Proto, Scope

MOD = "example.com/m"
INFO = f"/{MOD}/@v/v1.0.0.info"
INFO_BODY = b'{"Version":"v1.0.0","Time":"2026-01-02T03:04:05Z"}'
ZIPS = [f"/{MOD}/@v/v1.0.{i}.zip" for i in range(1, 5)]


def zip_bytes(i: int) -> bytes:
    """Distinct content per zip: an answer with another file's bytes shows."""
    return bytes((i * 31 + n) % 251 for n in range(40_000))


def write_store(data: Path) -> None:
    d = data / MOD / "@v"
    d.mkdir(parents=True)
    (d / "v1.0.0.info").write_bytes(INFO_BODY)
    for i in range(1, 5):
        (d / f"v1.0.{i}.zip").write_bytes(zip_bytes(i))


@asynccontextmanager
async def app_on(tmp_path: Path, log_fd: int | None = None) -> AsyncIterator[App]:
    """A worker's app whose prebuilt answers may be given off the loop, with the access log on
    ``log_fd`` (off without one)."""
    data = tmp_path / "data"
    write_store(data)
    settings = Settings(data_dir=str(data), upstream="off", offline=True, sumdb_verify=False,
                        access_log=log_fd is not None)
    app = App(settings)
    if log_fd is not None:
        app.access_log = logs.AccessLog(True, fd=log_fd)
    app.setup(build_service(settings))
    assert app.hot is not None
    app.hot.off_loop(asyncio.get_running_loop())
    try:
        yield app
    finally:
        app.hot.close()
        files = app.renderer.files
        for path in list(files._fds):
            files.forget(path)
        await app.service.aclose()


async def learn(app: App, *paths: str) -> None:
    """Each path from the store, then learned by the general path."""
    for path in paths:
        for _ in range(2):
            proto = Proto()
            await app.__rsgi__(Scope(path), proto)
            assert proto.answers[0][0] == 200


def on_thread(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on a thread that is not the loop's, as granian calls its scheduler."""
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join()
    return out[0]


def run_on(tmp_path: Path, check: Callable[[App, hotpath.HotPath], Awaitable[None]],
           learned: tuple[str, ...] = (INFO,), log_fd: int | None = None) -> None:
    """Run ``check`` on a worker's app (app_on) once ``learned`` are prebuilt answers."""

    async def main() -> None:
        async with app_on(tmp_path, log_fd) as app:
            assert app.hot is not None
            await learn(app, *learned)
            await check(app, app.hot)

    asyncio.run(main())
    gc.collect()


def prebuilt(kind: str) -> float:
    return sum(v[0] for k, v in metrics.PREBUILT_ANSWERS.values.items() if k == (kind,))


def test_answers_on_another_thread_are_recorded_on_the_loops(tmp_path: Path) -> None:
    """The bytes are sent at once; the metrics and the access-log lines follow on the loop's
    thread, one per answer, with the time and duration taken on granian's."""
    log = tmp_path / "access.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)

    async def check(app: App, hot: hotpath.HotPath) -> None:
        app.access_log.flush()
        lines_before = log.read_text().count("\n")
        info_before, zip_before = prebuilt("info"), prebuilt("zip")
        proto = Proto()
        rng = {"range": "bytes=100-199"}
        done = on_thread(lambda: [hot.serve_now(Scope(INFO), proto) for _ in range(5)]
                         + [hot.serve_now(Scope(ZIPS[0], rng), proto) for _ in range(3)])
        assert done == [True] * 8
        assert proto.answers == [(200, INFO_BODY)] * 5 + [(206, zip_bytes(1)[100:200])] * 3
        # Nothing recorded on granian's thread: it is queued for the loop's.
        assert len(hot._queued) == 8
        assert sum(v[0] for k, v in metrics.PREBUILT_ANSWERS.values.items()
                   if k == ("info",)) == info_before  # read without settling
        await asyncio.sleep(hotpath.SETTLE_DELAY * 5)  # the settle it scheduled
        assert not hot._queued
        assert prebuilt("info") - info_before == 5 and prebuilt("zip") - zip_before == 3
        app.access_log.flush()
        lines = log.read_text().splitlines()[lines_before:]
        parsed = [json.loads(x) for x in lines]
        assert [(p["path"], p["status"], p["bytes"]) for p in parsed] == \
            [(INFO, 200, len(INFO_BODY))] * 5 + [(ZIPS[0], 206, 100)] * 3
        assert all(p["duration_ms"] >= 0 and p["ts"] > 0 for p in parsed)

    try:
        run_on(tmp_path, check, (INFO, ZIPS[0]), log_fd=fd)
    finally:
        os.close(fd)


def test_reading_the_metrics_records_what_is_queued_first(tmp_path: Path) -> None:
    async def check(app: App, hot: hotpath.HotPath) -> None:
        before = prebuilt("info")
        assert on_thread(lambda: hot.serve_now(Scope(INFO), Proto())) is True
        # No wait for the scheduled settle: a scrape (the collector) settles first.
        scraped = {(f.name, tuple(s.labels.items())): s.value
                   for f in metrics.REGISTRY.collect() for s in f.samples}
        assert scraped[("modvault_prebuilt_answers", (("kind", "info"),))] == before + 1

    run_on(tmp_path, check)


def test_what_needs_a_change_is_declined_and_left_to_the_loop(tmp_path: Path) -> None:
    """A change announced by a sibling, an artifact gone from the memory tier, a descriptor not
    open, a blocked version: granian's thread declines and changes nothing; the loop's thread
    then does what the general path does (forget, drop, open, 403)."""

    async def check(app: App, hot: hotpath.HotPath) -> None:
        service = app.service

        def now(path: str, headers: dict[str, str] | None = None) -> bool:
            return bool(on_thread(lambda: hot.serve_now(Scope(path, headers), Proto())))

        assert now(INFO) and now(ZIPS[0])

        # A sibling worker announced a change: declined, and still to be taken in.
        changes = service.coordination.changes
        assert isinstance(changes, LocalChanges)
        sibling = LocalChanges(Path(app.settings.data_dir))
        sibling.bump()
        assert not now(INFO) and changes.pending() and INFO in hot.entries
        key = hot.entries[INFO].key
        assert hot.serve(Scope(INFO), Proto()) is False  # the loop takes it in...
        assert not changes.pending()
        assert service.memory.peek(key) is None  # ...and forgets the memory tier
        assert not now(INFO)  # whose answers are stale now
        await sibling.aclose()

        # The memory tier lost the .info: declined, the entry left for the loop to drop.
        await learn(app, INFO, ZIPS[0])
        assert now(INFO)
        service.memory.pop(key)
        assert not now(INFO) and INFO in hot.entries
        assert hot.serve(Scope(INFO), Proto()) is False and INFO not in hot.entries

        # The zip's descriptor is not open (the cache evicted it): declined, left open
        # to the loop, whose answer opens it again.
        path = hot.entries[ZIPS[0]].path
        assert path is not None
        app.renderer.files.forget(path)
        assert not now(ZIPS[0]) and ZIPS[0] in hot.entries
        assert hot.serve(Scope(ZIPS[0]), Proto()) is True
        assert now(ZIPS[0])

        # A range not asked before is answered but not kept (the loop keeps them).
        kept = hot.partials_kept
        assert now(ZIPS[0], {"range": "bytes=5-9"})
        assert hot.partials_kept == kept and not hot.entries[ZIPS[0]].partials

        # A blocked version: the gate refuses it on either thread; the general path
        # answers the 403.
        gate = service.gate
        gate.blocks = {(MOD, "v1.0.1"): type("B", (), {"reason": "test"})()}  # type: ignore[dict-item]
        gate.blocked_modules = {MOD}
        gate.active = gate.loaded = True
        assert not now(ZIPS[0]) and hot.serve(Scope(ZIPS[0]), Proto()) is False

    run_on(tmp_path, check, (INFO, ZIPS[0]))


def test_queued_records_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A starved loop: once _QUEUED answers wait for it, granian's thread answers no more (the
    loop answers, and records, the rest)."""
    monkeypatch.setattr(hotpath, "_QUEUED", 3)

    async def check(app: App, hot: hotpath.HotPath) -> None:
        got = on_thread(lambda: [hot.serve_now(Scope(INFO), Proto()) for _ in range(5)])
        assert got == [True, True, True, False, False] and len(hot._queued) == 3
        hot.settle()
        assert on_thread(lambda: hot.serve_now(Scope(INFO), Proto())) is True

    run_on(tmp_path, check)


def test_a_long_settle_records_every_answer(tmp_path: Path) -> None:
    """More answers than one run of the settle (it lets go of the GIL between runs)."""
    n = hotpath._SETTLE_RUN * 2 + 7

    async def check(app: App, hot: hotpath.HotPath) -> None:
        before = prebuilt("info")
        got = on_thread(lambda: [hot.serve_now(Scope(INFO), Proto()) for _ in range(n)])
        assert got == [True] * n
        hot.settle()
        assert prebuilt("info") - before == n and not hot._queued

    run_on(tmp_path, check)


def test_a_closed_table_answers_nothing_off_the_loop(tmp_path: Path) -> None:
    """A stopping worker: what was answered is recorded, and nothing more is answered there."""

    async def check(app: App, hot: hotpath.HotPath) -> None:
        before = prebuilt("info")
        assert on_thread(lambda: hot.serve_now(Scope(INFO), Proto())) is True
        hot.close()
        assert prebuilt("info") - before == 1 and not hot._queued
        assert on_thread(lambda: hot.serve_now(Scope(INFO), Proto())) is False
        assert hot.serve(Scope(INFO), Proto()) is True  # the loop still answers

    run_on(tmp_path, check)


def test_answers_off_the_loop_stay_right_while_the_loop_changes_the_table(tmp_path: Path) -> None:
    """granian's thread answers over and over while the loop's thread evicts and reopens
    descriptors (a cache of two for four zips), drops and learns entries again, and forgets
    them all: every answer carries its own file's bytes, none fails."""

    async def check(app: App, hot: hotpath.HotPath) -> None:
        app.renderer.files.limit = 2
        await learn(app, INFO, *ZIPS)
        stop = threading.Event()
        wrong: list[tuple[str, Any]] = []
        given = [0]

        def hammer() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                i = n % len(ZIPS)
                start = (n * 97) % 30_000
                proto = Proto()
                rng = {"range": f"bytes={start}-{start + 999}"}
                try:
                    if hot.serve_now(Scope(ZIPS[i], rng), proto):
                        given[0] += 1
                        if proto.answers != [(206, zip_bytes(i + 1)[start:start + 1000])]:
                            wrong.append((ZIPS[i], proto.answers[:1]))
                    if hot.serve_now(Scope(INFO), proto) and proto.answers[-1] != \
                            (200, INFO_BODY):
                        wrong.append((INFO, proto.answers[-1]))
                except Exception as exc:  # any failure is the finding
                    wrong.append(("raised", exc))

        t = threading.Thread(target=hammer)
        t.start()
        try:
            for round_ in range(60):
                for i, path in enumerate(ZIPS):  # the loop opens, evicts, closes
                    proto = Proto()
                    await app.__rsgi__(Scope(path, {"range": "bytes=0-9"}), proto)
                    assert proto.answers == [(206, zip_bytes(i + 1)[:10])]
                if round_ % 10 == 5:
                    hot.drop(ZIPS[round_ % len(ZIPS)])
                if round_ % 20 == 10:
                    hot.clear()
                await learn(app, INFO, *ZIPS)
                await asyncio.sleep(0.001)
        finally:
            stop.set()
            t.join()
        assert wrong == []
        assert given[0] > 50  # granian's thread did answer meanwhile

    run_on(tmp_path, check, ())
