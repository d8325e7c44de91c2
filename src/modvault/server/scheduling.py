"""Prebuilt answers straight from granian's scheduler, on granian's own thread.

granian (with its asyncio task runner) schedules each request from a thread of its own (one
Python thread per worker for RSGI): it makes the app's coroutine, wrapped in a second one that
reports the end to granian, and hands both to the loop's thread (``call_soon_threadsafe``) to run
in a new asyncio Task. A prebuilt answer (server/hotpath.py) never awaits anything, so for it
that hand-over, the loop's wake-up, the GIL passing between the two threads, the coroutines and
the Task were most of the work per request that was not modvault's own (bench/README.md has the
figures). The scheduler made here offers each request to ``App.hot`` first, on granian's thread
(``HotPath.serve_now``, which changes nothing the loop's thread owns and queues what it records
for the loop), then, for what that declines, on the loop's thread (``HotPath.serve``, which may
forget or drop a stale entry first). Only a request that neither answers gets the coroutines
and the Task, run as granian runs them: ``watcher.done()`` when the answer returns,
``watcher.err(exc)`` when it raises (granian then logs it and answers 500 if nothing was sent).
With access middleware (auth on, a client allowlist), ``App.quick`` (auth/quick.py) is offered
each request on granian's thread instead, and what it declines goes straight to a Task: the
middleware must see it before any table does.

This hooks a private seam of granian (2.8): ``granian.server.embed._new_cbscheduler``, which the
embedded server calls once per worker after the app's ``__rsgi_init__``, and the asyncio
scheduler class of ``granian._futures``. :func:`install` leaves granian as it is when that seam
is missing; ``App.__rsgi__`` still answers hot requests itself then, only at a higher cost.
tests/unit/test_scheduling.py fails when an upgrade of granian moves the seam.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable, Coroutine
from contextvars import Context
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modvault.server.app import App

LOG = logging.getLogger("modvault.server")

Watcher = Any  # granian's CallbackWatcherHTTP: .scope, .proto, .done(), .err(exc), .taskref(task)


def hot_first(loop: asyncio.AbstractEventLoop, ctx: Context, app: App
              ) -> Callable[[Watcher], None]:
    """What granian calls, from one of its threads, for each request: a prebuilt answer given
    there if one fits, else the request is run on the loop's thread (in ``ctx``, granian's copy
    of the loop's context), by ``app.hot`` when it has a prebuilt answer, else in an asyncio
    Task. With middleware, ``app.quick`` answers on granian's thread what the middleware would
    let through to a prebuilt answer (auth/quick.py), and the rest goes to a Task."""
    hot, quick, answer = app.hot, app.quick, app.answer

    async def in_task(watcher: Watcher) -> None:
        try:
            await answer(watcher.scope, watcher.proto)
        except BaseException as exc:  # granian's own protocol: it logs and answers 500
            watcher.err(exc)
            return
        watcher.done()

    if hot is not None:
        hot.off_loop(loop)
        now, serve = hot.serve_now, hot.serve

        def later(watcher: Watcher) -> None:
            try:
                answered = serve(watcher.scope, watcher.proto)
            except BaseException as exc:  # as if raised by the app's coroutine
                watcher.err(exc)
                return
            if answered:
                watcher.done()  # a no-op once an answer was sent; kept for granian's bookkeeping
                return
            watcher.taskref(loop.create_task(in_task(watcher)))
    else:
        assert quick is not None
        quick.off_loop(loop)
        now = quick.serve_now

        def later(watcher: Watcher) -> None:  # the middleware must see it first
            watcher.taskref(loop.create_task(in_task(watcher)))

    call_soon = loop.call_soon_threadsafe

    def schedule(watcher: Watcher) -> None:
        try:
            answered = now(watcher.scope, watcher.proto)
        except BaseException as exc:  # as if raised by the app's coroutine
            watcher.err(exc)
            return
        if answered:
            watcher.done()
            return
        call_soon(later, watcher, context=ctx)

    return schedule


def install(app: App) -> bool:
    """Make granian's embedded server in this process schedule requests with :func:`hot_first`
    when ``app.hot`` (no middleware must see requests first) or ``app.quick`` exists once the
    worker has started; False, with granian left as it is, when granian's seam is not where this
    expects it."""
    try:  # granian's private names, as Any: this is its seam, not its API
        futures: Any = importlib.import_module("granian._futures")
        embed: Any = importlib.import_module("granian.server.embed")
        stock: Callable[..., Any] = embed._new_cbscheduler
        scheduler_class: type[Any] = futures._CBSchedulerAIO
        base_init: Callable[[Any], None] = futures._BaseCBScheduler.__init__
        enter, leave = futures._aio_taskenter, futures._aio_taskleave
    except (ImportError, AttributeError) as exc:
        LOG.warning("granian's scheduler seam moved (%s): prebuilt answers run in asyncio Tasks",
                    exc)
        return False

    class HotFirstScheduler(scheduler_class):  # type: ignore[misc]  # a class of granian's
        def __init__(self, loop: asyncio.AbstractEventLoop, *_: Any) -> None:
            base_init(self)  # the Rust base; the arguments went to its __new__
            # granian's setter (set once): what its Rust side calls for each request
            self._schedule_fn = hot_first(loop, self._ctx, app)

    def new_scheduler(loop: asyncio.AbstractEventLoop, cb: Callable[[Watcher], Coroutine[Any, Any, None]],
                      impl_asyncio: bool = False) -> Any:
        if (app.hot is None and app.quick is None) or not impl_asyncio:
            return stock(loop, cb, impl_asyncio=impl_asyncio)
        LOG.debug("prebuilt answers straight from granian's scheduler")
        return HotFirstScheduler(loop, cb, None, partial(enter, loop), partial(leave, loop))

    embed._new_cbscheduler = new_scheduler
    return True
