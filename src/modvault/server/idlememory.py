"""Give the heap's free pages back to the system once a worker has been idle for a while.

glibc's malloc returns memory to the system on ``free`` only from the top of the main heap.
Start-up (imports, building the app and its tables) and every burst of requests leave free
chunks below live ones, and their pages stay resident until ``malloc_trim(3)`` hands them back
(with ``madvise(MADV_DONTNEED)``). About 2 MiB of an idle worker's 45 MiB were such pages, nearly
all left by start-up (bench/README.md). granian's own allocations (jemalloc) decay back by
themselves after ten seconds; this does the same for Python's.

It trims once when the worker is built, then only after a whole interval in which no request
was answered, once per idle spell: under load the pages it returned would be faulted straight
back in.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import time
from collections.abc import Callable

LOG = logging.getLogger("modvault.server")

INTERVAL = 10.0  # seconds without a request before trimming: jemalloc's default decay time


def glibc_trim() -> Callable[[], object] | None:
    """``malloc_trim(0)``, or None where the C library has none (musl, macOS)."""
    try:
        trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    except OSError:
        return None
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


class IdleTrim:
    """Calls ``trim`` once whenever ``served`` (a count of answered requests) stood still for a
    whole check with nothing ``in_flight`` (a long download counts as served only once done);
    :meth:`check` runs every ``interval`` seconds on the event loop."""

    def __init__(self, served: Callable[[], float], in_flight: Callable[[], int],
                 trim: Callable[[], object] | None, interval: float = INTERVAL) -> None:
        self.served, self.in_flight, self.trim, self.interval = served, in_flight, trim, interval
        self.last = served()
        self.trimmed = False
        self._task: asyncio.Task[None] | None = None

    def check(self) -> bool:
        """True when it trimmed now."""
        count = self.served()
        if count != self.last:
            self.last, self.trimmed = count, False
            return False
        if self.trimmed or self.trim is None or self.in_flight():
            return False
        self._trim_now("idle")
        return True

    def _trim_now(self, why: str) -> None:
        assert self.trim is not None
        self.trimmed = True
        started = time.perf_counter()
        self.trim()
        LOG.debug("%s: free heap pages returned in %.1f ms", why,
                  (time.perf_counter() - started) * 1e3)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.check()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Trim now (called once the worker is built: imports and building the app leave the
        most free pages, 2 MiB of an idle worker's), then check every interval."""
        if self.trim is not None and self._task is None:
            self._trim_now("start-up")
            self._task = loop.create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
