"""Starting the write-back of a file's dirty pages early, so that its fsync has little left to do.

A download is written batch by batch and fsynced once when complete (before it may become
visible). Left alone, the kernel writes the pages out only then, and that fsync takes tens of
milliseconds for a 100 MiB zip while the client waits. ``sync_file_range(SYNC_FILE_RANGE_WRITE)``
(Linux) starts the write-out of a range without waiting for it, and without dropping the pages
from the cache (they are read again by the zip check and sent to the client): asked as the file
grows, it leaves the final fsync (still the only durability point) little more than the last batch.

The call itself can wait while the device's queue is full (tens of milliseconds over a 100 MiB
download here), so :class:`WriteBehind` makes it from one helper thread shared by all downloads,
on a duplicate of the descriptor, never from the download's own writer lane (which the event
loop waits for before each batch); requests made while one is running are merged into the next.

Only an optimisation: anywhere the call is missing or fails, nothing changes but the fsync's time.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

__all__ = ["WriteBehind", "start_writeback"]

_SYNC_FILE_RANGE_WRITE = 2  # <linux/fs.h>


@functools.cache
def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def start_writeback(fd: int, offset: int, length: int) -> bool:
    """Ask the kernel to start writing ``[offset, offset+length)`` of *fd* out; True if it took
    the request. Blocking only while the device's queue is full: call it off the event loop."""
    fn = _sync_file_range()
    if fn is None or length <= 0:
        return False
    return fn(fd, offset, length, _SYNC_FILE_RANGE_WRITE) == 0


_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _helper() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="modvault-writeback")
        return _pool


class WriteBehind:
    """The write-out of one growing file, asked from the helper thread (see the module doc)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requested = 0  # bytes from the start whose write-out was asked for
        self._busy = False

    def grown(self, fd: int, size: int) -> None:
        """The file behind *fd* now holds *size* bytes: ask for the write-out of what is new,
        unless a request is still running (the next call covers both). Never blocks, never
        raises."""
        if _sync_file_range() is None:
            return
        with self._lock:
            if self._busy or size <= self.requested:
                return
            start, self._busy = self.requested, True
        try:
            dup = os.dup(fd)  # the download may close its descriptor meanwhile
        except OSError:
            self._idle(None)
            return
        try:
            _helper().submit(self._run, dup, start, size)
        except RuntimeError:  # shutting down
            os.close(dup)
            self._idle(None)

    def _run(self, fd: int, start: int, end: int) -> None:
        try:
            ok = start_writeback(fd, start, end - start)
        finally:
            os.close(fd)
        self._idle(end if ok else None)

    def _idle(self, requested: int | None) -> None:
        with self._lock:
            self._busy = False
            if requested is not None:
                self.requested = max(self.requested, requested)
