"""Shared state between processes and replicas: the small interfaces and their local implementations.

Besides single-flight (base.py), replicas share: not-found answers (``SharedNegative``), who refreshes
a mutable answer (``Freshness``), rate-limit buckets (``RateLimiter``), news that a version was
published, blocked or removed (``Changes``), and the one writer of the private checksum log
(``WriterLease``). ``local`` coordination keeps today's per-process behaviour (and speed); the Redis
implementations (redis_state.py) degrade to these when Redis cannot be reached.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import mmap
import os
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from modvault.cache.coordination.base import FlightLock, LocalFlightLock

LOG = logging.getLogger("modvault.coordination")

# An 8-byte token rewritten on every change (workers of one group map it): in the host's shared
# memory, keyed by the data directory; under the data directory only where /dev/shm is unusable.
CHANGES_FILE = ".modvault/state/changes"
SHARED_MEMORY = Path("/dev/shm")


def changes_path(data_dir: str | Path) -> Path:
    """Where the change token of ``data_dir`` lives. Not on the data directory's file system when
    avoidable: a writable shared mapping there keeps it busy, so it could not be remounted read-only
    while modvault runs."""
    root = Path(data_dir).resolve()
    if SHARED_MEMORY.is_dir() and os.access(SHARED_MEMORY, os.W_OK):
        key = hashlib.sha256(os.fsencode(root)).hexdigest()[:20]
        return SHARED_MEMORY / f"modvault-{key}.changes"
    return root / CHANGES_FILE


def open_changes_file(path: Path, create: bool = True) -> int:
    """A descriptor of the change token file. /dev/shm is shared by every user: never follow a
    planted link, never use another user's file."""
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | (os.O_CREAT if create else 0), 0o644)
    euid = os.geteuid()
    if euid != 0 and os.fstat(fd).st_uid != euid:
        owner = os.fstat(fd).st_uid
        os.close(fd)
        raise OSError(f"owned by uid {owner}")
    return fd


@contextlib.contextmanager
def changes_file_held(data_dir: str | Path) -> Iterator[None]:
    """The change token file lives while a server group on *data_dir* runs, and is removed when
    the last one stops (not left behind in /dev/shm, one page of memory each). Every server
    holds a shared lock on it; the one that can turn it into an exclusive lock at exit is the
    last and removes it. Best effort: a killed server leaves the file, the next start reuses it."""
    path = changes_path(data_dir)
    fd = -1
    try:
        for _ in range(5):
            fd = open_changes_file(path)
            fcntl.flock(fd, fcntl.LOCK_SH)
            with contextlib.suppress(FileNotFoundError):
                if os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                    break  # not removed by a server stopping meanwhile
            os.close(fd)
            fd = -1
    except OSError as exc:
        LOG.warning("cannot hold %s: %s", path, exc)
        if fd >= 0:
            os.close(fd)
            fd = -1
    try:
        yield
    finally:
        if fd >= 0:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                    path.unlink()
            except OSError:
                pass  # another server still runs on this data directory (or it is gone already)
            finally:
                os.close(fd)


@dataclass(frozen=True, slots=True)
class Change:
    """A version was published, blocked, unblocked or removed: what a replica must forget."""

    event: str  # publish | block | unblock | remove
    module: str  # empty: many modules (gc)
    version: str = ""

    def encode(self) -> bytes:
        return json.dumps({"e": self.event, "m": self.module, "v": self.version}).encode()

    @classmethod
    def decode(cls, data: bytes) -> Change | None:
        try:
            doc = json.loads(data)
            return cls(str(doc["e"]), str(doc["m"]), str(doc.get("v", "")))
        except (ValueError, KeyError, TypeError):
            return None


# What a process does with news of a change: None means "something changed, forget everything".
ChangeHandler = Callable[[Change | None], None]


class SharedNegative(Protocol):
    async def get(self, key: str) -> tuple[str, str] | None:
        """(error class name, message) remembered for *key* by any replica, or None."""
        ...

    async def put(self, key: str, kind: str, message: str, ttl: float) -> None: ...

    async def delete(self, keys: list[str]) -> None: ...


