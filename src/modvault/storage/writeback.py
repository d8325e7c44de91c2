"""Starting the write-back of a file's dirty pages early, so that its fsync has little left to do.

A download is written batch by batch and fsynced once when complete (before it may become
visible). Left alone, the kernel writes the pages out only then, and that fsync takes tens of
milliseconds for a 100 MiB zip while the client waits. ``sync_file_range(SYNC_FILE_RANGE_WRITE)``
(Linux) starts the write-out of a range without waiting for it, and without dropping the pages
from the cache (they are read again by the zip check and sent to the client): called for each
finished batch, it leaves the final fsync (still the only durability point) only the last batch.

Only an optimisation: anywhere the call is missing or fails, nothing changes but the fsync's time.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

__all__ = ["start_writeback"]

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
