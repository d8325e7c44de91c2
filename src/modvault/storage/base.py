"""The Store protocol: durable bytes under keys in the GOPROXY URL space.

Keys look like ``github.com/!burnt!sushi/toml/@v/v1.4.0.zip``: the escaped module path, then the
protocol's own file names. A filesystem store laid out this way is itself a valid ``file://`` GOPROXY.
Blocking: implementations do synchronous I/O; the service calls them off the event loop where it matters.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    size: int
    mtime: float
    # A local file that can be sent with sendfile, when the store has one.
    local_path: str | None = None
    # From put_atomic(overwrite=False): False when an existing object won and ours was discarded.
    written: bool = True


class Store(Protocol):
    def stat(self, key: str) -> StoredObject | None: ...

    def read(self, key: str) -> bytes: ...

    def read_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of the object."""
        ...

    def put_atomic(self, key: str, data: bytes | Path, *, overwrite: bool = True) -> StoredObject:
        """Store bytes, or move a finished temp file into place; readers never see a partial object.

        With ``overwrite=False`` an existing object wins (immutable artifacts): the new data is
        discarded and the existing object returned.
        """
        ...

    def delete(self, key: str) -> None: ...

    def list(self, prefix: str) -> list[str]:
        """Keys directly under ``prefix`` (a directory-like key ending in ``/``)."""
        ...

    def temp_path(self) -> Path:
        """A fresh path for a download in progress, on the same filesystem as the store if any."""
        ...

    def writable(self) -> bool: ...
