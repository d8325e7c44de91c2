"""In-memory store: for tests of the service and for throwaway instances. No local paths, so it
exercises the same streamed/ranged rendering as a network store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

from modvault.storage.base import (
    STREAM_CHUNK,
    ObjectInfo,
    StagedFile,
    VersionConflict,
    as_path,
    check_key,
    etag_of,
)


class MemoryBody:
    __slots__ = ("_data", "info")

    def __init__(self, data: bytes, info: ObjectInfo) -> None:
        self._data = data
        self.info = info

    async def read(self, start: int = 0, end: int | None = None) -> bytes:
        return self._data[start:end]

    async def stream(self, start: int = 0, end: int | None = None,
                     chunk: int = STREAM_CHUNK) -> AsyncIterator[bytes]:
        stop = len(self._data) if end is None else min(end, len(self._data))
        for pos in range(start, stop, chunk):
            yield self._data[pos:min(pos + chunk, stop)]
            await asyncio.sleep(0)


class MemoryStore:
    def __init__(self) -> None:
        self._data: dict[str, tuple[bytes, ObjectInfo]] = {}

    async def stat(self, key: str) -> ObjectInfo | None:
        check_key(key)
        item = self._data.get(key)
        return None if item is None else item[1]

    async def open(self, key: str) -> MemoryBody | None:
        check_key(key)
        item = self._data.get(key)
        return None if item is None else MemoryBody(*item)

    async def get(self, key: str) -> tuple[bytes, ObjectInfo] | None:
        check_key(key)
        return self._data.get(key)

    def _set(self, key: str, body: bytes) -> ObjectInfo:
        info = ObjectInfo(key, len(body), etag_of(body), time.time())
        self._data[key] = (body, info)
        return info

    async def put_if_absent(self, key: str, data: bytes | Path | StagedFile
                            ) -> tuple[ObjectInfo, bool]:
        check_key(key)
        data = as_path(data)
        body = await asyncio.to_thread(data.read_bytes) if isinstance(data, Path) else data
        existing = self._data.get(key)
        if existing is not None:
            return existing[1], False
        return self._set(key, body), True

    async def put(self, key: str, data: bytes) -> ObjectInfo:
        check_key(key)
        return self._set(key, data)

    async def put_if_version(self, key: str, data: bytes, version: str | None) -> ObjectInfo:
        check_key(key)
        existing = self._data.get(key)
        have = None if existing is None else existing[1].etag
        if have != version:
            raise VersionConflict(f"{key}: at version {have}, not {version}")
        return self._set(key, data)

    async def delete(self, key: str) -> None:
        check_key(key)
        self._data.pop(key, None)

    async def list(self, prefix: str) -> list[str]:
        p = prefix.rstrip("/") + "/"
        return sorted(k for k in self._data if k.startswith(p) and "/" not in k[len(p):])

    async def writable(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None
