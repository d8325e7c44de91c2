"""server/scheduling.py: granian's scheduler offers each request to the prebuilt answers first,
on granian's own thread, then on the loop's, and runs every other one as granian would (done/err
of its watcher); the private seam of granian it hooks is where this expects it."""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest

from modvault.server import scheduling


class Watcher:
    """What granian hands its scheduler per request (CallbackWatcherHTTP's Python face)."""

    def __init__(self, scope: str) -> None:
        self.scope, self.proto = scope, object()
        self.events: list[Any] = []
        self.task: asyncio.Task[None] | None = None
        self.finished = threading.Event()

    def done(self) -> None:
        self.events.append("done")
        self.finished.set()

    def err(self, exc: BaseException) -> None:
        self.events.append(("err", exc))
        self.finished.set()

    def taskref(self, task: asyncio.Task[None]) -> None:
        self.task = task


class Hot:
    """A prebuilt table: on granian's thread (serve_now) it answers the scope "now" and raises
    on "boom now"; on the loop's (serve) it answers "hot" (say, a stale entry to drop first) and
    raises on "boom"; it declines the others."""

    def __init__(self) -> None:
        self.threads: list[tuple[str, str, int]] = []  # (method, scope, thread)
        self.loop: asyncio.AbstractEventLoop | None = None

    def off_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def serve_now(self, scope: str, proto: object) -> bool:
        self.threads.append(("serve_now", scope, threading.get_ident()))
        if scope == "boom now":
            raise RuntimeError("hot failed on granian's thread")
        return scope == "now"

    def serve(self, scope: str, proto: object) -> bool:
        self.threads.append(("serve", scope, threading.get_ident()))
        if scope == "boom":
            raise RuntimeError("hot failed")
        return scope == "hot"


class StubApp:
    def __init__(self, quick: bool = False) -> None:
        # With middleware there is no ``hot``: ``quick`` answers on granian's thread only.
        self.hot: Hot | None = None if quick else Hot()
        self.quick: Hot | None = Hot() if quick else None
        self.answered: list[tuple[str, object, bool]] = []

    async def answer(self, scope: str, proto: object) -> None:
        in_task = asyncio.current_task() is not None
        await asyncio.sleep(0)  # a real suspension: the general path runs in an asyncio Task
        if scope == "fails":
            raise ValueError("general path failed")
        self.answered.append((scope, proto, in_task))


def schedule_from_another_thread(scopes: list[str], quick: bool = False
                                 ) -> tuple[StubApp, list[Watcher], int, int]:
    """Run hot_first's schedule as granian does, from a thread that is not the loop's; the app,
    the watchers, the loop's thread and the caller's."""
    app = StubApp(quick)
    watchers = [Watcher(s) for s in scopes]
    caller_ident: list[int] = []

    def call(schedule: Callable[[Watcher], None]) -> None:
        caller_ident.append(threading.get_ident())
        for w in watchers:
            schedule(w)

    async def main() -> int:
        loop = asyncio.get_running_loop()
        schedule = scheduling.hot_first(loop, contextvars.copy_context(), app)  # type: ignore[arg-type]
        caller = threading.Thread(target=call, args=(schedule,))
        caller.start()
        caller.join()
        while not all(w.finished.is_set() for w in watchers):
            await asyncio.sleep(0.001)
        for w in watchers:
            if w.task is not None:
                await asyncio.gather(w.task, return_exceptions=True)
        return threading.get_ident()

    loop_ident = asyncio.run(main())
    return app, watchers, loop_ident, caller_ident[0]


def test_prebuilt_answers_are_given_on_granians_thread_then_on_the_loops() -> None:
    app, (now, hot, other), loop_thread, caller = schedule_from_another_thread(
        ["now", "hot", "general"])
    assert app.hot is not None and app.hot.loop is not None  # told where to record
    assert now.events == ["done"] and now.task is None
    assert hot.events == ["done"] and hot.task is None
    # Each is offered on granian's thread first; what that declines, on the loop's.
    assert app.hot.threads == [
        ("serve_now", "now", caller), ("serve_now", "hot", caller),
        ("serve_now", "general", caller), ("serve", "hot", loop_thread),
        ("serve", "general", loop_thread)]
    assert other.events == ["done"] and isinstance(other.task, asyncio.Task)
    assert app.answered == [("general", other.proto, True)]  # in a Task, with its proto


