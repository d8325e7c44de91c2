"""Shared state between replicas on a real Redis: not-found answers, who revalidates a stale list,
rate-limit buckets, news of changes, the private log's one writer; and each one's fall-back to
per-process behaviour when Redis goes away. Two in-process services stand for two replicas: they
share one store directory and one Redis, and ask a real (counting) upstream over a socket."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from modvault.artifact import ArtifactRef, Kind
from modvault.cache.coordination.redis import FALLBACKS, RedisLink
from modvault.cache.coordination.redis_state import RedisRateLimiter, RedisWriterLease
from modvault.cache.coordination.state import Change, LocalChanges
from modvault.config import Settings
from modvault.errors import CoordinationError, NotFound
from modvault.service import ModuleService
from modvault.wiring import build_service
from tests.support.redis_server import RedisServer
from tests.support.upstream_server import TestUpstreamServer

MOD = "example.com/shared"
LIST = f"/{MOD}/@v/list"
MISSING = f"/{MOD}/@v/v1.9.9.info"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    yield server
    server.stop()


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[TestUpstreamServer]:
    d = tmp_path / "proxy" / MOD / "@v"
    d.mkdir(parents=True)
    (d / "list").write_text("v1.0.0\n")
    (d / "v1.0.0.info").write_text('{"Version":"v1.0.0","Time":"2024-01-01T00:00:00Z"}')
    srv = TestUpstreamServer(tmp_path / "proxy").start()
    yield srv
    srv.stop()


def _settings(tmp_path: Path, upstream: str, coordination: str, **extra: object) -> Settings:
    return Settings(data_dir=str(tmp_path / "data"), upstream=upstream, coordination=coordination,
                    sumdb_verify=False, upstream_probe_interval=0.0, **extra)  # type: ignore[arg-type]


@asynccontextmanager
async def _replicas(settings: Settings, n: int = 2) -> AsyncIterator[list[ModuleService]]:
    services = [build_service(settings) for _ in range(n)]
    for s in services:
        s.start()
    try:
        yield services
    finally:
        for s in services:
            await s.aclose()


def _list_ref() -> ArtifactRef:
    return ArtifactRef(MOD, MOD, Kind.LIST)


def _missing_ref() -> ArtifactRef:
    return ArtifactRef(MOD, MOD, Kind.INFO, "v1.9.9", "v1.9.9", True)


@pytest.mark.parametrize("shared", [True, False])
def test_not_found_answers_are_shared(tmp_path: Path, redis_server: RedisServer,
                                      upstream: TestUpstreamServer, shared: bool) -> None:
    settings = _settings(tmp_path, upstream.url, redis_server.url if shared else "local")

    async def main() -> None:
        async with _replicas(settings) as (a, b):
            with pytest.raises(NotFound):
                await a.get(_missing_ref())
            with pytest.raises(NotFound):
                await b.get(_missing_ref())

    asyncio.run(main())
    # With Redis the second replica answered from the first one's not-found answer.
    assert upstream.count(MISSING) == (1 if shared else 2)


def test_publish_clears_shared_not_found(tmp_path: Path, redis_server: RedisServer,
                                         upstream: TestUpstreamServer) -> None:
    settings = _settings(tmp_path, upstream.url, redis_server.url)

    async def main() -> None:
        async with _replicas(settings) as (a, b):
            with pytest.raises(NotFound):
                await a.get(_missing_ref())
            (Path(upstream.root) / MISSING.lstrip("/")).write_text(
                '{"Version":"v1.9.9","Time":"2024-01-01T00:00:00Z"}')
            await a.announce(Change("publish", MOD, "v1.9.9"))
            art = await b.get(_missing_ref())
            assert art.body is not None and b"v1.9.9" in art.body

    asyncio.run(main())


@pytest.mark.parametrize("shared", [True, False])
def test_one_replica_revalidates_a_stale_list(tmp_path: Path, redis_server: RedisServer,
                                              upstream: TestUpstreamServer, shared: bool) -> None:
    settings = _settings(tmp_path, upstream.url, redis_server.url if shared else "local",
                         mutable_ttl=1.0, mutable_max_stale=600.0)

    async def main() -> None:
        async with _replicas(settings, 3) as services:
            for s in services:
                await s.get(_list_ref())
            assert upstream.count(LIST) == 1  # the others read the stored list
            await asyncio.sleep(1.3)
            (Path(upstream.root) / LIST.lstrip("/")).write_text("v1.0.0\nv1.1.0\n")
            # All stale at once: with Redis one claims the refresh, the others serve stale.
            await asyncio.gather(*(s.get(_list_ref()) for s in services))
            for s in services:
                await asyncio.gather(*s._refreshing)
            assert upstream.count(LIST) == (2 if shared else 4)
            # The refreshed list is in the store: a replica whose memory copy is stale reads it
            # from there rather than asking upstream again.
            for s in services:
                art = await s.get(_list_ref())
                assert art.body == b"v1.0.0\nv1.1.0\n"
            assert upstream.count(LIST) == (2 if shared else 4)

    asyncio.run(main())


def test_changes_reach_the_other_replica(tmp_path: Path, redis_server: RedisServer,
                                         upstream: TestUpstreamServer) -> None:
    """A's change (publish) makes B forget its memory copy of the module's list at once."""
    settings = _settings(tmp_path, upstream.url, redis_server.url)

    async def main() -> None:
        a = build_service(settings)
        # B has its own data directory (another machine): only Redis can tell it.
        b = build_service(_settings(tmp_path / "b", upstream.url, redis_server.url))
        b.store = a.store
        for s in (a, b):
            s.start()
        try:
            changes = b.coordination.changes
            await asyncio.wait_for(changes.subscribed.wait(), 10)  # type: ignore[union-attr]
            await b.get(_list_ref())
            assert b.memory.get(f"{MOD}/@v/list") is not None
            await a.announce(Change("publish", MOD, "v1.1.0"))
            deadline = time.monotonic() + 10
            while b.memory.get(f"{MOD}/@v/list") is not None and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert b.memory.get(f"{MOD}/@v/list") is None
        finally:
            await a.aclose()
            await b.aclose()

    asyncio.run(main())


def test_local_changes_reach_sibling_workers(tmp_path: Path) -> None:
    one, two = LocalChanges(tmp_path), LocalChanges(tmp_path)
    assert not one.changed() and not two.changed()
    one.bump()
    assert two.changed() and not two.changed()  # seen once
    assert not one.changed()  # the announcer knows already
    asyncio.run(one.aclose())
    asyncio.run(two.aclose())


def test_rate_limit_buckets_are_shared_and_fall_back(redis_server: RedisServer) -> None:
    async def main() -> None:
        a, b = RedisRateLimiter(RedisLink(redis_server.url)), RedisRateLimiter(RedisLink(redis_server.url))
        waits = [await (a if i % 2 else b).take("token:ci", 0.5, 3) for i in range(4)]
        assert waits[:3] == [0.0, 0.0, 0.0] and waits[3] > 0  # one bucket of 3 across both
        assert await a.take("token:other", 0.5, 3) == 0.0
        redis_server.stop()
        before = FALLBACKS.labels("ratelimit")._value.get()
        assert await a.take("token:ci", 0.5, 3) == 0.0  # per-process bucket now: still limited
        assert FALLBACKS.labels("ratelimit")._value.get() > before
        for _ in range(2):
            await a.take("token:ci", 0.5, 3)
        assert await a.take("token:ci", 0.5, 3) > 0

    asyncio.run(main())


def test_writer_lease_is_exclusive_and_refuses_without_redis(redis_server: RedisServer) -> None:
    async def main() -> None:
        a = RedisWriterLease(RedisLink(redis_server.url), ttl=1.0, wait=10)
        b = RedisWriterLease(RedisLink(redis_server.url), ttl=1.0, wait=0.5)
        order: list[str] = []
        async with a.hold("db"):
            with pytest.raises(CoordinationError, match="held the writer lease"):
                async with b.hold("db"):
                    order.append("b")
            await asyncio.sleep(1.5)  # renewed past its ttl: still ours
            with pytest.raises(CoordinationError):
                async with b.hold("db"):
                    order.append("b")
        async with b.hold("db"):
            order.append("b after a")
        assert order == ["b after a"]
        redis_server.stop()
        with pytest.raises(CoordinationError, match="unreachable"):
            async with a.hold("db"):
                order.append("no redis")
        assert order == ["b after a"]

    asyncio.run(main())


def test_redis_outage_degrades_to_local_behaviour(tmp_path: Path, redis_server: RedisServer,
                                                  upstream: TestUpstreamServer) -> None:
    """With Redis gone mid-run every shared piece answers as the local one would: not-found is
    still 404 (remembered per process), stale lists are still revalidated, nothing raises."""
    settings = _settings(tmp_path, upstream.url, redis_server.url, mutable_ttl=1.0,
                         mutable_max_stale=600.0)

    async def main() -> None:
        async with _replicas(settings) as (a, b):
            await a.get(_list_ref())
            redis_server.stop()
            before = {op: FALLBACKS.labels(op)._value.get() for op in ("negative", "freshness")}
            for s in (a, b):
                with pytest.raises(NotFound):
                    await s.get(_missing_ref())
                with pytest.raises(NotFound):  # the per-process negative cache still answers
                    await s.get(_missing_ref())
            assert upstream.count(MISSING) == 2  # once per replica, no longer shared
            await asyncio.sleep(1.3)
            (Path(upstream.root) / LIST.lstrip("/")).write_text("v1.0.0\nv1.2.0\n")
            await a.get(_list_ref())  # stale: a revalidates it itself
            await asyncio.gather(*a._refreshing)
            assert (await a.get(_list_ref())).body == b"v1.0.0\nv1.2.0\n"
            assert FALLBACKS.labels("negative")._value.get() > before["negative"]
            assert FALLBACKS.labels("freshness")._value.get() > before["freshness"]
            ok, why = await a.flight_lock.probe()
            assert not ok and "degraded" in why

    asyncio.run(main())


def test_commands_announce_to_workers_and_replicas(tmp_path: Path, redis_server: RedisServer,
                                                   upstream: TestUpstreamServer) -> None:
    """What `modvault block/rm/gc` do after changing the store: the mapped token for this machine's
    workers, the channel for every replica; a change without a module makes a service forget all."""
    from modvault.cache.coordination.announce import announce_sync

    settings = _settings(tmp_path, upstream.url, redis_server.url)

    async def main() -> None:
        async with _replicas(settings, 1) as (svc,):
            changes = svc.coordination.changes
            await asyncio.wait_for(changes.subscribed.wait(), 10)  # type: ignore[union-attr]
            await svc.get(_list_ref())
            assert len(svc.memory)
            watcher = LocalChanges(tmp_path / "data")
            await asyncio.to_thread(announce_sync, settings, Change("remove", ""))
            assert watcher.changed()  # the token moved
            deadline = time.monotonic() + 10
            while len(svc.memory) and time.monotonic() < deadline:  # the channel delivered it
                await asyncio.sleep(0.01)
            assert not len(svc.memory)
            await watcher.aclose()

    asyncio.run(main())


def test_supply_policy_refusal_announces_its_block(tmp_path: Path, redis_server: RedisServer,
                                                   upstream: TestUpstreamServer) -> None:
    """A licence or advisory refusal writes a block; it is announced like `modvault block`'s:
    the mapped token moves for this machine's workers and the channel tells every replica, which
    drops what it cached of the module (without it, they reread the blocks within a second)."""
    from modvault.wiring import policy_refusal_recorder

    settings = _settings(tmp_path, upstream.url, redis_server.url)

    async def main() -> None:
        async with _replicas(settings, 2) as (here, there):
            for svc in (here, there):
                await asyncio.wait_for(svc.coordination.changes.subscribed.wait(), 10)  # type: ignore[union-attr]
            await there.get(_list_ref())
            assert len(there.memory)
            watcher = LocalChanges(tmp_path / "data")
            refused = policy_refusal_recorder(settings, here.store)
            await asyncio.to_thread(refused, "supply.licence_denied", MOD, "v1.0.0", "denied")
            assert watcher.changed()  # the token moved once the block was written
            deadline = time.monotonic() + 10
            while len(there.memory) and time.monotonic() < deadline:  # the channel delivered it
                await asyncio.sleep(0.01)
            assert not len(there.memory)
            await watcher.aclose()
        blocks = (tmp_path / "data" / ".modvault" / "policy" / "blocks.json").read_text()
        assert f'"{MOD}"' in blocks and "v1.0.0" in blocks

    asyncio.run(main())
