"""Taking an upstream's body without holding the event loop, and refusing one sent in crumbs.

httpx hands a body over one HTTP/1.1 event at a time, and one read from a connection can hold
many of them: a chunked body (``Transfer-Encoding: chunked``) in 1-byte chunks is some 170,000
events per megabyte read, each a trip through h11, httpcore and httpx with no suspension
between them, since the next event is already buffered. Measured on one worker: while an upstream
sent a 4 MiB zip that way, cached ``.info`` hits waited 5 to 7.7 s each (1 ms otherwise), for the
whole minute the download took.

So a loop that takes a body counts what it is given with a :class:`BodyPace`:

* every :data:`SLICE` seconds it lets the event loop run (``took`` says when), so other clients
  wait at most about that long for a body arriving in many small pieces;
* a body whose pieces average less than :data:`MIN_PIECE` bytes over :data:`WINDOW` pieces is
  refused (InvalidContent): what it costs the worker is then bounded per byte. No real server
  sends that: a zip in 32 KiB writes (Go's ``io.Copy``) is chunks of 32 KiB, and a body read off
  a slow network comes in segments of 500 bytes and more.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from modvault.errors import InvalidContent

__all__ = ["MIN_PIECE", "SLICE", "WINDOW", "BodyPace"]

SLICE = 0.002  # seconds a body's loop may keep the event loop before letting it run
WINDOW = 4096  # pieces over which the average size is checked
MIN_PIECE = 128  # bytes a piece must average over a window


class BodyPace:
    """Counts the pieces of one body as they are taken; see the module docstring."""

    __slots__ = ("_bytes", "_clock", "_pieces", "_since", "what")

    def __init__(self, what: str, clock: Callable[[], float] = time.perf_counter) -> None:
        self.what = what
        self._clock = clock
        self._since = clock()  # when the event loop last ran, as far as this body knows
        self._pieces = 0
        self._bytes = 0

    def took(self, n: int) -> bool:
        """Count a piece of *n* bytes. True: the caller should let the event loop run now
        (``await asyncio.sleep(0)``). Raises InvalidContent for a body sent in crumbs."""
        self._pieces += 1
        self._bytes += n
        if self._pieces == WINDOW:
            if self._bytes < WINDOW * MIN_PIECE:
                raise InvalidContent(
                    f"{self.what}: body sent in pieces of {self._bytes // WINDOW} bytes on "
                    f"average ({WINDOW} pieces): refused, at least {MIN_PIECE} expected")
            self._pieces = self._bytes = 0
        now = self._clock()
        if now - self._since < SLICE:
            return False
        self._since = now
        return True
