"""modvault as a checksum-database client: verify every module version before it is stored.

The go command trusts a proxy only because the checksum database vouches for what it serves
(proposal 25530, "Checksum database"; go.dev/ref/mod "Checksum database"). modvault checks the
same thing earlier, so a tampered upstream is caught before anything reaches its store: for each
new ``.zip``/``.mod`` the service calls :meth:`ChecksumVerifier.verify` with the h1 hashes it
computed, and stores the artifact only if that returns.

One verification (x/mod sumdb client.go ``Lookup``):

1. look up the record (``/lookup/M@V``) through the shared :class:`SumdbFetcher` (store first:
   a record never changes, so the answer to the ``.mod`` check serves the ``.zip`` check too);
2. open the signed tree head in the answer with the configured key;
3. merge it into the verified timeline: the newest head verified so far is kept durably, every
   newer one must contain it (consistency proof from tiles), an older one must be its prefix,
   and any contradiction (a fork) raises ``SecurityError``;
4. prove that the record is in the newest verified tree (inclusion, from tiles authenticated
   against that signed head; tiles are cached, so this costs at most a few tile fetches);
5. compare the record's h1 hashes with ours.

A mismatch raises :class:`~modvault.errors.SecurityError` (502) whose message starts with
``SECURITY ERROR`` and names the module, version, the database's hash (expected) and ours (got),
and counts ``modvault_security_errors_total{kind="checksum_mismatch"}``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from modvault.errors import (
    BadRequest,
    InvalidContent,
    ModvaultError,
    NotFound,
    SecurityError,
    Unavailable,
)
from modvault.module.errors import ModuleError
from modvault.module.path import check
from modvault.observability import metrics
from modvault.sources.upstream import UpstreamLimits
from modvault.storage.base import Store
from modvault.sumdb.config import SumdbConfig
from modvault.sumdb.proxy import LOG, SumdbFetcher, record_hashes_for

if TYPE_CHECKING:
    import httpx

__all__ = ["ChecksumVerifier", "RecordHashes"]


class RecordHashes:
    """The h1 hashes the checksum database holds for one module version, and what proved them:
    record ``record_id`` of ``database`` is in its verified tree of ``tree_size`` records with
    root hash ``root_hash`` (kept as provenance of what is stored)."""

    __slots__ = ("database", "mod_h1", "module", "record_id", "root_hash", "tree_size", "version",
                 "zip_h1")

    def __init__(self, module: str, version: str, record_id: int, zip_h1: str | None,
                 mod_h1: str | None, *, database: str = "", tree_size: int = 0,
                 root_hash: bytes = b"") -> None:
        self.module = module
        self.version = version
        self.record_id = record_id
        self.zip_h1 = zip_h1
        self.mod_h1 = mod_h1
        self.database = database
        self.tree_size = tree_size
        self.root_hash = root_hash

    def __repr__(self) -> str:
        return (f"RecordHashes({self.module}@{self.version} #{self.record_id} zip={self.zip_h1} "
                f"mod={self.mod_h1})")


class ChecksumVerifier:
    """Verifies module versions against one checksum database.

    Build it on the fetcher the proxy uses for the same database (``proxy.fetcher(name)``) so
    both share one timeline, one cache and one set of in-flight requests; or with
    :meth:`create` when there is no proxy.
    """

    def __init__(self, fetcher: SumdbFetcher, *, memo_size: int = 4096) -> None:
        self.fetcher = fetcher
        self._memo: OrderedDict[tuple[str, str], RecordHashes] = OrderedDict()
        self._memo_size = memo_size

    @classmethod
    def create(cls, config: SumdbConfig, store: Store, client: httpx.AsyncClient, *,
               ttl: float = 300.0, offline: bool = False,
               limits: UpstreamLimits | None = None) -> ChecksumVerifier:
        return cls(SumdbFetcher(config, store, client, ttl=ttl, offline=offline, limits=limits))

    @property
    def name(self) -> str:
        return self.fetcher.name

    def _count(self, result: str) -> None:
        metrics.SUMDB_VERIFICATIONS.labels(self.name, result).inc()

    async def record(self, module: str, version: str) -> RecordHashes:
        """The authenticated record of module@version (one lookup, a few tiles, all cached).

        Raises NotFound when the database has no such record, Unavailable when it cannot be
        reached, InvalidContent for malformed answers and SecurityError for misbehaviour."""
        try:
            check(module, version)
        except ModuleError as exc:
            raise BadRequest(str(exc)) from None
        memo = self._memo.get((module, version))
        if memo is not None:
            self._memo.move_to_end((module, version))
            return memo
        answer = await self.fetcher.lookup(module, version, any_age=True)
        if not answer.verified:
            # From the store (authenticated when stored, checked again: cheap with cached tiles)
            # or passed on unauthenticated: either way prove it now.
            answer = await self.fetcher.authenticate(answer)
        zip_h1, mod_h1 = record_hashes_for(module, version, answer.text)
        # The record was proven in the newest verified tree; every later one contains it.
        tree = await self.fetcher.verified_tree() or answer.tree
        rec = RecordHashes(module, version, answer.record_id, zip_h1, mod_h1, database=self.name,
                           tree_size=tree.N, root_hash=tree.Hash)
        self._memo[(module, version)] = rec
        if len(self._memo) > self._memo_size:
            self._memo.popitem(last=False)
        return rec

    async def verify(self, module: str, version: str, *, zip_h1: str | None = None,
                     mod_h1: str | None = None,
                     lookup: Awaitable[RecordHashes] | None = None) -> RecordHashes:
        """Check our h1 hashes of module@version against the checksum database.

        Returns the authenticated record (what was proven, for provenance) when every hash given
        matches it. Raises:

        - :class:`SecurityError` (502, "SECURITY ERROR ...") when a hash differs, the record
          lacks the line to compare, or the database misbehaved (fork, forged tile or signature);
        - :class:`NotFound` (404) when the database has no record of module@version (the go
          command would fail the same way: "reading .../lookup/M@V: 404 Not Found");
        - :class:`Unavailable` (502/504) when the database cannot be reached and nothing is
          stored, or answered something malformed (InvalidContent);
        - :class:`BadRequest` for an invalid module path or version.

        *lookup* is a :meth:`record` call for the same version started earlier (while the
        artifact was downloading); its outcome is used rather than looking up again.
        """
        try:
            rec = await (lookup if lookup is not None else self.record(module, version))
        except SecurityError:
            self._count("error")
            raise
        except NotFound as exc:
            self._count("notfound")
            raise NotFound(f"verifying {module}@{version}: checksum database {self.name}: "
                           f"{exc.message}") from None
        except InvalidContent as exc:
            self._count("unavailable")
            raise type(exc)(f"verifying {module}@{version}: checksum database {self.name}: "
                            f"{exc.message}") from None
        except Unavailable as exc:
            self._count("unavailable")
            raise type(exc)(f"verifying {module}@{version}: checksum database {self.name}: "
                            f"{exc.message} (nothing is stored unverified: make the database "
                            f"reachable, point the sumdb setting at a reachable database or "
                            f"mirror, or set sumdb_verify = false for air-gapped sites)") from None
        except ModvaultError:
            self._count("error")
            raise
        for what, ours, theirs in (("zip", zip_h1, rec.zip_h1), ("go.mod", mod_h1, rec.mod_h1)):
            if ours is None:
                continue
            if theirs is None:
                self._count("mismatch")
                raise self._mismatch(module, version, what, "(no such line in the record)", ours)
            if ours != theirs:
                self._count("mismatch")
                raise self._mismatch(module, version, what, theirs, ours)
        self._count("ok")
        return rec

    def _mismatch(self, module: str, version: str, what: str, expected: str, got: str) -> SecurityError:
        metrics.SECURITY_ERRORS.labels(self.name, "checksum_mismatch").inc()
        suffix = "/go.mod" if what == "go.mod" else ""
        message = (
            f"SECURITY ERROR: checksum mismatch for {module} {version}{suffix} ({what}): "
            f"expected {expected} (checksum database {self.name}), got {got} (downloaded). "
            f"This download does NOT match the one reported by the checksum database; "
            f"it was not stored.")
        LOG.error("sumdb %s: %s", self.name, message)
        return SecurityError(message)
