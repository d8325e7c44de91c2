"""The upstream list with the go command's GOPROXY semantics (go.dev/ref/mod#goproxy-protocol).

Entries are separated by ``,`` (fall through to the next entry only on 404/410, i.e. NotFound/Gone) or
``|`` (fall through on any error, timeouts included). ``direct`` is the version-control source; ``off``
refuses. The list is parsed once; each fetch walks it in order.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from modvault.errors import Gone, ModvaultError, NotFound, StorageError, Unavailable
from modvault.sources.base import Source
from modvault.sources.health import HealthRecord, HealthRegistry, State
from modvault.sources.lazyclient import client_ready
from modvault.sources.tracking import CircuitOpen, check_allowed

if TYPE_CHECKING:
    import httpx

T = TypeVar("T")
LOG = logging.getLogger("modvault.sources")


STRATEGIES = ("order", "fastest")


def pipe_groups(flags: list[bool]) -> list[list[int]]:
    """Indexes of the entries joined by ``|`` (flag: "this entry is followed by |")."""
    groups: list[list[int]] = []
    current: list[int] = []
    for i, any_error in enumerate(flags):
        current.append(i)
        if not any_error:
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    return groups


def latency_bucket(seconds: float | None) -> int:
    """Coarse latency classes (x1.5 apart above 5 ms), so near-equal peers keep their list order."""
    if seconds is None or seconds <= 0.005:
        return 0
    return 1 + int(math.log(seconds / 0.005) / math.log(1.5))


UNMEASURED = 1 << 20  # the latency class of a member modvault does not time (direct, file://)


def health_rank(rec: HealthRecord | None, now: float) -> tuple[int, int]:
    """Sort key of a peer for the "fastest" strategy: usable first, then faster first. A member
    without a record of its own (``direct``: a git clone, per host; ``file://``) is not faster
    than a measured healthy one: it comes after those, before the open or unreachable ones."""
    if rec is None:
        return (0, UNMEASURED)
    if rec.state is State.OPEN or (rec.state is State.CLOSED and rec.unreachable(now)):
        usable = 2
    elif rec.state is State.HALF_OPEN:
        usable = 1
    else:
        usable = 0
    return (usable, latency_bucket(rec.recent))


class Chain:
    """Walks the sources in list order, falling through as the separators allow.

    A source with a health record (HTTP upstreams) whose breaker is open, or that was unreachable
    moments ago, is not asked: within a ``|`` group the next member is tried at once; after ``,`` the
    walk ends with 503 at once, as a failing upstream would end it. With ``strategy="fastest"`` the
    members of each ``|`` group are tried by health, then measured latency, then list order.
    """

    def __init__(self, sources: list[tuple[Source | None, bool]],
                 client: httpx.AsyncClient | None = None, *, strategy: str = "order",
                 health: HealthRegistry | None = None) -> None:
        # (source, fallback_on_any_error); None stands for "off".
        self.sources = sources
        self._client = client  # shared by the HTTP upstreams; closed with the chain
        self.strategy = strategy
        self.health = health
        self._groups = pipe_groups([f for _, f in sources])

    @property
    def names(self) -> list[str]:
        return [s.name if s is not None else "off" for s, _ in self.sources]

    @staticmethod
    def record_of(source: Source | None) -> HealthRecord | None:
        rec = getattr(source, "record", None)
        return rec if isinstance(rec, HealthRecord) else None

    def ordered(self) -> list[tuple[Source | None, bool]]:
        """The entries in the order this walk tries them (list order unless "fastest")."""
        if self.strategy != "fastest" or self.health is None:
            return self.sources
        now = self.health.clock()
        out: list[tuple[Source | None, bool]] = []
        for group in self._groups:
            if len(group) == 1:
                out.append(self.sources[group[0]])
                continue
            members = sorted(group, key=lambda i: (
                *health_rank(self.record_of(self.sources[i][0]), now), i))
            flags = [True] * (len(group) - 1) + [self.sources[group[-1]][1]]
            out.extend((self.sources[i][0], f) for i, f in zip(members, flags, strict=True))
        return out

    async def _walk(self, call: Callable[[Source], Awaitable[T]]) -> tuple[T, str]:
        err: ModvaultError | None = None
        for source, any_error in self.ordered():
            if source is None:
                raise NotFound("module lookup disabled by upstream list entry 'off'")
            try:
                check_allowed(self.health, self.record_of(source))
            except CircuitOpen as exc:
                if not any_error:
                    raise
                if err is None or isinstance(err, (NotFound, Gone)):
                    err = exc
                continue
            try:
                return await call(source), source.name
            except (NotFound, Gone) as exc:
                # Prefer reporting a real failure over a not-found from a later entry.
                if err is None or isinstance(err, (NotFound, Gone)):
                    err = exc
                continue
            except StorageError:
                raise  # our own disk failed: no other upstream can help, none is to blame
            except ModvaultError as exc:
                if any_error:
                    err = exc
                    continue
                raise
            except OSError as exc:
                # Network failures arrive as ModvaultErrors (retry.py); a bare OSError is local.
                raise StorageError(f"modvault store: local I/O error while fetching from "
                                   f"{source.name}: {exc.strerror or type(exc).__name__}") from None
            except Exception as exc:
                # Whatever else a source's answer made us trip on is classified as that upstream's
                # failure (502), never a 500; the trace goes to the log for us to fix.
                LOG.exception("unexpected error handling an answer from %s", source.name)
                failure = Unavailable(f"{source.name}: answer could not be processed "
                                      f"({type(exc).__name__})")
                if any_error:
                    err = failure
                    continue
                raise failure from None
        if err is None:
            raise NotFound("no upstream configured")
        raise err

    async def list(self, module: str) -> tuple[list[str], str]:
        return await self._walk(lambda s: s.list(module))

    async def latest(self, module: str) -> tuple[bytes, str]:
        return await self._walk(lambda s: s.latest(module))

    async def info(self, module: str, version: str) -> tuple[bytes, str]:
        return await self._walk(lambda s: s.info(module, version))

    async def mod(self, module: str, version: str) -> tuple[bytes, str]:
        return await self._walk(lambda s: s.mod(module, version))

    async def zip(self, module: str, version: str, dest: Path) -> tuple[str | None, str]:
        return await self._walk(lambda s: s.zip(module, version, dest))

    async def ready(self) -> None:
        """Before fetching: the shared HTTP client exists, made off the event loop."""
        await client_ready(self._client)

    async def aclose(self) -> None:
        for source, _ in self.sources:
            if source is not None:
                await source.aclose()
        if self._client is not None:
            await self._client.aclose()

    async def probe(self) -> tuple[bool, str]:
        """Is at least one source reachable (or recently reached)? For /readyz."""
        reasons = []
        for source, _ in self.sources:
            if source is None or getattr(source, "local", False):  # e.g. published uploads
                continue
            ok, why = await source.probe()
            if ok:
                return True, f"{source.name}: {why}"
            reasons.append(f"{source.name}: {why}")
        if not reasons:
            return True, "no network sources configured"
        return False, "; ".join(reasons)
