"""Class 1: memory stays flat under repeated not-found requests; the negative cache is bounded.

Before: each hit re-raised one stored exception object, whose traceback grew with every raise
(~150 MB per 20,000 hits of one 410 path), and the map was pruned only past 50,000 entries.
"""

from __future__ import annotations

import httpx
import pytest

from modvault.cache.negative import ENTRY_OVERHEAD, NegativeCache
from modvault.errors import Gone, NotFound
from tests.conftest import ModvaultFactory
from tests.support.probes import rss_mb
from tests.support.upstream_server import Behaviour, TestUpstreamServer

GONE = "/github.com/acme/hello/@v/v1.9.9.info"


def test_each_hit_raises_a_fresh_error_without_history() -> None:
    cache = NegativeCache(ttl=60, max_bytes=1 << 20)
    cache.remember("k", Gone("upstream: gone"))
    seen = []
    for _ in range(3):
        with pytest.raises(Gone) as info:
            cache.check("k")
        seen.append(info.value)
        assert info.value.message == "upstream: gone"
        assert info.value.__context__ is None and info.value.__cause__ is None
    assert len({id(e) for e in seen}) == 3  # three objects, none re-raised


def test_bounded_in_entries_and_bytes() -> None:
    cache = NegativeCache(ttl=60, max_bytes=256 * 1024)
    for i in range(50_000):
        cache.remember(f"example.com/m{i}/@v/list", NotFound("x" * (i % 500)))
        assert cache.size <= cache.max_bytes
    assert 0 < len(cache) <= cache.max_bytes // ENTRY_OVERHEAD
    cache.check("example.com/m0/@v/list")  # the oldest went first: no error remembered


def test_expired_entries_are_dropped() -> None:
    now = [100.0]  # a clock the test moves, so a loaded machine cannot expire "c" early
    cache = NegativeCache(ttl=5, max_bytes=1 << 20, clock=lambda: now[0])
    cache.remember("a", NotFound("a"))
    cache.remember("b", NotFound("b"))
    now[0] += 4.9
    with pytest.raises(NotFound):
        cache.check("b")  # still fresh just before its ttl
    now[0] += 0.2
    cache.remember("c", NotFound("c"))
    assert len(cache) == 1  # "a" and "b" expired and were pruned when "c" came
    cache.check("a")  # expired: nothing raised
    with pytest.raises(NotFound):
        cache.check("c")


@pytest.mark.e2e
def test_repeated_gone_keeps_memory_flat(upstream_a: TestUpstreamServer,
                                         modvault: ModvaultFactory) -> None:
    upstream_a.behaviours[GONE] = Behaviour(status=410, body=b"gone for good\n")
    mv = modvault(upstream_a.url)
    pgid = mv.proc.pid
    with httpx.Client(base_url=mv.url, timeout=30) as client:
        for _ in range(300):  # warm up: allocator arenas, metrics, access-log buffers
            assert client.get(GONE).status_code == 410
        before = rss_mb(pgid)
        for _ in range(3000):
            assert client.get(GONE).status_code == 410
        after = rss_mb(pgid)
    assert upstream_a.count(GONE) == 1  # every other hit came from the negative cache
    # Before the fix this grew by ~22 MB over 3,000 hits.
    assert after - before < 6, (before, after)


@pytest.mark.e2e
def test_many_distinct_not_found_paths_stay_bounded(upstream_a: TestUpstreamServer,
                                                    modvault: ModvaultFactory) -> None:
    mv = modvault(upstream_a.url)
    pgid = mv.proc.pid
    with httpx.Client(base_url=mv.url, timeout=30) as client:
        for i in range(100):
            assert client.get(f"/example.com/warm{i}/@v/list").status_code == 404
        before = rss_mb(pgid)
        for i in range(800):
            assert client.get(f"/example.com/nothere{i}/@v/list").status_code == 404
        after = rss_mb(pgid)
    # Before the fix: ~29 KB per path held (~23 MB here); the cache itself is bounded at 8 MiB.
    assert after - before < 10, (before, after)
