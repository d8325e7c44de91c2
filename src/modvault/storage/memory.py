"""In-memory store: for tests of the service and for throwaway instances."""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path

from modvault.storage.base import StoredObject


class MemoryStore:
    def __init__(self) -> None:
        self._data: dict[str, tuple[bytes, float]] = {}
        self._tmp = Path(tempfile.mkdtemp(prefix="modvault-mem-"))

    def stat(self, key: str) -> StoredObject | None:
        item = self._data.get(key)
        return None if item is None else StoredObject(key, len(item[0]), item[1], None)

    def read(self, key: str) -> bytes:
        return self._data[key][0]

    def read_range(self, key: str, start: int, end: int) -> bytes:
        return self._data[key][0][start:end]

    def put_atomic(self, key: str, data: bytes | Path, *, overwrite: bool = True) -> StoredObject:
        if not overwrite and key in self._data:
            if isinstance(data, Path):
                data.unlink()
            return StoredObject(key, len(self._data[key][0]), self._data[key][1], None, False)
        if isinstance(data, Path):
            body = data.read_bytes()
            data.unlink()
        else:
            body = data
        self._data[key] = (body, time.time())
        return StoredObject(key, len(body), self._data[key][1], None)

    def delete(self, key: str) -> None:
        self._data.pop(key, None)

    def list(self, prefix: str) -> list[str]:
        p = prefix.rstrip("/") + "/"
        return sorted(k for k in self._data if k.startswith(p) and "/" not in k[len(p):])

    def temp_path(self) -> Path:
        return self._tmp / uuid.uuid4().hex

    def writable(self) -> bool:
        return True
