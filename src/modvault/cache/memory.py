"""Memory tier: a byte-bounded LRU of small artifacts (list, .info, .mod) in front of the store."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Generic, TypeVar

V = TypeVar("V")


class ByteLRU(Generic[V]):
    """Least-recently-used map bounded by the summed size its callers declare for each value
    (and, with ``max_entries``, by the number of values)."""

    def __init__(self, max_bytes: int, max_entries: int = 0) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries  # 0: bounded in bytes only
        self.size = 0
        self._items: OrderedDict[str, tuple[V, int]] = OrderedDict()

    def get(self, key: str) -> V | None:
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def peek(self, key: str) -> V | None:
        """The value without making it recent: one dictionary lookup, safe from a thread other
        than the one that changes the map (the prebuilt answers on granian's thread)."""
        item = self._items.get(key)
        return None if item is None else item[0]

    def put(self, key: str, value: V, size: int) -> None:
        if size > self.max_bytes:
            self.pop(key)
            return
        old = self._items.pop(key, None)
        if old is not None:
            self.size -= old[1]
        self._items[key] = (value, size)
        self.size += size
        while self._items and (self.size > self.max_bytes
                               or 0 < self.max_entries < len(self._items)):
            _, (_, evicted) = self._items.popitem(last=False)
            self.size -= evicted

    def pop(self, key: str) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self.size -= old[1]

    def clear(self) -> None:
        self._items.clear()
        self.size = 0

    def values(self) -> Iterator[V]:
        """What is held, oldest first (without touching recency)."""
        return (value for value, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: str) -> bool:
        return key in self._items
