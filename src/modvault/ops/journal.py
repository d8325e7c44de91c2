"""The access journal: when each stored artifact was last asked for, recorded cheaply.

A request costs one dictionary assignment (key -> a coarse clock kept by the flusher), never a write
and never filesystem atime. Every ``flush_interval`` seconds the pending entries are appended to this
process's journal file under ``<data_dir>/.modvault/access/`` in one write. Compaction folds every
journal into ``compact.log`` (one line per key, the latest time) so the files stay small.

Concurrency: writers append under a shared flock of ``access/.lock``; compaction renames journals
under the exclusive flock (so no writer still holds an old inode), then merges at leisure. Readers
(``gc``, ``ls``) read ``compact.log`` plus every journal and need no lock: a line is at worst read
twice. Line format: ``<unix seconds> <store key>``; keys never hold spaces or newlines.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

ACCESS_DIR = ".modvault/access"
COMPACT = "compact.log"
# Pending entries kept in memory between flushes; past this the oldest batch is flushed early.
MAX_PENDING = 100_000


def access_dir(data_dir: Path) -> Path:
    return data_dir / ACCESS_DIR


@contextlib.contextmanager
def _flocked(directory: Path, mode: int) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)


def _parse_lines(data: str, into: dict[str, float]) -> None:
    for line in data.splitlines():
        when, sep, key = line.partition(" ")
        if not sep or not key:
            continue
        try:
            t = float(when)
        except ValueError:
            continue
        if key not in into or t > into[key]:
            into[key] = t


def _format(entries: Iterable[tuple[str, float]]) -> str:
    return "".join(f"{t:.0f} {k}\n" for k, t in entries)


class AccessJournal:
    """Last-access times of store keys for one data directory (one instance per process)."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.dir = access_dir(Path(data_dir))
        self.name = f"journal-{os.getpid()}-{uuid.uuid4().hex[:8]}.log"
        self.pending: dict[str, float] = {}
        # Requests for mutable answers since the last drain (ops/hot.py turns them into hotness).
        self.hits: dict[str, int] = {}
        self.now = time.time()  # coarse clock, advanced by tick(): touch() never calls time()

    def touch(self, key: str) -> None:
        """Note an access; the hot path. Cheap enough to call for every artifact request."""
        self.pending[key] = self.now
        if len(self.pending) > MAX_PENDING:
            self.flush()

    def hit(self, key: str) -> None:
        """Count a request for a mutable answer (list, @latest, query); the hot path too."""
        self.hits[key] = self.hits.get(key, 0) + 1
        if len(self.hits) > MAX_PENDING:
            self.hits.clear()  # a flood of distinct keys: forget rather than grow

    def drain_hits(self) -> dict[str, int]:
        hits, self.hits = self.hits, {}
        return hits

    def tick(self) -> None:
        self.now = time.time()

    # -- writing -----------------------------------------------------------------------------

    def flush(self) -> int:
        """Append pending entries to this process's journal in one write. Blocking; returns count."""
        if not self.pending:
            return 0
        batch, self.pending = self.pending, {}
        data = _format(batch.items()).encode()
        with _flocked(self.dir, fcntl.LOCK_SH):
            fd = os.open(self.dir / self.name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        return len(batch)

    def compact(self, *, forget: Iterable[str] = ()) -> int:
        """Fold every journal into compact.log (atomically); drop ``forget`` keys. Returns keys kept."""
        self.flush()
        self.dir.mkdir(parents=True, exist_ok=True)
        with _flocked(self.dir, fcntl.LOCK_EX):
            sealed = []
            for entry in os.listdir(self.dir):
                if entry.startswith("journal-") and entry.endswith(".log"):
                    target = self.dir / f"sealed-{uuid.uuid4().hex}.log"
                    os.rename(self.dir / entry, target)
                    sealed.append(target)
            sealed += [self.dir / e for e in os.listdir(self.dir)
                       if e.startswith("sealed-") and self.dir / e not in sealed]
            merged = read_access_times(self.dir.parent.parent, include_journals=False)
            for path in sealed:
                with contextlib.suppress(FileNotFoundError):
                    _parse_lines(path.read_text("utf-8", "replace"), merged)
            for key in forget:
                merged.pop(key, None)
            tmp = self.dir / f".compact-{uuid.uuid4().hex}"
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(_format(sorted(merged.items())))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.dir / COMPACT)
            for path in sealed:
                path.unlink(missing_ok=True)
        return len(merged)

    def journal_bytes(self) -> int:
        total = 0
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.dir):
                if entry.name.startswith(("journal-", "sealed-")):
                    with contextlib.suppress(FileNotFoundError):
                        total += entry.stat().st_size
        return total


def read_access_times(data_dir: str | os.PathLike[str], *,
                      include_journals: bool = True) -> dict[str, float]:
    """Every recorded key with its latest access time. Blocking; no lock needed."""
    directory = access_dir(Path(data_dir))
    out: dict[str, float] = {}
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return out
    files = [COMPACT] if COMPACT in names else []
    if include_journals:
        files += [n for n in names if n.startswith(("journal-", "sealed-"))]
    for name in files:
        with contextlib.suppress(FileNotFoundError):
            _parse_lines((directory / name).read_text("utf-8", "replace"), out)
    return out
