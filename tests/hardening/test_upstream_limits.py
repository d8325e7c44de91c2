"""Class 10 (upstream side): the pool is sized to the concurrency allowed and queues beyond it; the
default time-outs fail a hung upstream within a time a person waits.

Before: more than 100 concurrent fetches got spurious 504s (pool time-out = connect time-out), and a
hung upstream kept the client waiting 241 s with the defaults (4 tries x 60 s).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from modvault.config import Settings
from modvault.sources.upstream import UpstreamLimits
from tests.conftest import ModvaultFactory
from tests.support.upstream_server import Behaviour, TestUpstreamServer


def _worst_hung_seconds(retries: int, read: float, backoff_base: float, backoff_max: float) -> float:
    """An upstream that accepts and never answers: each try waits ``read``, then a backoff."""
    backoff = sum(min(backoff_max, backoff_base * 2 ** i) for i in range(retries))
    return (retries + 1) * read + backoff


def test_defaults_fail_a_hung_upstream_within_half_a_minute() -> None:
    s, limits = Settings(), UpstreamLimits()
    assert (s.upstream_connect_timeout, s.upstream_read_timeout, s.upstream_retries) == (
        limits.connect_timeout, limits.read_timeout, limits.retries)
    hung = _worst_hung_seconds(s.upstream_retries, s.upstream_read_timeout, limits.backoff_base,
                               limits.backoff_max)
    unreachable = _worst_hung_seconds(s.upstream_retries, s.upstream_connect_timeout,
                                      limits.backoff_base, limits.backoff_max)
    assert hung <= 35 and unreachable <= 20, (hung, unreachable)
    assert s.upstream_total_timeout <= 300


@pytest.mark.e2e
def test_hung_upstream_fails_after_the_configured_tries(upstream_a: TestUpstreamServer,
                                                        modvault: ModvaultFactory) -> None:
    """The formula above is what the server does: retries+1 tries of read_timeout, then 504."""
    path = "/github.com/acme/hello/@v/v1.0.0.info"
    upstream_a.behaviours[path] = Behaviour(delay=8)
    mv = modvault(upstream_a.url, env={"MODVAULT_UPSTREAM_READ_TIMEOUT": "1"})
    started = time.monotonic()
    r = httpx.get(mv.url + path, timeout=60)
    took = time.monotonic() - started
    assert r.status_code == 504, r.text
    assert upstream_a.count(path) == Settings().upstream_retries + 1
    assert took < 3 * 1 + 10  # generous: three 1-s tries and small backoffs


@pytest.mark.e2e
def test_fetches_beyond_the_pool_queue_instead_of_failing(upstream_a: TestUpstreamServer,
                                                          modvault: ModvaultFactory) -> None:
    upstream_a.prefix_behaviours["/example.com/"] = Behaviour(status=404, body=b"no\n", delay=1.0)
    mv = modvault(upstream_a.url, env={"MODVAULT_UPSTREAM_MAX_CONNECTIONS": "3",
                                       "MODVAULT_UPSTREAM_CONNECT_TIMEOUT": "0.5",
                                       "MODVAULT_UPSTREAM_READ_TIMEOUT": "5"})

    def get(i: int) -> int:
        return httpx.get(f"{mv.url}/example.com/m{i}/@v/list", timeout=60).status_code

    with ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(get, range(12)))
    assert statuses == [404] * 12, statuses  # 4 rounds of 3: queued, none timed out