class Freshness(Protocol):
    async def claim(self, key: str, ttl: float) -> bool:
        """True when this process should revalidate *key* now; False when another replica did or
        is doing it within *ttl* (its result lands in the shared store)."""
        ...


class RateLimiter(Protocol):
    async def take(self, key: str, rate: float, burst: float) -> float:
        """0 when a request may pass now, else the seconds until it may."""
        ...


class Changes(Protocol):
    def changed(self) -> bool:
        """Cheap (no I/O): did a sibling process announce a change since the last call?"""
        ...

    def pending(self) -> bool:
        """What ``changed`` would answer, without taking the change as seen (a reader on another
        thread leaves that to the loop's)."""
        ...

    async def announce(self, change: Change) -> None: ...

    def start(self, handler: ChangeHandler) -> None:
        """Deliver other replicas' changes to *handler* (on the running loop)."""
        ...

    async def aclose(self) -> None: ...


class WriterLease(Protocol):
    def hold(self, name: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Be the one writer of *name* while inside; raises Unavailable when that cannot be known."""
        ...


class LocalFreshness:
    async def claim(self, key: str, ttl: float) -> bool:
        return True


class LocalWriterLease:
    """One replica: the store's compare-and-swap on the log head is all there is (and is enough)."""

    @contextlib.asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[None]:
        yield


class LocalChanges:
    """Workers of one process group: a token in a small memory-mapped file (see ``changes_path``).

    ``announce`` writes 8 random bytes; every worker compares the mapped bytes with the last it saw
    (a slice of shared memory, no system call) before answering, and forgets its memory tier when
    they differ. Without a usable file changes stay per process."""

    def __init__(self, data_dir: str | Path, create: bool = True) -> None:
        """*create* False (a command announcing a change): no file means no server is running on
        this data directory, so there is no one to tell."""
        self.path = changes_path(data_dir)
        self._map: mmap.mmap | None = None
        self._word: memoryview | None = None  # the token as one unsigned 64-bit integer
        try:
            fd = open_changes_file(self.path, create)
            try:
                if os.fstat(fd).st_size < 8:
                    os.ftruncate(fd, 8)
                self._map = mmap.mmap(fd, 8)
                self._word = memoryview(self._map).cast("Q")
            finally:
                os.close(fd)
        except FileNotFoundError:
            if create:
                LOG.warning("changes stay per process (cannot create %s)", self.path)
        except OSError as exc:
            LOG.warning("changes stay per process (cannot map %s: %s)", self.path, exc)
        self._seen = self._word[0] if self._word is not None else 0

    def changed(self) -> bool:
        w = self._word
        if w is None or w[0] == self._seen:
            return False
        self._seen = w[0]
        return True

    def pending(self) -> bool:
        w = self._word
        return w is not None and w[0] != self._seen

    def bump(self) -> None:
        if self._word is not None:
            self._word[0] = int.from_bytes(os.urandom(8), "little")
            self._seen = self._word[0]

    async def announce(self, change: Change) -> None:
        self.bump()

    def start(self, handler: ChangeHandler) -> None:
        return None

    async def aclose(self) -> None:
        if self._word is not None:
            self._word.release()
            self._word = None
        if self._map is not None:
            with contextlib.suppress(BufferError, ValueError):
                self._map.close()
            self._map = None


@dataclass
class Coordination:
    """Everything a replica shares with the others; wiring.py builds it from ``coordination``."""

    flight: FlightLock = field(default_factory=LocalFlightLock)
    negative: SharedNegative | None = None  # None: the per-process negative cache only
    freshness: Freshness = field(default_factory=LocalFreshness)
    rates: RateLimiter | None = None  # None: per-process token buckets
    changes: Changes | None = None
    writer: WriterLease = field(default_factory=LocalWriterLease)

    async def aclose(self) -> None:
        if self.changes is not None:
            await self.changes.aclose()
        await self.flight.aclose()


def local_coordination(data_dir: str | Path) -> Coordination:
    return Coordination(changes=LocalChanges(data_dir))
