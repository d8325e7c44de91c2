"""Class 5: one worker's death does not stop the server; it is respawned, logged and counted.

Before: killing the only worker (or one of three, as the OOM killer would) stopped the whole server.
"""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from tests.conftest import ModvaultFactory
from tests.support.probes import worker_pids
from tests.support.upstream_server import TestUpstreamServer

pytestmark = pytest.mark.e2e


def _wait_workers(pgid: int, n: int, old: set[int], timeout: float = 30) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = worker_pids(pgid)
        if len(pids) == n and not (set(pids) & old):
            return pids
        time.sleep(0.1)
    raise AssertionError(f"workers not respawned: {worker_pids(pgid)} (killed {old})")


def _serves(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/github.com/acme/hello/@v/v1.0.0.info", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("server does not answer after the worker's death")


def _deaths(url: str) -> float:
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith("modvault_worker_deaths_total "):
            return float(line.split()[1])
    raise AssertionError("modvault_worker_deaths_total missing")


@pytest.mark.parametrize(("workers", "kill"), [(1, 1), (3, 1), (3, 3)])
def test_dead_workers_are_respawned(workers: int, kill: int, upstream_a: TestUpstreamServer,
                                    modvault: ModvaultFactory) -> None:
    mv = modvault(upstream_a.url, "--workers", str(workers))
    pgid = mv.proc.pid
    first = _wait_workers(pgid, workers, set())
    _serves(mv.url)
    assert _deaths(mv.url) == 0
    victims = set(first[:kill])
    for pid in victims:  # SIGKILL, as the OOM killer does
        os.kill(pid, signal.SIGKILL)
    _wait_workers(pgid, workers, victims)
    _serves(mv.url)
    assert mv.proc.poll() is None
    assert _deaths(mv.url) == kill
    out = mv.output()
    assert out.count("exited unexpectedly (killed by SIGKILL, death ") == kill
    assert out.count('"logger":"modvault.workers"') == kill


def test_workers_stop_when_the_supervisor_is_killed(upstream_a: TestUpstreamServer,
                                                    modvault: ModvaultFactory) -> None:
    """A supervisor killed with SIGKILL leaves no worker serving the port behind it."""
    mv = modvault(upstream_a.url, "--workers", "2")
    workers = _wait_workers(mv.proc.pid, 2, set())
    _serves(mv.url)
    os.kill(mv.proc.pid, signal.SIGKILL)
    mv.proc.wait(timeout=10)
    deadline = time.monotonic() + 20
    while any(os.path.exists(f"/proc/{pid}") for pid in workers):
        assert time.monotonic() < deadline, "workers outlived their supervisor"
        time.sleep(0.1)
    with pytest.raises(httpx.HTTPError):
        httpx.get(mv.url + "/healthz", timeout=2)
