"""The private log's one writer across replicas, on a real Redis: two replicas' databases appending
at once take turns (one consistent log), and with Redis stopped mid-test appends are refused with
a 503 naming the cause while records already in the log are still answered."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from modvault.cache.coordination.redis import RedisLink
from modvault.cache.coordination.redis_state import RedisWriterLease
from modvault.errors import CoordinationError
from modvault.storage.fs import FileStore
from modvault.sumdb.private import PrivateSumdb, database_dir, init_database
from tests.support.redis_server import RedisServer

NAME = "sum.corp.example"
H1 = "h1:" + "A" * 43 + "="


def _open(root: Path, store: FileStore, redis: RedisServer) -> PrivateSumdb:
    db = PrivateSumdb.open(root, NAME, store)
    db.writer = RedisWriterLease(RedisLink(redis.url), ttl=2.0, wait=20)
    return db


def test_replicas_take_turns_and_refuse_without_redis(tmp_path: Path) -> None:
    import shutil

    redis = RedisServer(tmp_path / "redis")
    try:
        store = FileStore(tmp_path / "store")
        init_database(tmp_path / "r1", NAME, store)
        shutil.copytree(database_dir(tmp_path / "r1", NAME), database_dir(tmp_path / "r2", NAME))
        one, two = _open(tmp_path / "r1", store, redis), _open(tmp_path / "r2", store, redis)

        async def main() -> None:
            ids = await asyncio.gather(*(
                (one if i % 2 else two).add(f"corp.example/m{i}", "v1.0.0", H1, H1) for i in range(12)))
            assert sorted(ids) == list(range(12))
            await one.refresh()
            await two.refresh()
            assert one.size == 12 and one.tree() == two.tree()

            redis.stop()
            with pytest.raises(CoordinationError) as refused:
                await one.add("corp.example/new", "v1.0.0", H1, H1)
            assert refused.value.status == 503 and "Redis" in refused.value.message
            assert await two.add("corp.example/m3", "v1.0.0", H1, H1) == ids[3]  # already there
            await one.refresh()
            assert one.size == 12  # nothing appended without the lease

            redis.start()
            assert await one.add("corp.example/new", "v1.0.0", H1, H1) == 12

        asyncio.run(main())
    finally:
        redis.stop()


def test_concurrent_lookups_catch_up_once(tmp_path: Path) -> None:
    """A burst of lookups on a replica behind the log (another replica appended meanwhile): every
    concurrent catch-up must see one log, not extend it twice from the same size (which failed
    with "record 0 is malformed or repeated" and a 500 to each client)."""
    import shutil

    store = FileStore(tmp_path / "store")
    init_database(tmp_path / "r1", NAME, store)
    shutil.copytree(database_dir(tmp_path / "r1", NAME), database_dir(tmp_path / "r2", NAME))
    writer = PrivateSumdb.open(tmp_path / "r1", NAME, store)
    reader = PrivateSumdb.open(tmp_path / "r2", NAME, store)

    async def main() -> None:
        await reader.refresh()
        for i in range(5):
            await writer.add(f"corp.example/m{i}", "v1.0.0", H1, H1)
        # Lookups and an append on the lagging replica, all at once.
        await asyncio.gather(*(reader.refresh() for _ in range(8)),
                             reader.add("corp.example/late", "v1.0.0", H1, H1),
                             *(reader.refresh() for _ in range(8)))
        await writer.refresh()
        assert reader.size == writer.size == 6 and reader.tree() == writer.tree()
        assert reader.lookup_id("corp.example/late", "v1.0.0") == 5

    asyncio.run(main())
