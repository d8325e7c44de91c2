"""ModuleService: the heart. cache -> sources -> check -> store, and every policy decision.

Immutable artifacts (.info/.mod/.zip of a canonical version) are fetched once, checked, stored forever.
Mutable answers (list, @latest, query .info) are fresh for ``mutable_ttl``, then served stale while one
background task revalidates them, and served stale when every source fails. One fetch per key at a time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from modvault.artifact import Artifact, ArtifactRef, Kind
from modvault.cache.coordination import LocalFlightLock
from modvault.cache.coordination.state import Change, Coordination
from modvault.cache.memory import ByteLRU
from modvault.cache.negative import NegativeCache
from modvault.cache.singleflight import SingleFlight
from modvault.config import Settings
from modvault.errors import (
    Forbidden,
    Gone,
    InvalidContent,
    ModvaultError,
    NotFound,
    SecurityError,
    Unavailable,
)
from modvault.gate import ModuleGate
from modvault.module import semver
from modvault.module.dirhash import hash_gomod, hash_zip
from modvault.module.errors import ModuleError, ZipError
from modvault.module.path import check, escape_path, escape_version, unescape_version
from modvault.module.pseudo import is_pseudo_version
from modvault.module.zipcheck import check_zip
from modvault.module.zipstream import StreamedEntry, ZipStreamScan
from modvault.observability import metrics
from modvault.policy import ModulePolicy
from modvault.sources.chain import Chain
from modvault.sources.download import DOWNLOAD_SCAN, ScanSlot
from modvault.sources.health import HealthRegistry
from modvault.sources.tracking import Prober
from modvault.storage import keys
from modvault.storage.base import ObjectInfo, StagedFile, Store, etag_of
from modvault.storage.fs import discard, fsync_file
from modvault.storage.workdir import WorkDir
from modvault.sumdb.client import ChecksumVerifier, RecordHashes
from modvault.sumdb.private import PrivateSumdb
from modvault.sumdb.proxy import SumdbProxy
from modvault.supply.admission import SupplyChain, origin_from_info, verification_of
from modvault.supply.provenance import Verification
from modvault.supply.zipfacts import LicenceFiles, ZipFacts, zip_facts

LOG = logging.getLogger("modvault.service")

# Bounds of the in-process caches that are not the memory tier (every cache is bounded in bytes, and
# every entry declares at least 200 bytes, so in entries too).
# Per-worker bounds (README "Memory"): ~0.3 KiB a not-found answer, ~0.6 KiB a zip's headers.
NEGATIVE_CACHE_BYTES = 2 * 1024 * 1024
ZIP_ARTIFACTS_BYTES = 4 * 1024 * 1024
# Stores without local files (S3): what a stored zip's HEAD said, reused this long, so a zip hit
# is one ranged GET instead of HEAD + GET. Stored zips never change; removals are announced
# (forget) and this bounds what an out-of-band deletion can leave behind.
REMOTE_STAT_TTL = 60.0


def memory_entry_bytes(key: str, art: Artifact) -> int:
    """What a memory-tier entry is charged: its body, key, Artifact, ETag and LRU slot. Measured
    with tracemalloc at ~590 bytes for a 54-byte .info under a 45-character key (the former
    charge, body + 256, let tiny entries use twice the configured bound); kept an upper bound by
    tests/cache/test_memory_bounds.py."""
    return art.size + 2 * len(key) + 512


async def _off_loop_if_big(fn: Callable[[bytes], str], data: bytes) -> str:
    """Hash small bodies inline, big ones in a thread (the loop must not stall on a 16 MB .mod)."""
    if len(data) < 65536:
        return fn(data)
    return await asyncio.to_thread(fn, data)


_SORT_CHUNK = 8192
# Not-found answers other replicas may serve on our behalf, by class name.
_SHARED_NEGATIVE: dict[str, type[ModvaultError]] = {"NotFound": NotFound, "Gone": Gone}


def _change_keys(change: Change) -> list[str]:
    """The cache keys a change makes wrong: the version's artifacts, the module's list/@latest."""
    try:
        emod = escape_path(change.module)
        out = [keys.list_key(emod), keys.latest_key(emod)]
        if change.version:
            ever = escape_version(change.version)
            out += [keys.artifact_key(emod, ever, ext) for ext in ("info", "mod", "zip")]
    except ModuleError:
        return []
    return out


def format_list(versions: list[str]) -> bytes:
    """The list answer: unique versions in semver order, one per line.

    Long lists are sorted in chunks then merged: one C-level sort of 400,000 keys holds the GIL for
    half a second even in a worker thread, and the event loop with it; chunk sorts hold it for
    milliseconds and the (pure Python) merge lets the loop run in between."""
    unique = list(set(versions))
    if len(unique) <= _SORT_CHUNK:
        ordered: Iterable[str] = semver.sort_versions(unique)
    else:
        chunks = [semver.sort_versions(unique[i:i + _SORT_CHUNK])
                  for i in range(0, len(unique), _SORT_CHUNK)]
        ordered = heapq.merge(*chunks, key=semver.sort_key)
    return "".join(v + "\n" for v in ordered).encode()


def _retrieve(fut: asyncio.Future[Any]) -> None:
    """Consume the outcome of background work nobody awaits any more (no 'never retrieved')."""
    if not fut.cancelled():
        fut.exception()


class AccessRecorder(Protocol):
    def touch(self, key: str) -> None:
        """A stored artifact was asked for (gc ranks by last use)."""

    def hit(self, key: str) -> None:
        """A mutable answer was asked for (hot lists are revalidated before they expire)."""


@dataclass
class Checksums:
    """The checksum databases the service answers to: a proxy for clients, the verifier of public
    modules (None when verification is off) and the private database we host (if any)."""

    proxy: SumdbProxy | None = None
    verifier: ChecksumVerifier | None = None
    private: PrivateSumdb | None = None


class ModuleService:
    def __init__(self, settings: Settings, store: Store, chain: Chain, *, work: WorkDir,
                 policy: ModulePolicy | None = None, direct_chain: Chain | None = None,
                 checksums: Checksums | None = None, access: AccessRecorder | None = None,
                 supply: SupplyChain | None = None,
                 health: HealthRegistry | None = None, prober: Prober | None = None,
                 gate: ModuleGate | None = None,
                 coordination: Coordination | None = None) -> None:
        self.settings = settings
        # Upstream health records (breakers, latency) and the task that probes them.
        self.health = health
        self.prober = prober
        self._probing: asyncio.Task[None] | None = None
        self.started = time.time()
        self.store = store
        self.work = work
        # What this process shares with its siblings and other replicas (cache/coordination/):
        # single-flight across replicas on top of the in-process one, not-found answers, who
        # revalidates a stale list, news of published/blocked/removed versions.
        self.coordination = coordination or Coordination()
        self.flight_lock = self.coordination.flight
        self._changes = self.coordination.changes
        self.chain = chain
        # Modules matching noproxy (or private) are fetched only from version control, never asked
        # of an upstream proxy (go.dev/ref/mod#private-modules).
        self.direct_chain = direct_chain or chain
        self.policy = policy or ModulePolicy()
        self.checksums = checksums or Checksums()
        self.supply = supply  # provenance records, licence policy (supply/)
        self.gate = gate or ModuleGate()  # blocks, allow/deny lists (gate.py)
        self.memory: ByteLRU[Artifact] = ByteLRU(settings.memory_cache_bytes)
        self.flights: SingleFlight[Artifact] = SingleFlight()
        self.negative = NegativeCache(settings.negative_ttl, NEGATIVE_CACHE_BYTES)
        # Refused (tampered, rule-breaking) artifacts: not fetched again for refusal_ttl.
        self.refusals = NegativeCache(settings.refusal_ttl, NEGATIVE_CACHE_BYTES)
        # Headers/ETag of stored zips, keyed by (key, size, mtime): a hot zip costs a stat, not a hash.
        self._zip_artifacts: ByteLRU[Artifact] = ByteLRU(ZIP_ARTIFACTS_BYTES)
        self._remote_stats: ByteLRU[tuple[float, ObjectInfo]] | None = \
            ByteLRU(ZIP_ARTIFACTS_BYTES) if getattr(store, "remote", False) else None
        self._refreshing: set[asyncio.Task[None]] = set()
        self._warming: asyncio.Task[None] | None = None
        # Last use of stored versions, for gc (ops/journal.py): a dict write per request.
        self.access = access

    def chain_for(self, module: str) -> Chain:
        return self.direct_chain if self.policy.is_noproxy(module) else self.chain

    # -- entry point -------------------------------------------------------------------------

    async def get(self, ref: ArtifactRef) -> Artifact:
        changes = self._changes
        if changes is not None and changes.changed():  # a sibling worker published/blocked/removed
            self.forget(None)
        if self.gate.active:  # blocks or allow/deny lists exist (modvault.gate)
            return await self._gated(ref)
        return await self._dispatch(ref)

    def _dispatch(self, ref: ArtifactRef) -> Awaitable[Artifact]:
        if ref.kind is Kind.LIST:
            key = keys.list_key(ref.escaped_module)
            return self._mutable(ref, key, lambda: self._fetch_list(ref, key))
        if ref.kind is Kind.LATEST:
            key = keys.latest_key(ref.escaped_module)
            return self._mutable(ref, key, lambda: self._fetch_latest(ref, key))
        if ref.kind is Kind.INFO and not ref.canonical:
            key = keys.query_key(ref.escaped_module, ref.escaped_version)
            return self._mutable(ref, key, lambda: self._fetch_query(ref, key))
        return self._immutable(ref)

    async def _gated(self, ref: ArtifactRef) -> Artifact:
        """Denied modules and blocked versions answer 403 with the reason; list hides blocked
        versions; @latest and queries that resolve to a blocked version are refused too."""
        gate = self.gate
        if not gate.loaded:  # the stored blocks, read once before the first answer
            await gate.refresh()
        gate.check(ref.module, ref.version if ref.canonical else "")
        art = await self._dispatch(ref)
        if ref.kind is Kind.LIST:
            hidden = gate.blocked_versions(ref.module)
            if hidden and art.body is not None:
                kept = [v for v in art.body.decode("utf-8", "replace").split() if v not in hidden]
                data = format_list(kept)
                return Artifact(Kind.LIST, len(data), etag_of(data), art.mtime, False, body=data,
                                tier=art.tier, upstream=art.upstream)
        elif (ref.kind is Kind.LATEST or not ref.canonical) and art.body is not None \
                and gate.blocked_versions(ref.module):
            try:
                resolved = json.loads(art.body).get("Version", "")
            except (ValueError, AttributeError):
                resolved = ""
            if isinstance(resolved, str) and resolved:
                gate.check(ref.module, resolved)
        return art

    async def note_published(self, module: str, version: str) -> None:
        """A version was just published: forget not-found answers about it and rebuild ``list``
        (and ``@latest``, if one is stored) now, so it appears at once, here and (told through
        coordination) everywhere else. Forgetting alone is not enough: the stored answers are
        still fresh by their age, and every process would read them back from the store."""
        change = Change("publish", module, version)
        self.forget(change)
        if self.coordination.negative is not None:
            await self.coordination.negative.delete(_change_keys(change))
        emod = escape_path(module)
        ref = ArtifactRef(module, emod, Kind.LIST)
        key = keys.list_key(emod)
        await self._fetch_mutable(ref, key, lambda: self._fetch_list(ref, key))
        latest = ArtifactRef(module, emod, Kind.LATEST)
        latest_key = keys.latest_key(emod)
        if await self.store.stat(latest_key) is not None:
            await self._fetch_mutable(latest, latest_key,
                                      lambda: self._fetch_latest(latest, latest_key))
        if self._changes is not None:
            await self._changes.announce(change)

    async def announce(self, change: Change) -> None:
        """A change made here (block, unblock, removal): apply it, then tell the others."""
        self.forget(change)
        if self.coordination.negative is not None:
            await self.coordination.negative.delete(_change_keys(change))
        if self._changes is not None:
            await self._changes.announce(change)

    def forget(self, change: Change | None) -> None:
        """Drop what a change makes wrong from this process's caches (None: everything), and
        make the next request reread the blocks. Synchronous, so no request slips in between.
        A change without a module (gc removed many versions) counts as "everything"."""
        if change is None or not change.module:
            self.memory.clear()
            self.negative.clear()
            self._zip_artifacts.clear()
            if self._remote_stats is not None:
                self._remote_stats.clear()
        else:
            for key in _change_keys(change):
                self.memory.pop(key)
                self.negative.pop(key)
                if self._remote_stats is not None:
                    self._remote_stats.pop(key)
        if self.gate.store is not None:
            self.gate.loaded = False
            self.gate.active = True

    # -- immutable artifacts -----------------------------------------------------------------

    async def _immutable(self, ref: ArtifactRef) -> Artifact:
        key = keys.artifact_key(ref.escaped_module, ref.escaped_version, ref.kind.value)
        if self.access is not None:
            self.access.touch(key)
        if ref.kind is not Kind.ZIP:
            hit = self.memory.get(key)
            if hit is not None:
                metrics.cache_lookup("memory", "hit")
                return hit
            metrics.cache_lookup("memory", "miss")
        obj = await self.store.stat(key) if self._remote_stats is None or ref.kind is not Kind.ZIP \
            else await self._stat_remote_zip(key)
        if obj is not None:
            metrics.cache_lookup("store", "hit")
            return await self._from_store(ref.kind, obj, immutable=True)
        metrics.cache_lookup("store", "miss")
        self._check_negative(key)
        if self.coordination.negative is not None:
            await self._check_shared_negative(key)
        if self.settings.offline:
            raise NotFound(f"{ref.module}@{ref.version}: not in cache (offline mode)")
        art, shared = await self.flights.do(key, lambda: self._fetch_coordinated(ref, key))
        if shared:
            metrics.SINGLEFLIGHT_WAITS.labels(ref.kind.value).inc()
        return art

    async def _stat_remote_zip(self, key: str) -> ObjectInfo | None:
        assert self._remote_stats is not None
        now = time.monotonic()
        hit = self._remote_stats.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        obj = await self.store.stat(key)
        if obj is not None:
            self._remote_stats.put(key, (now + REMOTE_STAT_TTL, obj), 2 * len(key) + 300)
        return obj

    async def _fetch_coordinated(self, ref: ArtifactRef, key: str) -> Artifact:
        """One fetch across replicas: hold the lease and fetch, or wait (bounded) for the replica
        that holds it and serve what it stored; take over when it gave up or died."""
        deadline = time.monotonic() + self.settings.upstream_total_timeout
        while True:
            lease = await self.flight_lock.acquire(key)
            if lease is not None:
                break
            await self.flight_lock.wait(key, max(0.0, deadline - time.monotonic()))
            obj = await self.store.stat(key)
            if obj is not None:
                return await self._from_store(ref.kind, obj, immutable=True)
            if time.monotonic() >= deadline:
                raise Unavailable(f"{ref.module}@{ref.version}: another replica is still fetching it")
        try:
            if not isinstance(self.flight_lock, LocalFlightLock):
                obj = await self.store.stat(key)  # stored by another replica since we looked
                if obj is not None:
                    return await self._from_store(ref.kind, obj, immutable=True)
            return await self._fetch_immutable(ref, key)
        finally:
            await lease.release()

    async def _fetch_immutable(self, ref: ArtifactRef, key: str) -> Artifact:
        await self.chain.ready()  # the upstream client, made off the loop (sources/lazyclient.py)
        try:
            if ref.kind is Kind.ZIP:
                return await self._fetch_zip(ref, key)
            chain = self.chain_for(ref.module)
            if ref.kind is Kind.INFO:
                data, source = await chain.info(ref.module, ref.version)
            else:
                data, source = await chain.mod(ref.module, ref.version)
                await self._vouch(ref, mod_h1=await _off_loop_if_big(hash_gomod, data))
        except (NotFound, Gone) as exc:
            await self._remember_negative(key, exc)
            raise
        except (InvalidContent, SecurityError, Forbidden) as exc:  # Forbidden: supply policy
            if isinstance(exc, InvalidContent):
                metrics.REJECTED_CONTENT.labels(ref.kind.value).inc()
            self._remember_refusal(key, exc)
            raise
        obj, written = await self.store.put_if_absent(key, data)
        if not written:  # another process stored it first: theirs is the truth
            return await self._from_store(ref.kind, obj, immutable=True)
        art = Artifact(ref.kind, len(data), obj.etag, obj.mtime, True,
                       body=data, tier="upstream", upstream=source)
        self._remember(key, art)
        return art

    async def _fetch_zip(self, ref: ArtifactRef, key: str) -> Artifact:
        """One pass over a new zip's bytes: hashed (SHA-256, the ETag) and its entries inflated and
        hashed (module/zipstream.py) as it downloads, then the zip rules checked over the central
        directory (reading again only what the scan could not) while the file is fsynced; the
        checksum database is asked during the download; the store links the file without
        hashing or syncing it."""
        tmp = self.work.temp_path()
        lookup = self._early_lookup(ref)
        syncing: asyncio.Future[None] | None = None
        try:
            slot = ScanSlot(ZipStreamScan)
            scanning = DOWNLOAD_SCAN.set(slot)
            try:
                sha256, source = await self.chain_for(ref.module).zip(ref.module, ref.version, tmp)
            finally:
                DOWNLOAD_SCAN.reset(scanning)
            scan = slot.scanner_for(sha256)
            streamed = scan.entries if isinstance(scan, ZipStreamScan) else None
            syncing = asyncio.get_running_loop().run_in_executor(None, fsync_file, tmp)
            try:
                zip_h1, facts = await asyncio.to_thread(self._check_zip_file, tmp, ref, sha256,
                                                        streamed)
            except ZipError as exc:
                metrics.REJECTED_CONTENT.labels("zip").inc()
                raise InvalidContent(f"{source}: zip {ref.module}@{ref.version}: {exc}") from None
            if self.supply is not None:
                self.supply.check_policy(ref.module, ref.version, facts.licence)
            proof = await self._vouch(ref, zip_h1=zip_h1, lookup=lookup)
            await syncing
            obj, written = await self.store.put_if_absent(key, StagedFile(tmp, facts.sha256))
        finally:
            for pending in (lookup, syncing):
                if pending is not None and not pending.done():
                    pending.cancel()
                    pending.add_done_callback(_retrieve)
            discard(tmp)
        if self.supply is not None and written:
            await self._record_provenance(ref, source, zip_h1, facts, proof)
        art = await self._from_store(Kind.ZIP, obj, immutable=True)
        return dataclasses.replace(art, tier="upstream", upstream=source)

    def _early_lookup(self, ref: ArtifactRef) -> asyncio.Task[RecordHashes] | None:
        """The checksum database's record of ref's version, asked now so that the lookup runs
        while the zip downloads (_vouch uses its outcome)."""
        verifier = self.checksums.verifier
        if verifier is None or self.policy.is_nosumdb(ref.module):
            return None
        task = asyncio.get_running_loop().create_task(verifier.record(ref.module, ref.version))
        task.add_done_callback(_retrieve)  # its failure is reported by _vouch, or not needed
        return task

    @staticmethod
    def _check_zip_file(path: Path, ref: ArtifactRef, sha256: str | None,
                        streamed: Mapping[int, StreamedEntry] | None = None
                        ) -> tuple[str, ZipFacts]:
        licence_files = LicenceFiles()
        summary = check_zip(path, ref.module, ref.version, streamed, keep=licence_files)
        metrics.ZIP_ENTRIES_CHECKED.labels("download").inc(summary.from_scan)
        metrics.ZIP_ENTRIES_CHECKED.labels("file").inc(summary.from_file)
        digest = (sha256, os.stat(path).st_size) if sha256 else None
        return summary.h1, zip_facts(path, ref.module, ref.version, digest,
                                     licence_files.licence(summary.kept))

    async def _record_provenance(self, ref: ArtifactRef, source: str, zip_h1: str, facts: ZipFacts,
                                 proof: Verification) -> None:
        """Keep where a newly stored zip came from and how it was checked (supply/)."""
        assert self.supply is not None
        info: bytes | None = None
        try:
            mod = (await self._immutable(dataclasses.replace(ref, kind=Kind.MOD))).body or b""
            try:
                info = (await self._immutable(dataclasses.replace(ref, kind=Kind.INFO))).body
            except ModvaultError:
                info = None  # the origin then names the source only
            await self.supply.record(ref.module, ref.version, origin=origin_from_info(source, info),
                                     zip_h1=zip_h1, facts=facts, mod=mod, mod_h1=hash_gomod(mod),
                                     verification=proof)
        except (ModvaultError, OSError) as exc:
            LOG.error("no provenance record for %s@%s: %s", ref.module, ref.version, exc)

    # -- checksum databases ------------------------------------------------------------------

    async def _vouch(self, ref: ArtifactRef, *, zip_h1: str | None = None,
                     mod_h1: str | None = None,
                     lookup: Awaitable[RecordHashes] | None = None) -> Verification:
        """Before a new .mod/.zip is stored: the public checksum database must agree with it, or,
        for modules exempt from it (nosumdb), our private database records it. Raises
        SecurityError (nothing is stored) on any disagreement; returns what was proven."""
        if self.policy.is_nosumdb(ref.module):
            private = self.checksums.private
            if private is not None and zip_h1 is not None:
                mod_ref = dataclasses.replace(ref, kind=Kind.MOD)
                mod = await self._immutable(mod_ref)
                assert mod.body is not None
                rid = await private.add(ref.module, ref.version, zip_h1, hash_gomod(mod.body))
                tree = private.tree()
                return verification_of(None, private=private.name, private_size=tree.N,
                                       private_root=tree.Hash, private_id=rid)
            return verification_of(None, why_none="exempt (nosumdb); no private database hosted")
        verifier = self.checksums.verifier
        if verifier is None:
            return verification_of(None, why_none="checksum verification off (sumdb_verify)")
        try:
            proof = await verifier.verify(ref.module, ref.version, zip_h1=zip_h1, mod_h1=mod_h1,
                                          lookup=lookup)
        except SecurityError:
            metrics.REJECTED_CONTENT.labels(ref.kind.value).inc()
            raise
        return verification_of(proof)

    async def ensure_recorded(self, module: str, version: str) -> None:
        """For a lookup in our private database: fetch (and check) module@version, then record it.

        The go command uses one checksum database for every module, so this serves public
        modules too: they are verified against the public database first, then recorded."""
        private = self.checksums.private
        if private is None:
            return
        try:
            check(module, version)
        except ModuleError as exc:
            raise NotFound(f"{module}@{version}: {exc}") from None
        emod, ever = escape_path(module), escape_version(version)
        zip_art = await self.get(ArtifactRef(module, emod, Kind.ZIP, version, ever, True))
        mod_art = await self.get(ArtifactRef(module, emod, Kind.MOD, version, ever, True))
        assert mod_art.body is not None
        zip_h1 = await self._hash_stored_zip(zip_art)
        await private.add(module, version, zip_h1, hash_gomod(mod_art.body))

    async def _hash_stored_zip(self, art: Artifact) -> str:
        """The h1: hash of a stored zip: from its local file, or a copy in the work directory."""
        if art.path is not None:
            return await asyncio.to_thread(hash_zip, art.path)
        assert art.blob is not None
        tmp = self.work.temp_path("hash-")
        try:
            with open(tmp, "wb") as fh:
                async for chunk in art.blob.stream():
                    await asyncio.to_thread(fh.write, chunk)
            return await asyncio.to_thread(hash_zip, tmp)
        finally:
            discard(tmp)

    async def _from_store(self, kind: Kind, obj: ObjectInfo, *, immutable: bool) -> Artifact:
        if kind is Kind.ZIP:
            # Zips are never read whole: sent from the local file (sendfile/pread) or streamed from
            # the store. Their Artifact (headers included) is kept per (key, size, mtime, ETag), so
            # a hot zip costs one stat per request.
            ekey = f"{obj.key}\0{obj.size}\0{obj.mtime}\0{obj.etag}"
            cached = self._zip_artifacts.get(ekey)
            if cached is not None:
                return cached
            if obj.local_path is not None:
                art = Artifact(kind, obj.size, obj.etag, obj.mtime, immutable, path=obj.local_path)
            else:
                body = await self.store.open(obj.key)
                if body is None:
                    raise NotFound(f"{obj.key}: removed from the store")
                art = Artifact(kind, obj.size, obj.etag, obj.mtime, immutable, blob=body)
            self._zip_artifacts.put(ekey, art, 2 * len(ekey) + 512)
            return art
        # The store reads (and, for stores without kept ETags, hashes) off the event loop.
        got = await self.store.get(obj.key)
        if got is None:
            raise NotFound(f"{obj.key}: removed from the store")
        data, info = got
        art = Artifact(kind, len(data), info.etag, info.mtime, immutable, body=data)
        self._remember(obj.key, art)
        return art

    def _remember(self, key: str, art: Artifact) -> None:
        """Keep a copy in the memory tier; the copy is what later hits return (tier "memory")."""
        if art.body is not None and art.size <= self.settings.memory_item_max_bytes:
            self.memory.put(key, dataclasses.replace(art, tier="memory", upstream=""),
                            memory_entry_bytes(key, art))

    # -- negative answers --------------------------------------------------------------------

    def _check_negative(self, key: str) -> None:
        try:
            self.negative.check(key)
        except ModvaultError:
            metrics.cache_lookup("negative", "hit")
            raise
        try:
            self.refusals.check(key)
        except ModvaultError:
            metrics.REFUSALS.labels("hit").inc()
            raise

    async def _check_shared_negative(self, key: str) -> None:
        """Another replica's not-found answer for *key*, if it is still fresh (Redis)."""
        assert self.coordination.negative is not None
        got = await self.coordination.negative.get(key)
        if got is not None:
            cls = _SHARED_NEGATIVE.get(got[0])
            if cls is not None:
                metrics.cache_lookup("negative", "hit")
                raise cls(got[1])

    async def _remember_negative(self, key: str, exc: ModvaultError) -> None:
        self.negative.remember(key, exc)
        if self.coordination.negative is not None and type(exc).__name__ in _SHARED_NEGATIVE:
            await self.coordination.negative.put(key, type(exc).__name__, exc.message,
                                                 self.settings.negative_ttl)

    def _remember_refusal(self, key: str, exc: ModvaultError) -> None:
        """A refused artifact is not fetched again on every request; after refusal_ttl it is
        fetched and checked anew (the upstream may have been fixed)."""
        if self.settings.refusal_ttl > 0:
            metrics.REFUSALS.labels("remembered").inc()
            self.refusals.remember(key, exc)

    # -- mutable answers ---------------------------------------------------------------------

    async def _mutable(self, ref: ArtifactRef, key: str,
                       fetch: Callable[[], Awaitable[Artifact]]) -> Artifact:
        if self.access is not None:
            self.access.hit(key)
        cached = self.memory.get(key)
        tier = "memory"
        if cached is None:
            obj = await self.store.stat(key)
            if obj is not None:
                cached = await self._from_store(ref.kind, obj, immutable=False)
                tier = "store"
        if cached is not None:
            age = time.time() - cached.mtime
            if self.settings.offline or age < self.settings.mutable_ttl:
                metrics.cache_lookup(tier, "hit")
                return cached
            if tier == "memory":  # a sibling worker or another replica may have refreshed it
                obj = await self.store.stat(key)
                if obj is not None and (obj.etag, obj.mtime) != (cached.etag, cached.mtime):
                    cached = await self._from_store(ref.kind, obj, immutable=False)
                    tier = "store"
                    age = time.time() - cached.mtime
                    if age < self.settings.mutable_ttl:
                        metrics.cache_lookup(tier, "hit")
                        return cached
            metrics.cache_lookup(tier, "stale")
            if age < self.settings.mutable_ttl + self.settings.mutable_max_stale:
                # One replica revalidates; the others serve stale until its answer is stored.
                if await self.coordination.freshness.claim(key, self.settings.mutable_ttl):
                    self._refresh_in_background(key, fetch)
                return cached
            try:  # too old to serve without trying: revalidate now, stale only if that fails
                return await self._fetch_mutable(ref, key, fetch)
            except Unavailable:
                return cached
        metrics.cache_lookup("store", "miss")
        self._check_negative(key)
        if self.coordination.negative is not None:
            await self._check_shared_negative(key)
        if self.settings.offline:
            if ref.kind is Kind.LIST:
                return await self._list_from_store(ref)
            raise NotFound(f"{ref.module}: not in cache (offline mode)")
        try:
            return await self._fetch_mutable(ref, key, fetch)
        except Unavailable:
            if ref.kind is Kind.LIST:
                fallback = await self._list_from_store(ref)
                if fallback.size:
                    return fallback
            raise

    async def _fetch_mutable(self, ref: ArtifactRef, key: str,
                             fetch: Callable[[], Awaitable[Artifact]]) -> Artifact:
        await self.chain.ready()
        try:
            art, shared = await self.flights.do(key, fetch)
        except (NotFound, Gone) as exc:
            await self._remember_negative(key, exc)
            raise
        if shared:
            metrics.SINGLEFLIGHT_WAITS.labels(ref.kind.value).inc()
        return art

    def _refresh_in_background(self, key: str, fetch: Callable[[], Awaitable[Artifact]]) -> None:
        if self.flights.inflight(key):
            return

        async def refresh() -> None:
            try:
                await self.chain.ready()
                await self.flights.do(key, fetch)
            except ModvaultError as exc:
                LOG.info("background refresh of %s failed: %s", key, exc.message)

        task = asyncio.get_running_loop().create_task(refresh())
        self._refreshing.add(task)
        task.add_done_callback(self._refreshing.discard)

    async def _store_mutable(self, kind: Kind, key: str, data: bytes, source: str) -> Artifact:
        obj = await self.store.put(key, data)
        art = Artifact(kind, len(data), obj.etag, obj.mtime, False, body=data,
                       tier="upstream", upstream=source)
        self._remember(key, art)
        self.negative.pop(key)
        return art

    async def _fetch_list(self, ref: ArtifactRef, key: str) -> Artifact:
        versions, source = await self.chain_for(ref.module).list(ref.module)
        # Sorting a long list by semver takes seconds: off the event loop.
        data = format_list(versions) if len(versions) < 1000 else \
            await asyncio.to_thread(format_list, versions)
        return await self._store_mutable(Kind.LIST, key, data, source)

    async def _fetch_latest(self, ref: ArtifactRef, key: str) -> Artifact:
        data, source = await self.chain_for(ref.module).latest(ref.module)
        return await self._store_mutable(Kind.LATEST, key, data, source)

    async def _fetch_query(self, ref: ArtifactRef, key: str) -> Artifact:
        data, source = await self.chain_for(ref.module).info(ref.module, ref.version)
        return await self._store_mutable(Kind.INFO, key, data, source)

    async def _list_from_store(self, ref: ArtifactRef) -> Artifact:
        """Versions we hold (any of .info/.mod/.zip), for when no upstream can answer."""
        names = await self.store.list(f"{ref.escaped_module}/@v/")
        stale = await self.store.get(keys.list_key(ref.escaped_module))

        def build() -> bytes:  # parsing and sorting a long list: off the event loop
            versions: set[str] = set()
            for k in names:
                name = k.rsplit("/", 1)[-1]
                stem, _, ext = name.rpartition(".")
                if ext not in ("info", "mod", "zip"):
                    continue
                try:
                    v = unescape_version(stem)
                    check(ref.module, v)
                except ModuleError:
                    continue
                if not is_pseudo_version(v):
                    versions.add(v)
            if stale is not None:
                versions.update(stale[0].decode("utf-8", "replace").split())
            return format_list(sorted(versions))

        data = await asyncio.to_thread(build)
        return Artifact(Kind.LIST, len(data), await _off_loop_if_big(etag_of, data), time.time(), False,
                        body=data, tier="store")

    async def revalidate(self, ref: ArtifactRef) -> Artifact:
        """Fetch a mutable answer (list, @latest, query) from the sources now, whatever its age:
        for push refreshes (a webhook after a tag) and hot lists refreshed before they expire."""
        if ref.kind is Kind.LIST:
            key = keys.list_key(ref.escaped_module)
            return await self._fetch_mutable(ref, key, lambda: self._fetch_list(ref, key))
        if ref.kind is Kind.LATEST:
            key = keys.latest_key(ref.escaped_module)
            return await self._fetch_mutable(ref, key, lambda: self._fetch_latest(ref, key))
        if ref.kind is Kind.INFO and not ref.canonical:
            key = keys.query_key(ref.escaped_module, ref.escaped_version)
            return await self._fetch_mutable(ref, key, lambda: self._fetch_query(ref, key))
        raise ValueError(f"not a mutable answer: {ref}")

    # -- operations --------------------------------------------------------------------------

    async def ready(self) -> tuple[bool, str]:
        """Readiness: online, the store takes writes and some upstream route works (breaker closed
        and answering, see Chain.probe); offline, the store is readable."""
        if self.settings.offline:
            root = getattr(self.store, "root", None)
            if root is not None and not await asyncio.to_thread(os.access, root, os.R_OK | os.X_OK):
                return False, "store not readable"
            _, coordination = await self.flight_lock.probe()
            return True, f"ready (offline); {coordination}"
        if not await self.store.writable():
            return False, "store not writable"
        _, coordination = await self.flight_lock.probe()
        ok, why = await self.chain.probe()
        return ok, ("ready: " if ok else "no upstream reachable: ") + why + f"; {coordination}"

    def start(self) -> None:
        """Start background work (health probes, news from other replicas) on the running event
        loop; idempotent."""
        if self.prober is not None and self._probing is None:
            self._probing = asyncio.get_running_loop().create_task(self.prober.run())
        if self._changes is not None:
            self._changes.start(self.forget)
        if not self.settings.offline and self._warming is None:
            # A server that may fetch makes its upstream client now, off the loop, so the first
            # miss does not wait for it; an offline one never loads it (sources/lazyclient.py).
            self._warming = asyncio.get_running_loop().create_task(self._warm_client())

    async def _warm_client(self) -> None:
        try:
            await self.chain.ready()
        except Unavailable as exc:
            LOG.warning("%s", exc.message)

    async def aclose(self) -> None:
        for task in list(self._refreshing):
            task.cancel()
        if self._warming is not None:
            self._warming.cancel()
        if self._probing is not None:
            self._probing.cancel()
            self._probing = None
        if self.prober is not None:
            await self.prober.aclose()
        await self.chain.aclose()
        if self.direct_chain is not self.chain:
            await self.direct_chain.aclose()
        if self.checksums.private is not None:
            self.checksums.private.close()
        await self.store.aclose()
        await self.coordination.aclose()
