"""The server side of operations: one background task per worker that keeps the access journal
flushed and compacted, the store totals (for /metrics and the dashboard) and the index feed current,
and runs the optional background gc with the `gc_*` settings."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modvault.artifact import ArtifactRef
from modvault.config import Settings
from modvault.errors import ModvaultError
from modvault.ops import gc
from modvault.ops.hot import Hotness, TokenBucket
from modvault.ops.indexfeed import IndexEntry, IndexLog
from modvault.ops.inventory import StoreTotals, VersionRecord, scan_versions, totals
from modvault.ops.journal import AccessJournal, read_access_times
from modvault.ops.units import parse_duration, parse_size
from modvault.policy import ModulePolicy

LOG = logging.getLogger("modvault.ops")

COMPACT_EVERY = 300.0
COMPACT_BYTES = 4 * 1024 * 1024
SCAN_EVERY = 60.0
HOT_EVERY = 10.0
# A hot answer is revalidated once this fraction of mutable_ttl has passed.
HOT_AGE = 0.75
HOT_PARALLEL = 4
# The loop ticks each second: with a shorter mutable_ttl there is nothing to refresh ahead of.
HOT_MIN_TTL = 4.0
INDEX_FRESH = 2.0


class OpsRuntime:
    def __init__(self, settings: Settings, policy: ModulePolicy, journal: AccessJournal,
                 in_flight: object = None) -> None:
        self.settings = settings
        self.data_dir = Path(settings.data_dir)
        self.policy = policy
        self.journal = journal
        self.index = IndexLog(self.data_dir)
        self.totals = StoreTotals()
        self.totals_at = 0.0
        self.gc_max_bytes = parse_size(settings.gc_max_bytes) if settings.gc_max_bytes else None
        self.gc_unused_for = (parse_duration(settings.gc_unused_for) if settings.gc_unused_for
                              else None)
        self.in_flight = in_flight  # a SingleFlight: keys being fetched right now are never collected
        self.last_gc: gc.GcResult | None = None
        self.service: Any = None  # the ModuleService, set by wiring (revalidates hot answers)
        self.hotness = Hotness(settings.hot_half_life)
        self.budget = TokenBucket(settings.refresh_budget)
        self.hot_refreshed = 0
        self.records: list[VersionRecord] = []  # from the last walk of the store (dashboard)
        self.periodic: list[Callable[[], None]] = []  # cheap callbacks every few seconds (dashboard)
        self._task: asyncio.Task[None] | None = None
        self._index_lock = asyncio.Lock()
        self._scan_lock = asyncio.Lock()
        self._index_at = 0.0

    @property
    def gc_enabled(self) -> bool:
        return self.gc_max_bytes is not None or self.gc_unused_for is not None

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        if self._task is None:
            self._task = (loop or asyncio.get_running_loop()).create_task(self._run())

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        await asyncio.to_thread(self.journal.flush)

    def _is_in_flight(self, key: str) -> bool:
        inflight = getattr(self.in_flight, "inflight", None)
        return bool(inflight(key)) if inflight is not None else False

    async def _run(self) -> None:
        last_flush = last_compact = last_hot = time.monotonic()
        # The first background gc comes 30 s after start (or one interval, if shorter).
        last_gc = time.monotonic() - self.settings.gc_interval + min(30.0, self.settings.gc_interval)
        while True:
            try:
                await asyncio.sleep(1.0)
                self.journal.tick()
                now = time.monotonic()
                hits = self.journal.drain_hits()
                if hits:
                    self.hotness.add(hits, now)
                if now - last_hot >= min(HOT_EVERY, self.settings.mutable_ttl / 4):
                    last_hot = now
                    for callback in self.periodic:
                        callback()
                    await self.refresh_hot()
                if now - last_flush >= self.settings.access_flush_interval:
                    last_flush = now
                    await asyncio.to_thread(self.journal.flush)
                if (now - last_compact >= COMPACT_EVERY
                        or self.journal.journal_bytes() > COMPACT_BYTES):
                    last_compact = now
                    await asyncio.to_thread(self.journal.compact)
                if now - self.totals_at >= SCAN_EVERY:
                    await self.refresh_store()
                if self.gc_enabled and now - last_gc >= self.settings.gc_interval:
                    last_gc = now
                    await self.run_gc()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep the loop alive: a failed pass is retried next time
                LOG.warning("operations task: %s", exc)

    async def refresh_store(self) -> StoreTotals:
        """One walk of the store: totals for metrics, new versions for the index feed."""
        def scan() -> StoreTotals:
            records = scan_versions(self.data_dir, policy=self.policy)
            self.index.refresh(records)
            self.records = records
            mirrors = gc.scan_mirrors(self.data_dir, gc.mirrors_dir(self.settings))
            return totals(records, [(str(m.path), m.bytes, m.last_used) for m in mirrors])

        async with self._scan_lock:  # one walk at a time; a walk's result is as old as its start
            started = time.monotonic()
            self.totals = await asyncio.to_thread(scan)
            self.totals_at = self._index_at = started
        return self.totals

    async def run_gc(self) -> gc.GcResult:
        await asyncio.to_thread(self.journal.flush)

        def collect() -> gc.GcResult:
            access = read_access_times(self.data_dir)
            plan = gc.plan_gc(self.data_dir, max_bytes=self.gc_max_bytes,
                              unused_for=self.gc_unused_for, policy=self.policy,
                              in_use=self._is_in_flight, access=access,
                              git_dir=gc.mirrors_dir(self.settings))
            return gc.execute_gc(self.data_dir, plan, in_use=self._is_in_flight)

        result = await asyncio.to_thread(collect)
        self.last_gc = result
        if result.removed_versions and self.service is not None:
            # Sibling workers and replicas drop what they cached of the removed versions.
            from modvault.cache.coordination.state import Change

            await self.service.announce(Change("remove", ""))
        if result.removed_versions or result.removed_mirrors:
            LOG.info("gc removed %d versions and %d git mirrors, freed %d bytes",
                     len(result.removed_versions), len(result.removed_mirrors), result.freed_bytes)
        await self.refresh_store()
        return result

    async def refresh_hot(self) -> int:
        """Revalidate the hottest mutable answers that will soon expire, within the budget."""
        if (self.service is None or self.settings.offline or self.settings.refresh_budget <= 0
                or self.settings.mutable_ttl < HOT_MIN_TTL):
            return 0
        from modvault.server.routing import parse_artifact_path
        from modvault.storage.keys import QUERY_PREFIX

        wall = time.time()
        due: list[ArtifactRef] = []
        for key, _score in self.hotness.ranked(time.monotonic()):
            obj = await self.service.store.stat(key)
            if obj is not None and wall - obj.mtime < self.settings.mutable_ttl * HOT_AGE:
                continue
            try:
                ref = parse_artifact_path("/" + key.removeprefix(QUERY_PREFIX))
            except ModvaultError:
                continue
            if not self.budget.take():
                break
            due.append(ref)
        sem = asyncio.Semaphore(HOT_PARALLEL)

        async def one(ref: ArtifactRef) -> None:
            async with sem:
                try:
                    await self.service.revalidate(ref)
                    self.hot_refreshed += 1
                except ModvaultError as exc:
                    LOG.info("hot refresh of %s failed: %s", ref.module, exc.message)

        await asyncio.gather(*(one(ref) for ref in due))
        return len(due)

    async def index_page(self, since: float, limit: int) -> list[IndexEntry]:
        """A page of the index feed, after picking up versions stored in the last moments."""
        async with self._index_lock:
            if time.monotonic() - self._index_at >= INDEX_FRESH:
                await self.refresh_store()
        return await asyncio.to_thread(self.index.page, since, limit)