def test_with_middleware_only_granians_thread_answers_then_a_task() -> None:
    """app.quick (auth/quick.py): what it declines must meet the middleware, so it goes straight
    to a Task, never to a table on the loop's thread before the middleware."""
    app, (now, hot, boom_now), _, caller = schedule_from_another_thread(
        ["now", "hot", "boom now"], quick=True)
    assert app.quick is not None and app.quick.loop is not None
    assert now.events == ["done"] and now.task is None
    assert app.quick.threads == [("serve_now", "now", caller), ("serve_now", "hot", caller),
                                 ("serve_now", "boom now", caller)]
    assert hot.events == ["done"] and isinstance(hot.task, asyncio.Task)
    assert app.answered == [("hot", hot.proto, True)]
    assert [type(e[1]) for e in boom_now.events] == [RuntimeError] and boom_now.task is None


def test_failures_reach_granians_watcher_as_errors() -> None:
    app, (boom_now, boom, fails), _, _ = schedule_from_another_thread(
        ["boom now", "boom", "fails"])
    assert [type(e[1]) for e in boom_now.events] == [RuntimeError] and boom_now.task is None
    assert [type(e[1]) for e in boom.events] == [RuntimeError] and boom.task is None
    assert [type(e[1]) for e in fails.events] == [ValueError]
    assert app.answered == []
    assert app.hot is not None and [s for m, s, _ in app.hot.threads if m == "serve"] == \
        ["boom", "fails"]  # a failure on granian's thread is not offered again


@pytest.fixture
def seam(monkeypatch: pytest.MonkeyPatch) -> Any:
    """granian.server.embed, its scheduler factory restored after the test."""
    embed: Any = importlib.import_module("granian.server.embed")
    monkeypatch.setattr(embed, "_new_cbscheduler", embed._new_cbscheduler)
    return embed


def test_the_seam_is_where_this_granian_has_it(seam: Any) -> None:
    futures: Any = importlib.import_module("granian._futures")
    stock: Callable[..., Any] = seam._new_cbscheduler
    app = StubApp()
    assert scheduling.install(app) is True  # type: ignore[arg-type]
    assert seam._new_cbscheduler is not stock

    async def made() -> tuple[Any, Any, Any]:
        loop = asyncio.get_running_loop()

        async def cb(watcher: Any) -> None:
            return None

        hot_first = seam._new_cbscheduler(loop, cb, impl_asyncio=True)
        app.hot, app.quick = None, Hot()  # middleware that auth/quick.py decides for
        quick_first = seam._new_cbscheduler(loop, cb, impl_asyncio=True)
        app.quick = None  # middleware it does not know: granian's own scheduler
        plain = seam._new_cbscheduler(loop, cb, impl_asyncio=True)
        return hot_first, quick_first, plain

    hot_first, quick_first, plain = asyncio.run(made())
    assert isinstance(hot_first, futures._CBSchedulerAIO)
    assert type(hot_first) is not futures._CBSchedulerAIO
    assert type(quick_first) is type(hot_first)
    assert type(plain) is futures._CBSchedulerAIO


def test_granians_rust_tasks_keep_granians_scheduler(seam: Any) -> None:
    calls: list[bool] = []
    seam._new_cbscheduler = lambda loop, cb, impl_asyncio=False: calls.append(impl_asyncio)
    assert scheduling.install(StubApp()) is True  # type: ignore[arg-type]
    seam._new_cbscheduler(None, None, impl_asyncio=False)
    assert calls == [False]


def test_a_moved_seam_leaves_granian_as_it_is(seam: Any, monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture) -> None:
    futures: Any = importlib.import_module("granian._futures")
    monkeypatch.delattr(futures, "_CBSchedulerAIO")
    stock = seam._new_cbscheduler
    with caplog.at_level(logging.WARNING, logger="modvault.server"):
        assert scheduling.install(StubApp()) is False  # type: ignore[arg-type]
    assert seam._new_cbscheduler is stock
    assert "scheduler seam moved" in caplog.text
