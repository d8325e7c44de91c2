"""The ``h1:`` hashes of go.sum and the checksum database (mirrors golang.org/x/mod/sumdb/dirhash).

``Hash1`` is "h1:" + base64(SHA-256(summary)), where the summary has one line per file, sorted by
file name (byte order), each ``"%x  %s\\n"`` of the SHA-256 of the file's content and its name — as
if by ``find . -type f | sort | xargs sha256sum | sha256sum``. Names containing a newline are
refused.

- :func:`hash_zip` (dirhash.HashZip) hashes every entry of a module zip, names as stored.
- :func:`hash_gomod` is the go.sum ``<module> <version>/go.mod`` line: Hash1 over one file
  named "go.mod" (cmd/go modfetch goModSum).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
from collections.abc import Callable, Iterable
from typing import BinaryIO

from modvault.module.errors import ModuleError, ZipError
from modvault.module.zipcheck import ZipEntry, ZipReader

__all__ = ["hash1", "hash_gomod", "hash_zip"]

_CHUNK = 64 << 10


def _name_bytes(name: str) -> bytes:
    # Names read from zips carry undecodable bytes as surrogates; give Go's raw bytes back.
    return name.encode("utf-8", "surrogateescape")


def _sha256_stream(f: BinaryIO) -> bytes:
    h = hashlib.sha256()
    while True:
        chunk = f.read(_CHUNK)
        if not chunk:
            return h.digest()
        h.update(chunk)


def hash1(files: Iterable[tuple[str, Callable[[], BinaryIO]]]) -> str:
    """dirhash.Hash1 over ``(name, open)`` pairs; each file is opened, streamed and closed once.

    Raises :class:`ModuleError` for a name containing a newline.
    """
    named = [(_name_bytes(name), name, opener) for name, opener in files]
    for _, name, _ in named:
        if "\n" in name:
            raise ModuleError("dirhash: filenames with newlines are not supported")
    named.sort(key=lambda item: item[0])  # sort.Strings: byte order
    summary = hashlib.sha256()
    for raw, _, opener in named:
        with opener() as f:
            digest = _sha256_stream(f)
        summary.update(digest.hex().encode() + b"  " + raw + b"\n")
    return "h1:" + base64.b64encode(summary.digest()).decode()


def hash_zip(path: str | os.PathLike[str]) -> str:
    """dirhash.HashZip: Hash1 over all entries of the zip at ``path`` (directories included).

    Entry data is streamed and verified as Go's archive/zip verifies it (declared size, CRC-32);
    a zip that cannot be read, or has a name containing a newline, raises :class:`ZipError`.
    Where a name occurs twice, both lines hash the last entry of that name, as HashZip's
    name->file map does.
    """
    with open(path, "rb") as fp:
        reader = ZipReader(fp)
        by_name: dict[str, ZipEntry] = {}
        for entry in reader.entries:
            by_name[entry.name] = entry

        def opener(entry: ZipEntry) -> Callable[[], BinaryIO]:
            return lambda: reader.open(entry)

        try:
            return hash1((e.name, opener(by_name[e.name])) for e in reader.entries)
        except ZipError:
            raise
        except ModuleError as e:
            raise ZipError(str(e)) from None


def hash_gomod(data: bytes) -> str:
    """The go.sum hash of a go.mod file: Hash1 over a single file named "go.mod"."""
    return hash1([("go.mod", lambda: io.BytesIO(data))])
