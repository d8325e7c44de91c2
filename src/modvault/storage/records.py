"""Read-modify-write of the small mutable records (tokens, blocks, published versions) by
compare-and-swap on the store, so that CLI commands, API calls and replicas sharing a store never
lose each other's changes, without any file lock."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from modvault.storage.base import Store, VersionConflict

T = TypeVar("T")


async def read_record(store: Store, key: str) -> bytes | None:
    got = await store.get(key)
    return None if got is None else got[0]


async def update_record(store: Store, key: str, change: Callable[[bytes | None], tuple[bytes, T]],
                        *, attempts: int = 100) -> T:
    """Apply *change* (old bytes or None -> new bytes and a result) until the write wins."""
    for _ in range(attempts):
        got = await store.get(key)
        old, version = (None, None) if got is None else (got[0], got[1].etag)
        new, result = change(old)
        try:
            await store.put_if_version(key, new, version)
        except VersionConflict:
            continue
        return result
    raise VersionConflict(f"{key}: still changing after {attempts} attempts")
