"""The memory tier's byte bound holds in real bytes: what an entry is charged
(service.memory_entry_bytes) is at least what it costs (tracemalloc), for the small artifacts
that fill it."""

from __future__ import annotations

import dataclasses
import time
import tracemalloc

import pytest

from modvault.artifact import Artifact, Kind
from modvault.cache.memory import ByteLRU
from modvault.service import memory_entry_bytes
from modvault.storage.base import etag_of


@pytest.mark.parametrize("body_size", [20, 54, 400, 4000])
def test_charge_covers_the_real_cost(body_size: int) -> None:
    n = 5000
    lru: ByteLRU[Artifact] = ByteLRU(1 << 40)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(n):
            body = (b"%08d" % i) * (body_size // 8 + 1)
            body = body[:body_size]
            key = f"github.com/acme/module{i}/@v/v1.{i}.0.info"
            art = Artifact(Kind.INFO, len(body), etag_of(body), time.time(), True, body=body)
            lru.put(key, dataclasses.replace(art, tier="memory", upstream=""),
                    memory_entry_bytes(key, art))
        real = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert real <= lru.size, f"{real / n:.0f} bytes an entry, charged {lru.size / n:.0f}"
