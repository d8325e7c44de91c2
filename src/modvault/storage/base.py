"""The Store protocol: durable objects under keys in the GOPROXY URL space.

Keys look like ``github.com/!burnt!sushi/toml/@v/v1.4.0.zip``: the escaped module path, then the
protocol's own file names. A filesystem store laid out this way is itself a valid ``file://`` GOPROXY.

The protocol is async so that a network store (S3) and a local one (fs) are used the same way:

- ``stat``/``open``: size, strong ETag (computed once when the object is written and kept with it,
  never recomputed by rehashing on read), modification time, and for stores that have one a local
  path (sendfile/pread fast path). ``open`` returns a :class:`Body` read whole, by range or as a stream.
- ``put_if_absent``: atomic, first writer wins; immutable artifacts. From bytes or a finished temp
  file (the caller keeps ownership of the temp file and removes it), or a :class:`StagedFile`: a
  finished, fsynced temp file with the SHA-256 the caller computed while writing it, which the
  store then neither reads again to hash nor syncs again.
- ``put``: atomic replace, last writer wins; mutable answers (list, @latest) that any replica may
  refresh.
- ``get``/``put_if_version``: versioned reads and compare-and-swap for the few mutable records
  whose history matters (verified tree heads, private log head). The version is the ETag.
- ``list(prefix)``, ``delete``, ``writable``.

Errors: a missing object is ``None`` (never an exception); :class:`VersionConflict` when a CAS
loses; :class:`StorageError` (503) when the store cannot be reached or fails (the server answers 503).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

STREAM_CHUNK = 256 * 1024


class VersionConflict(Exception):
    """put_if_version lost: the object is not (or no longer) at the expected version."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    etag: str  # strong, quoted; also the version for put_if_version
    mtime: float
    # A local file that can be sent with sendfile or pread, when the store has one.
    local_path: str | None = None


@dataclass(frozen=True, slots=True)
class StagedFile:
    """A finished temp file, already fsynced, whose SHA-256 (hex) was computed as it was written."""

    path: Path
    sha256: str


def as_path(data: bytes | Path | StagedFile) -> bytes | Path:
    """For stores that use neither the digest nor the sync: the bytes or the file."""
    return data.path if isinstance(data, StagedFile) else data


def etag_for_digest(sha256_hex: str) -> str:
    """The strong ETag of content whose SHA-256 is *sha256_hex* (the same in every store)."""
    return '"' + sha256_hex[:40] + '"'


def etag_of(data: bytes) -> str:
    return etag_for_digest(hashlib.sha256(data).hexdigest())


def sha256_file(path: str | Path, chunk: int = 1024 * 1024) -> str:
    """Hex SHA-256 of a file (blocking: call it in a thread)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


class Body(Protocol):
    """An open stored object: its metadata and its bytes, whole, by range or streamed."""

    @property
    def info(self) -> ObjectInfo: ...

    async def read(self, start: int = 0, end: int | None = None) -> bytes:
        """Bytes [start, end) (end None: to the end). Callers bound the size they ask for."""
        ...

    def stream(self, start: int = 0, end: int | None = None,
               chunk: int = STREAM_CHUNK) -> AsyncIterator[bytes]:
        """Bytes [start, end) in chunks of at most *chunk* bytes."""
        ...


class Store(Protocol):
    async def stat(self, key: str) -> ObjectInfo | None: ...

    async def open(self, key: str) -> Body | None: ...

    async def get(self, key: str) -> tuple[bytes, ObjectInfo] | None:
        """The whole (small) object and its version."""
        ...

    async def put_if_absent(self, key: str, data: bytes | Path | StagedFile
                            ) -> tuple[ObjectInfo, bool]:
        """Store unless the key exists; (the object now under key, whether ours was written).

        Readers never see a partial object. A Path is a finished temp file in the work directory;
        the caller still owns it (and deletes it) afterwards."""
        ...

    async def put(self, key: str, data: bytes) -> ObjectInfo:
        """Atomically replace (last writer wins): for answers that are refreshed, never for history."""
        ...

    async def put_if_version(self, key: str, data: bytes, version: str | None) -> ObjectInfo:
        """Compare-and-swap: write only if the object's ETag is *version* (None: only if absent).
        Raises VersionConflict otherwise."""
        ...

    async def delete(self, key: str) -> None: ...

    async def list(self, prefix: str) -> list[str]:
        """Keys directly under ``prefix`` (a directory-like key ending in ``/``), sorted."""
        ...

    async def writable(self) -> bool: ...

    async def aclose(self) -> None: ...


def check_key(key: str) -> None:
    """Keys are built from validated parts; this is a second line of defence in every store."""
    if (not key or key.startswith("/") or "\x00" in key or "\\" in key
            or any(p in ("", ".", "..") for p in key.split("/"))):
        raise ValueError(f"invalid store key {key!r}")
