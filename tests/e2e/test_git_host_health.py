"""Health of git hosts in direct mode, against a real git host (git http-backend over a socket) that
the test slows, breaks and stops: a per-host breaker fed by real git traffic and by probes, an open
breaker answering at once instead of waiting for git's timeout, the same metrics and status entries as
proxy upstreams, and /readyz that follows the host's reachability."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import ModvaultFactory
from tests.support import waits
from tests.support.git_http import GitHTTPServer, insteadof_config
from tests.support.gitrepos import Repo, download_json, go_env, run_go
from tests.support.metrics import scrape, value

pytestmark = pytest.mark.e2e

HOST = "github.com"  # the host the module paths name; git's insteadOf sends it to the test server
MODULES = [f"github.com/acme/g{i}" for i in range(6)]
BASE = {"MODVAULT_NEGATIVE_TTL": "0", "MODVAULT_MUTABLE_TTL": "0", "MODVAULT_BREAKER_FAILURES": "2",
        "MODVAULT_UNREACHABLE_MEMORY": "0", "MODVAULT_UPSTREAM_PROBE_INTERVAL": "0"}


@dataclass
class GitHost:
    root: Path
    server: GitHTTPServer
    env: dict[str, str]

    def restart(self) -> None:
        """Bring the host back on the same port after stop()."""
        self.server = GitHTTPServer(self.root, self.server.port).start()


@pytest.fixture
def git_host(tmp_path: Path) -> Iterator[GitHost]:
    for m in MODULES:
        repo = Repo(tmp_path, m)
        repo.write({"go.mod": f"module {m}\n\ngo 1.21\n",
                    "x.go": f"package {m.rsplit('/', 1)[1]}\n\nconst V = 1\n"})
        repo.commit("v1", ["v1.0.0"])
    root = tmp_path / "repos" / "github.com"
    server = GitHTTPServer(root).start()
    host = GitHost(root, server, insteadof_config(tmp_path / "modvault-gitconfig", server.url))
    yield host
    host.server.stop()


def info(m: str) -> str:
    return f"/{m}/@v/v1.0.0.info"


def metric(url: str, name: str, **labels: str) -> float:
    return value(scrape(url), name, **labels)


wait_for = functools.partial(waits.wait_for, timeout=30.0)


def test_git_host_breaker_opens_answers_at_once_and_closes(git_host: GitHost,
                                                          modvault: ModvaultFactory) -> None:
    timeout = 4.0
    mv = modvault("direct", env={**BASE, **git_host.env, "MODVAULT_VCS_TIMEOUT": str(timeout),
                                 "MODVAULT_BREAKER_BACKOFF": "1"})
    r = httpx.get(mv.url + info(MODULES[0]), timeout=60)
    assert r.status_code == 200, r.text
    samples = scrape(mv.url)
    assert value(samples, "modvault_upstream_breaker_state", upstream=HOST, kind="git",
                 state="closed") == 1
    for phase in ("total", "fetch"):  # ls-remote, then the mirror's fetch
        assert value(samples, "modvault_upstream_phase_seconds_count", upstream=HOST,
                     phase=phase) >= 1, phase
    assert not [k for k in samples if "acme/g0" in str(k)]  # labels: the host, never the module

    # The host accepts connections and goes silent: each request costs git's timeout ...
    git_host.server.hold_everything(60)
    for m in MODULES[1:3]:
        r = httpx.get(mv.url + info(m), timeout=60)
        assert r.status_code == 504 and "timed out" in r.text, r.text
    assert metric(mv.url, "modvault_upstream_breaker_state", upstream=HOST, kind="git",
                  state="open") == 1
    # ... until the breaker opens: then the answer comes at once, and git never asks the host.
    started = time.monotonic()
    r = httpx.get(mv.url + info(MODULES[3]), timeout=60)
    elapsed = time.monotonic() - started
    assert r.status_code == 503, r.text
    assert "circuit open" in r.text and HOST in r.text
    assert git_host.server.count("acme/g3") == 0
    assert elapsed < timeout, elapsed  # had it waited for git, it would have taken the timeout
    assert metric(mv.url, "modvault_upstream_skipped_total", upstream=HOST) >= 1

    # The host recovers; after the back-off one request is let through, succeeds and closes it.
    git_host.server.reset()
    time.sleep(1.2)
    r = httpx.get(mv.url + info(MODULES[3]), timeout=60)
    assert r.status_code == 200, r.text
    assert metric(mv.url, "modvault_upstream_breaker_state", upstream=HOST, kind="git",
                  state="closed") == 1
    log = mv.output()
    assert "circuit closed -> open for git github.com" in log
    assert "circuit half_open -> closed for git github.com" in log
    status = httpx.get(mv.url + "/api/v1/status", timeout=30).json()
    entry = next(u for u in status["upstreams"] if u["name"] == HOST)
    assert entry["kind"] == "git" and entry["state"] == "closed"
    assert entry["failures"] >= 2 and entry["successes"] >= 2 and entry["samples"] >= 2


def test_broken_answers_count_and_missing_repositories_do_not(git_host: GitHost,
                                                              modvault: ModvaultFactory) -> None:
    mv = modvault("direct", env={**BASE, **git_host.env, "MODVAULT_BREAKER_BACKOFF": "60"})
    # A repository the host does not have: the host answered, it is healthy.
    for i in range(3):
        r = httpx.get(mv.url + f"/github.com/acme/missing{i}/@v/list", timeout=60)
        assert r.status_code == 404, r.text
    assert metric(mv.url, "modvault_upstream_breaker_state", upstream=HOST, kind="git",
                  state="closed") == 1
    git_host.server.fail_everything(503)  # answers, but broken ones
    for m in MODULES[:2]:
        assert httpx.get(mv.url + info(m), timeout=60).status_code == 502
    r = httpx.get(mv.url + info(MODULES[2]), timeout=60)
    assert r.status_code == 503 and "circuit open" in r.text, r.text
    assert git_host.server.count("acme/g2") == 0


def test_probes_and_readyz_follow_the_git_host(git_host: GitHost, modvault: ModvaultFactory) -> None:
    mv = modvault("direct", env={**BASE, **git_host.env, "MODVAULT_UPSTREAM_PROBE_INTERVAL": "0.2",
                                 "MODVAULT_BREAKER_BACKOFF": "0.5", "MODVAULT_VCS_TIMEOUT": "10"})

    def ready() -> httpx.Response:
        return httpx.get(mv.url + "/readyz", timeout=60)

    r = ready()
    assert r.status_code == 200 and "no git host used yet" in r.text, r.text
    assert httpx.get(mv.url + info(MODULES[0]), timeout=60).status_code == 200
    r = ready()
    assert r.status_code == 200 and "git host github.com" in r.text, r.text
    # Probes keep asking the host while it is in use (ls-remote of the repository last used).
    asked = git_host.server.count("acme/g0")
    assert wait_for(lambda: git_host.server.count("acme/g0") >= asked + 2)
    # One probe can be two HTTP requests (protocol v2: info/refs, then ls-refs), and its metric is
    # counted when it finishes: wait for two finished probes.
    assert wait_for(lambda: metric(mv.url, "modvault_upstream_probes_total", upstream=HOST,
                                   outcome="ok") >= 2)

    git_host.server.stop()  # connections refused
    assert wait_for(lambda: ready().status_code == 503)
    r = ready()
    assert "no upstream reachable" in r.text and HOST in r.text, r.text
    assert metric(mv.url, "modvault_upstream_probes_total", upstream=HOST, outcome="error") >= 1
    git_host.restart()
    assert wait_for(lambda: ready().status_code == 200)
    assert metric(mv.url, "modvault_upstream_breaker_state", upstream=HOST, kind="git",
                  state="closed") == 1


def test_go_command_through_a_git_host_that_died(git_host: GitHost, modvault: ModvaultFactory,
                                                 gohome: Path) -> None:
    """The go command sees a prompt, clear error (not a hang) once the breaker is open, and its
    downloads work again when the host is back."""
    mv = modvault("direct", env={**BASE, **git_host.env, "MODVAULT_BREAKER_BACKOFF": "1"})
    env = go_env(gohome, GOPROXY=mv.url)
    proc = run_go(["mod", "download", "-json", f"{MODULES[0]}@v1.0.0"], cwd=gohome, env=env)
    assert not download_json(proc.stdout)[0].get("Error")
    git_host.server.stop()
    for m in MODULES[1:3]:
        httpx.get(mv.url + info(m), timeout=60)  # refused twice: the breaker opens
    proc = run_go(["mod", "download", "-json", f"{MODULES[3]}@v1.0.0"], cwd=gohome, env=env,
                  check=False)
    assert proc.returncode != 0
    assert "503" in proc.stdout and "circuit open" in proc.stdout, proc.stdout
    git_host.restart()
    time.sleep(1.2)
    proc = run_go(["mod", "download", "-json", f"{MODULES[3]}@v1.0.0"], cwd=gohome, env=env)
    assert not download_json(proc.stdout)[0].get("Error")
