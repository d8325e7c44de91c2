"""ArtifactRef (what was asked for) and Artifact (what the server renders). Names are a contract."""

from __future__ import annotations

import gzip
import time
from dataclasses import dataclass, field
from enum import StrEnum

from modvault.storage.base import Body


class Kind(StrEnum):
    LIST = "list"
    LATEST = "latest"
    INFO = "info"
    MOD = "mod"
    ZIP = "zip"


MEDIA_TYPES = {
    Kind.LIST: "text/plain; charset=utf-8",
    Kind.MOD: "text/plain; charset=utf-8",
    Kind.INFO: "application/json",
    Kind.LATEST: "application/json",
    Kind.ZIP: "application/zip",
}

IMMUTABLE_CACHE_CONTROL = "public, max-age=31536000, immutable"


@dataclass(frozen=True, slots=True)
class ArtifactRef:
    """A validated request: module path and version (or query) in both plain and escaped forms."""

    module: str
    escaped_module: str
    kind: Kind
    version: str = ""  # canonical version, or a query for .info; empty for list/latest
    escaped_version: str = ""
    canonical: bool = False  # version is a canonical version (immutable artifact)


@dataclass(slots=True)
class Artifact:
    """Something the server can send: small bodies in memory; zips as a local file to sendfile or
    pread (``path``), or, from a store without local files, an open stored body to stream or read
    by range (``blob``)."""

    kind: Kind
    size: int
    etag: str  # strong, quoted
    mtime: float  # seconds since the epoch: Last-Modified, and the age of mutable answers
    immutable: bool
    body: bytes | None = None
    path: str | None = None
    blob: Body | None = None
    tier: str = "store"  # memory | store | upstream
    upstream: str = ""
    _gz: bytes | None = field(default=None, repr=False)
    # Response headers for a plain 200, built once by the server for artifacts it serves often.
    plain_headers: list[tuple[str, str]] | None = field(default=None, repr=False)
    _last_modified: str | None = field(default=None, repr=False)

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.kind]

    @property
    def last_modified(self) -> str:
        if self._last_modified is None:
            self._last_modified = imf_fixdate(self.mtime)
        return self._last_modified

    def gzipped(self) -> bytes | None:
        """The gzip encoding of a small body, computed once; None for zips and file bodies."""
        if self.body is None or self.kind is Kind.ZIP:
            return None
        if self._gz is None:
            self._gz = gzip.compress(self.body, compresslevel=6, mtime=0)
        return self._gz


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def imf_fixdate(when: float) -> str:
    """``Sun, 06 Nov 1994 08:49:37 GMT``: the HTTP date format senders use (RFC 9110 section
    5.6.7), as ``email.utils.formatdate(when, usegmt=True)`` writes it, without loading the
    email package (0.3 MiB) into every worker for one header."""
    t = time.gmtime(when)
    return (f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT")
