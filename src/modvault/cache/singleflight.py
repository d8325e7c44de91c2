"""Single-flight: one fetch per key at a time; concurrent callers wait and share the outcome.

The outcome is shared whether it is a value or an exception. The fetch runs in its own task so a caller
that goes away (client disconnect) does not cancel the work the others are waiting for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._inflight: dict[str, asyncio.Future[T]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.coalesced = 0  # callers that waited on another caller's fetch

    def inflight(self, key: str) -> bool:
        return key in self._inflight

    async def do(self, key: str, fn: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Run ``fn`` once for ``key``; returns (result, shared) where shared means we waited."""
        fut = self._inflight.get(key)
        if fut is not None:
            self.coalesced += 1
            return await asyncio.shield(fut), True
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._inflight[key] = fut

        async def run() -> None:
            try:
                result = await fn()
            except asyncio.CancelledError:
                fut.cancel()
            except BaseException as exc:  # shared with every waiter
                fut.set_exception(exc)
            else:
                fut.set_result(result)
            finally:
                self._inflight.pop(key, None)

        task = loop.create_task(run())
        self._tasks.add(task)  # a strong reference until the fetch is over
        task.add_done_callback(self._tasks.discard)
        # Avoid "exception never retrieved" when every waiter went away.
        fut.add_done_callback(_consume)
        return await asyncio.shield(fut), False


def _consume(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()
