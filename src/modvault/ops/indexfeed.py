"""The index feed: every version in the order it was first stored, like index.golang.org.

``<data_dir>/.modvault/index/log`` is an append-only file of JSON lines ``{"Path","Version",
"Timestamp"}``. New versions are discovered by a walk of the store (so versions stored by any worker,
an import or a publish all appear) and appended under an flock, with timestamps kept non-decreasing
(when first stored, from the files' mtime, clamped to the last entry). A version removed by gc and
fetched again keeps its first entry. Serving pages is a bisect over the entries held in memory.

index.golang.org's contract (https://index.golang.org/): ``?since=`` an RFC 3339 time (entries at or
after it), ``?limit=`` at most 2000 lines, oldest first; a client pages by asking again with the last
Timestamp it saw (it may see that entry twice).
"""

from __future__ import annotations

import bisect
import datetime as dt
import fcntl
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from modvault.ops.inventory import VersionRecord, scan_versions

INDEX_LOG = ".modvault/index/log"
MAX_LIMIT = 2000


@dataclass(frozen=True, slots=True)
class IndexEntry:
    path: str
    version: str
    timestamp: float

    def line(self) -> str:
        return json.dumps({"Path": self.path, "Version": self.version,
                           "Timestamp": format_time(self.timestamp)}, separators=(",", ":"))


def format_time(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> float:
    """RFC 3339 (``2019-04-10T19:08:52.997264Z`` or with an offset) -> seconds; ValueError if not."""
    t = text.strip()
    if t.endswith(("Z", "z")):
        t = t[:-1] + "+00:00"
    when = dt.datetime.fromisoformat(t)
    if when.tzinfo is None or "T" not in t.upper():
        raise ValueError(f"not an RFC 3339 time with a zone: {text!r}")
    return when.timestamp()


class IndexLog:
    """The feed of one data directory, shared by the requests of one process. Blocking methods."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / INDEX_LOG
        self.entries: list[IndexEntry] = []
        self.times: list[float] = []
        self.known: set[tuple[str, str]] = set()
        self._offset = 0
        self._mutex = threading.Lock()

    def _load_new(self) -> None:
        """Read lines other processes appended since we last looked."""
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1
        self._offset += end
        for raw in data[:end].splitlines():
            try:
                doc = json.loads(raw)
                entry = IndexEntry(doc["Path"], doc["Version"], parse_time(doc["Timestamp"]))
            except (ValueError, KeyError, TypeError):
                continue
            self._add(entry)

    def _add(self, entry: IndexEntry) -> None:
        if (entry.path, entry.version) in self.known:
            return
        self.known.add((entry.path, entry.version))
        self.entries.append(entry)
        self.times.append(entry.timestamp)

    def refresh(self, records: list[VersionRecord] | None = None) -> int:
        """Append versions found in the store (or ``records`` of a walk just made) but not in the
        log. Returns how many were added."""
        with self._mutex:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path.parent / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._load_new()
                if records is None:
                    records = scan_versions(self.data_dir)
                fresh = [r for r in records if (r.module, r.version) not in self.known]
                fresh.sort(key=lambda r: (r.stored, r.module, r.version))
                last = self.times[-1] if self.times else 0.0
                new = []
                for r in fresh:
                    last = max(last, r.stored)
                    new.append(IndexEntry(r.module, r.version, last))
                if new:
                    data = "".join(e.line() + "\n" for e in new).encode()
                    out = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                    try:
                        os.write(out, data)
                        os.fsync(out)
                    finally:
                        os.close(out)
                    self._load_new()
                return len(new)
            finally:
                os.close(fd)

    def page(self, since: float, limit: int) -> list[IndexEntry]:
        with self._mutex:
            start = bisect.bisect_left(self.times, since)
            return self.entries[start:start + limit]
