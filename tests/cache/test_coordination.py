"""Cross-replica single-flight on a real Redis: one holder, waiters woken on release, takeover when
the holder dies (its lease expires), and per-process fallback when Redis is gone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from modvault.cache.coordination.redis import FALLBACKS, RedisFlightLock
from tests.support.redis_server import RedisServer


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    yield server
    server.stop()


def test_one_holder_waiters_wake_on_release(redis_server: RedisServer) -> None:
    async def main() -> None:
        a, b = RedisFlightLock(redis_server.url, ttl=5), RedisFlightLock(redis_server.url, ttl=5)
        lease = await a.acquire("m/@v/v1.0.0.zip")
        assert lease is not None
        assert await b.acquire("m/@v/v1.0.0.zip") is None
        assert await a.acquire("m/@v/v1.0.0.zip") is None  # even the same process: one lease
        assert await b.acquire("other/@v/v1.0.0.zip") is not None

        async def release_soon() -> None:
            await asyncio.sleep(0.3)
            await lease.release()

        started = time.monotonic()
        await asyncio.gather(b.wait("m/@v/v1.0.0.zip", timeout=20), release_soon())
        assert time.monotonic() - started < 10
        assert await b.acquire("m/@v/v1.0.0.zip") is not None
        assert (await a.probe())[0]
        await a.aclose()
        await b.aclose()

    asyncio.run(main())


def test_renewal_keeps_a_long_fetch_and_a_dead_holder_is_taken_over(redis_server: RedisServer) -> None:
    async def main() -> None:
        a, b = RedisFlightLock(redis_server.url, ttl=1), RedisFlightLock(redis_server.url, ttl=1)
        lease = await a.acquire("k")
        assert lease is not None
        await asyncio.sleep(2.5)  # well past the ttl: renewed, still held
        assert await b.acquire("k") is None
        lease._renewer.cancel()  # type: ignore[attr-defined]  # the holder dies: no more renewal
        started = time.monotonic()
        await b.wait("k", timeout=20)
        assert time.monotonic() - started < 10
        assert await b.acquire("k") is not None
        await a.aclose()
        await b.aclose()

    asyncio.run(main())


def test_redis_down_falls_back_to_local_and_reports_it(redis_server: RedisServer) -> None:
    async def main() -> None:
        lock = RedisFlightLock(redis_server.url, ttl=5)
        assert (await lock.probe()) == (True, "coordination: redis")
        redis_server.stop()
        before = FALLBACKS.labels("acquire")._value.get()
        lease = await lock.acquire("k")
        assert lease is not None  # a local lease: this replica fetches on its own
        await lease.release()
        assert FALLBACKS.labels("acquire")._value.get() > before
        ok, why = await lock.probe()
        assert not ok and "unreachable" in why
        started = time.monotonic()
        await lock.wait("k", timeout=30)  # never hangs on a dead Redis
        assert time.monotonic() - started < 15
        redis_server.start()
        assert (await lock.probe())[0]
        assert await lock.acquire("k2") is not None
        await lock.aclose()

    asyncio.run(main())
