"""Graceful stop of a worker: finish what is in flight, then go, without waiting on idle connections.

On SIGTERM granian stops accepting and waits for every connection to close; an idle HTTP/2 client
keeps its connection open, so the worker would linger until the kill deadline. This counts the
requests in flight and, once a stop was asked for and none is in flight (after a short grace for
requests racing the signal), runs the worker's clean-up and exits: idle connections close with the
process, in-flight answers were finished first, and artifacts only ever land by atomic rename, so
no partial file is left in the store. A request that outlives ``shutdown_timeout`` is cut by
granian's kill deadline (its temp file is swept at the next start).

The handler is chained in front of the one asyncio installed for granian (signal.signal keeps the
loop's wake-up fd, so granian's own shutdown still runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

LOG = logging.getLogger("modvault.server")


def unsent_bytes(port: int) -> int:
    """Bytes queued for sending on established TCP connections from local ``port`` (Linux
    /proc/net/tcp[6]; 0 where unavailable). File answers are sent by granian after the handler
    returned, so "nothing in flight" also needs their bytes gone."""
    total = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                next(fh, None)
                for line in fh:
                    fields = line.split()
                    if len(fields) < 5 or fields[3] != "01":  # 01: ESTABLISHED
                        continue
                    if int(fields[1].rsplit(":", 1)[1], 16) != port:
                        continue
                    total += int(fields[4].split(":", 1)[0], 16)  # tx_queue
        except (OSError, ValueError, IndexError):
            continue
    return total


class Drain:
    def __init__(self, grace: float = 0.2, port: int = 0) -> None:
        self.port = port
        self.inflight = 0
        self.stopping = False
        self.grace = grace
        self._task: asyncio.Task[None] | None = None
        # What ends the process once drained: by default it exits at once; the server
        # (server/embedded.py, in both process models) makes it return from its loop instead.
        self.leave: Callable[[], None] = lambda: os._exit(0)

    def install(self, loop: asyncio.AbstractEventLoop,
                cleanup: Callable[[], Awaitable[None]]) -> None:
        self._loop, self._cleanup = loop, cleanup
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(sig)

            def handler(signum: int, frame: FrameType | None, previous: Any = previous) -> None:
                if callable(previous):
                    previous(signum, frame)
                self._loop.call_soon_threadsafe(self.begin)

            signal.signal(sig, handler)

    def begin(self) -> None:
        if not self.stopping:
            self.stopping = True
            self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        await asyncio.sleep(self.grace)
        quiet = 0
        while quiet < 3:  # three looks in a row, 50 ms apart, with nothing going on
            await asyncio.sleep(0.05)
            busy = self.inflight > 0 or (self.port and unsent_bytes(self.port) > 0)
            quiet = 0 if busy else quiet + 1
        LOG.info("worker %d: nothing in flight, stopping", os.getpid())
        try:
            await self._cleanup()
        except Exception:
            LOG.exception("worker clean-up failed")
        finally:
            for handler in logging.getLogger("modvault").handlers:
                with contextlib.suppress(Exception):
                    handler.flush()
            self.leave()
