"""Facts read from a stored module zip: SHA-256 of its bytes and the licence of its root
licence files. Blocking (file I/O): call it off the event loop."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from modvault.module.errors import ZipError
from modvault.module.zipcheck import ZipReader, read_root_files
from modvault.supply.licenses import MAX_LICENCE_BYTES, NOASSERTION, detect_module, is_licence_file

__all__ = ["LicenceFiles", "ZipFacts", "licence_of_zip", "sha256_of_file", "zip_facts"]

_CHUNK = 1024 * 1024
MAX_LICENCE_FILES = 16


@dataclass(frozen=True)
class ZipFacts:
    sha256: str
    size: int
    licence: str


def sha256_of_file(path: Path | str) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def licence_of_zip(path: Path | str, module: str, version: str) -> str:
    """The licence of the files directly under ``module@version/`` named like LICENSE/COPYING.

    The zip is read as check_zip reads it (Go's archive/zip rules, modvault.module.zipcheck), not
    with Python's zipfile, which refuses zips Go accepts (a "version needed to extract" above 6.3
    raised NotImplementedError: a 500 for a publish of such a zip) and decodes names otherwise.
    So it picks what check_zip's *keep* picks (:class:`LicenceFiles`)."""
    pick = LicenceFiles()
    try:
        with open(path, "rb") as fp:
            files = read_root_files(ZipReader(fp), f"{module}@{version}/", pick)
    except (OSError, ZipError):
        return NOASSERTION
    return pick.licence(files)


class LicenceFiles:
    """Picks a zip's root licence files: check_zip's ``keep`` on the cold path (so the zip is not
    parsed a second time for them), and :func:`licence_of_zip`'s. Within limits: one file too
    large, or too many files, and the licence is NOASSERTION."""

    def __init__(self) -> None:
        self.count = 0
        self.unsure = False

    def __call__(self, name: str, size: int) -> bool:
        if not is_licence_file(name):
            return False
        if size > MAX_LICENCE_BYTES or self.count >= MAX_LICENCE_FILES or self.unsure:
            self.unsure = True
            return False
        self.count += 1
        return True

    def licence(self, kept: Sequence[tuple[str, bytes]]) -> str:
        return NOASSERTION if self.unsure else detect_module(list(kept))


def zip_facts(path: Path | str, module: str, version: str,
              digest: tuple[str, int] | None = None, licence: str | None = None) -> ZipFacts:
    """*digest*: the file's (SHA-256 hex, size) when known (hashed as it was downloaded), so the
    file is not read again to hash it; *licence*: when known (:class:`LicenceFiles`)."""
    sha, size = digest if digest is not None else sha256_of_file(path)
    return ZipFacts(sha, size, licence if licence is not None else licence_of_zip(path, module, version))
