"""Negative cache: not-found answers remembered briefly, in bounded memory.

What is kept per key is the error's class and its one-line message, never the exception object: a
stored exception re-raised on every hit grows its traceback (and everything the frames hold) with each
raise, so a repeated not-found request would grow the process without bound. Each hit raises a fresh
error instead. Entries expire after ``ttl`` seconds and the whole map is bounded in entries and bytes;
the oldest entries go first (with one ttl for all, oldest is also soonest to expire).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from modvault.errors import ModvaultError

# Per-entry overhead beyond the key and message (tuple, floats, dict slot), counted against the bound.
ENTRY_OVERHEAD = 200


class NegativeCache:
    def __init__(self, ttl: float, max_bytes: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self.max_bytes = max_bytes
        self.size = 0
        self._items: OrderedDict[str, tuple[float, type[ModvaultError], str, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def check(self, key: str) -> None:
        """Raise a fresh copy of the remembered error for ``key``, if one is remembered and fresh."""
        item = self._items.get(key)
        if item is None:
            return
        expires, cls, message, _ = item
        if expires > self.clock():
            raise cls(message)
        self.pop(key)

    def remember(self, key: str, exc: ModvaultError) -> None:
        if self.ttl <= 0:
            return
        self.pop(key)
        cost = len(key) + len(exc.message) + ENTRY_OVERHEAD
        if cost > self.max_bytes:
            return
        now = self.clock()
        self._items[key] = (now + self.ttl, type(exc), exc.message, cost)
        self.size += cost
        self._prune(now)

    def pop(self, key: str) -> None:
        item = self._items.pop(key, None)
        if item is not None:
            self.size -= item[3]

    def clear(self) -> None:
        self._items.clear()
        self.size = 0

    def _prune(self, now: float) -> None:
        """Drop expired entries from the old end, then the oldest until within the byte bound."""
        while self._items:
            key, (expires, _, _, cost) = next(iter(self._items.items()))
            if expires > now and self.size <= self.max_bytes:
                break
            del self._items[key]
            self.size -= cost
