"""Facts read from a stored module zip: SHA-256 of its bytes and the licence of its root
licence files. Blocking (file I/O): call it off the event loop."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

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
    """The licence of the files directly under ``module@version/`` named like LICENSE/COPYING."""
    prefix = f"{module}@{version}/"
    files: list[tuple[str, bytes]] = []
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                rest = info.filename[len(prefix):] if info.filename.startswith(prefix) else ""
                if not rest or "/" in rest or not is_licence_file(rest):
                    continue
                if info.file_size > MAX_LICENCE_BYTES or len(files) >= MAX_LICENCE_FILES:
                    return NOASSERTION
                files.append((rest, zf.read(info)))
    except (OSError, zipfile.BadZipFile, ValueError):
        return NOASSERTION
    return detect_module(files)


class LicenceFiles:
    """The root licence files, picked while check_zip reads the zip (its ``keep``), so the zip
    is not parsed a second time for them: the same files and the same outcome as
    :func:`licence_of_zip`, whose limits it applies (one file too large, or too many, and the
    licence is NOASSERTION)."""

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
