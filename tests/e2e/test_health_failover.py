"""Upstream health against upstreams whose failures and latency the test controls: breakers open on
failures and on a latency spike, half-open and close; `|` fails over without waiting, `,` answers 503
without falling back; `fastest` moves traffic away and back; short memories of unreachable peers and
refused artifacts; the real go command through a mirror failing mid-run."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Corpus, ModvaultFactory
from tests.sumdb.sumdb_support import FakeSumdb
from tests.support import waits
from tests.support.gitrepos import download_json, go_env, run_go
from tests.support.metrics import scrape, value
from tests.support.modvault_proc import ModvaultProcess
from tests.support.tls import make_cert
from tests.support.upstream_server import Behaviour, TestUpstreamServer

pytestmark = pytest.mark.e2e

MOD = "github.com/acme/hello"
ARTS = [f"/{MOD}/@v/{v}.{ext}" for v in ("v1.0.0", "v1.1.0", "v1.2.0-rc.1") for ext in ("info", "mod")]
ARTS += [f"/github.com/acme/incompat/@v/v1.0.0.{ext}" for ext in ("info", "mod")]
ARTS += [f"/github.com/!acme/!upper/@v/v1.0.0.{ext}" for ext in ("info", "mod")]

BASE = {"MODVAULT_UPSTREAM_RETRIES": "0", "MODVAULT_UPSTREAM_READ_TIMEOUT": "1",
        "MODVAULT_UPSTREAM_TOTAL_TIMEOUT": "10", "MODVAULT_NEGATIVE_TTL": "0",
        "MODVAULT_BREAKER_FAILURES": "2", "MODVAULT_BREAKER_BACKOFF": "1",
        "MODVAULT_UPSTREAM_PROBE_INTERVAL": "0", "MODVAULT_UNREACHABLE_MEMORY": "0"}


@pytest.fixture
def mirror(corpus: Corpus) -> Iterator[TestUpstreamServer]:
    """A second upstream holding the same modules as upstream_a (an equivalent mirror)."""
    srv = TestUpstreamServer(corpus.proxy_a).start()
    yield srv
    srv.stop()


def module_requests(srv: TestUpstreamServer) -> int:
    return srv.count_prefix("/github.com/")


def breaker(mv: ModvaultProcess, upstream: str, state: str) -> float:
    return value(scrape(mv.url), "modvault_upstream_breaker_state", upstream=upstream, state=state)


wait_for = functools.partial(waits.wait_for, timeout=15.0)


def test_pipe_fails_over_at_once_and_recovers(upstream_a: TestUpstreamServer,
                                              mirror: TestUpstreamServer,
                                              modvault: ModvaultFactory) -> None:
    # A hangs past the read timeout: each try costs a timeout until the breaker opens.
    upstream_a.fail_everything(status=200, delay=4)
    mv = modvault(f"{upstream_a.url}|{mirror.url}", env={**BASE, "MODVAULT_BREAKER_BACKOFF": "4"})
    for path in ARTS[:2]:
        assert httpx.get(mv.url + path, timeout=30).status_code == 200
    assert module_requests(upstream_a) == 2
    assert breaker(mv, upstream_a.url, "open") == 1
    # Open: A is skipped at once; the mirror answers; no request waits for A's timeout.
    for path in ARTS[2:6]:
        r = httpx.get(mv.url + path, timeout=30)
        assert r.status_code == 200, r.text
    assert module_requests(upstream_a) == 2
    assert mirror.count(ARTS[5]) == 1
    samples = scrape(mv.url)
    assert value(samples, "modvault_upstream_skipped_total", upstream=upstream_a.url) >= 4
    assert value(samples, "modvault_upstream_phase_seconds_count", upstream=mirror.url,
                 phase="ttfb") >= 6
    # A recovers; after the back-off one trial goes to it (half-open), succeeds, and closes.
    upstream_a.reset()
    time.sleep(4.2)
    assert httpx.get(mv.url + ARTS[6], timeout=30).status_code == 200
    assert upstream_a.count(ARTS[6]) == 1 and mirror.count(ARTS[6]) == 0
    assert breaker(mv, upstream_a.url, "closed") == 1
    assert value(scrape(mv.url), "modvault_upstream_breaker_transitions_total",
                 upstream=upstream_a.url, to="half_open") == 1
    log = mv.output()
    assert "circuit closed -> open" in log and "circuit half_open -> closed" in log


def test_comma_answers_503_without_fallback(upstream_a: TestUpstreamServer,
                                            mirror: TestUpstreamServer,
                                            modvault: ModvaultFactory) -> None:
    upstream_a.fail_everything(status=503)
    mv = modvault(f"{upstream_a.url},{mirror.url}", env=BASE)
    for path in ARTS[:2]:
        r = httpx.get(mv.url + path, timeout=30)
        assert r.status_code == 502 and "answered 503" in r.text
    r = httpx.get(mv.url + ARTS[2], timeout=30)
    assert r.status_code == 503, r.text
    assert "circuit open" in r.text and upstream_a.url in r.text
    assert module_requests(upstream_a) == 2
    assert module_requests(mirror) == 0  # never a fallback past ","


def test_latency_spike_opens_the_breaker(upstream_a: TestUpstreamServer,
                                         mirror: TestUpstreamServer,
                                         modvault: ModvaultFactory) -> None:
    mv = modvault(f"{upstream_a.url}|{mirror.url}",
                  env={**BASE, "MODVAULT_BREAKER_SPIKE_MIN": "0.3",
                       "MODVAULT_UPSTREAM_READ_TIMEOUT": "10", "MODVAULT_BREAKER_BACKOFF": "60"})
    for path in ARTS[:3]:  # the baseline
        assert httpx.get(mv.url + path, timeout=30).status_code == 200
    upstream_a.slow_everything(0.6)
    for path in ARTS[3:6]:  # three slow answers in a row: still answers, but a spike
        assert httpx.get(mv.url + path, timeout=30).status_code == 200
    assert module_requests(upstream_a) == 6 and module_requests(mirror) == 0
    assert breaker(mv, upstream_a.url, "open") == 1
    assert httpx.get(mv.url + ARTS[6], timeout=30).status_code == 200
    assert upstream_a.count(ARTS[6]) == 0 and mirror.count(ARTS[6]) == 1
    assert "latency spike" in mv.output()


def test_fastest_moves_away_and_back(upstream_a: TestUpstreamServer, mirror: TestUpstreamServer,
                                     modvault: ModvaultFactory) -> None:
    """Robust on a loaded machine: A is slowed by far more than load adds to a local answer, every
    step waits for a condition (no fixed sleeps), and the bounds are generous; yet traffic that
    never moves, or never comes back, fails it."""
    slow = 2.5  # A's answers while slowed: ~1000x a local answer, ~5x what heavy load adds to one
    mv = modvault(f"{upstream_a.url}|{mirror.url}",
                  env={**BASE, "MODVAULT_UPSTREAM_STRATEGY": "fastest",
                       "MODVAULT_UPSTREAM_PROBE_INTERVAL": "0.2", "MODVAULT_BREAKER_SPIKE_MIN": "100",
                       "MODVAULT_UPSTREAM_READ_TIMEOUT": "30", "MODVAULT_UPSTREAM_TOTAL_TIMEOUT": "60",
                       "MODVAULT_MUTABLE_TTL": "0", "MODVAULT_MUTABLE_MAX_STALE": "0"})
    lists = [f"/{m}/@v/list" for m in (MOD, "github.com/acme/incompat", "github.com/!acme/!upper")]
    turn = [0]

    def fetch_lists(n: int) -> None:
        for _ in range(n):
            r = httpx.get(mv.url + lists[turn[0] % 3], timeout=90)
            assert r.status_code == 200, r.text
            turn[0] += 1

    def served_by(srv: TestUpstreamServer) -> bool:
        before = module_requests(srv)
        fetch_lists(1)
        return module_requests(srv) > before

    def measured_ms(name: str) -> float:
        doc = httpx.get(mv.url + "/api/v1/status", timeout=30).json()
        entry = next(u for u in doc["upstreams"] if u["name"] == name)
        return float(entry["recent_ms"] or 0.0)

    fetch_lists(3)  # nothing measured yet: list order, so upstream A
    assert module_requests(upstream_a) >= 1
    upstream_a.slow_everything(slow)
    # A's measured latency rises (its probes, and answers if any go there): the mirror goes first.
    # Wait until the slowness is measured, not for a guessed time.
    assert wait_for(lambda: measured_ms(upstream_a.url) >= slow * 1000 / 2, timeout=90)
    assert wait_for(lambda: served_by(mirror), timeout=90)
    assert wait_for(lambda: upstream_a.busy("/github.com/") == 0, timeout=60)  # nothing in flight
    before = module_requests(upstream_a)
    fetch_lists(6)
    assert module_requests(upstream_a) == before  # traffic moved away
    assert module_requests(mirror) >= 6
    upstream_a.reset()  # A fast again: its probes bring its latency down, traffic comes back
    assert wait_for(lambda: served_by(upstream_a), timeout=90), [
        x for x in httpx.get(mv.url + "/metrics").text.splitlines() if "probes_total{" in x]


def test_refused_artifact_is_remembered_then_rechecked(upstream_a: TestUpstreamServer,
                                                       modvault: ModvaultFactory) -> None:
    zip_path = f"/{MOD}/@v/v1.0.0.zip"
    upstream_a.behaviours[zip_path] = Behaviour(body=b"this is not a zip")
    mv = modvault(upstream_a.url, env={**BASE, "MODVAULT_REFUSAL_TTL": "2"})
    r1 = httpx.get(mv.url + zip_path, timeout=30)
    r2 = httpx.get(mv.url + zip_path, timeout=30)
    assert r1.status_code == r2.status_code == 502 and r1.text == r2.text
    assert upstream_a.count(zip_path) == 1  # answered from memory
    samples = scrape(mv.url)
    assert value(samples, "modvault_refusals_total", event="remembered") == 1
    assert value(samples, "modvault_refusals_total", event="hit") == 1
    time.sleep(2.2)
    assert httpx.get(mv.url + zip_path, timeout=30).status_code == 502
    assert upstream_a.count(zip_path) == 2  # checked again


def test_unreachable_sumdb_is_remembered_and_says_what_to_do(
        upstream_a: TestUpstreamServer, corpus: Corpus, modvault: ModvaultFactory) -> None:
    db = FakeSumdb()
    silent = TestUpstreamServer(corpus.proxy_a).start()
    try:
        silent.fail_everything(status=200, delay=4)
        mv = modvault(upstream_a.url, env={
            **BASE, "MODVAULT_SUMDB_VERIFY": "true", "MODVAULT_SUMDB": f"{db.vkey} {silent.url}",
            "MODVAULT_UNREACHABLE_MEMORY": "60"})
        r = httpx.get(mv.url + ARTS[1], timeout=30)
        assert r.status_code in (502, 504), r.text
        assert "sumdb_verify = false" in r.text and "reachable database" in r.text
        asked = len(silent.requests)
        assert asked >= 1
        started = time.monotonic()
        r = httpx.get(mv.url + ARTS[3], timeout=30)
        assert r.status_code == 503 and "unreachable moments ago" in r.text
        assert "sumdb_verify = false" in r.text
        assert len(silent.requests) == asked  # not asked again: answered from memory
        assert time.monotonic() - started < 4  # generous: the silent database holds answers 4 s
    finally:
        silent.stop()


def test_go_command_through_a_mirror_failing_mid_run(corpus: Corpus, upstream_a: TestUpstreamServer,
                                                     mirror: TestUpstreamServer,
                                                     modvault: ModvaultFactory, gohome: Path) -> None:
    seen = [0]

    def hook(path: str) -> None:
        seen[0] += 1
        if seen[0] == 3:  # a few answers in, the first mirror starts failing
            upstream_a.fail_everything(status=502)

    upstream_a.hook = hook
    mv = modvault(f"{upstream_a.url}|{mirror.url}", env=BASE)
    mods = ["github.com/acme/hello@v1.0.0", "github.com/acme/hello@v1.1.0",
            "github.com/Acme/Upper@v1.0.0", "github.com/acme/incompat@v1.0.0"]
    env = go_env(gohome, GOPROXY=mv.url)
    proc = run_go(["mod", "download", "-json", *mods], cwd=gohome, env=env)
    docs = {f"{d['Path']}@{d['Version']}": d for d in download_json(proc.stdout)}
    for m in mods:
        assert not docs[m].get("Error"), docs[m]
        assert docs[m]["Sum"] == corpus.reference[m]["Sum"]
    assert module_requests(mirror) > 0 and seen[0] >= 3


def test_rtt_phases_against_https_upstream(upstream_a: TestUpstreamServer, modvault: ModvaultFactory,
                                           tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    inner = modvault(upstream_a.url, tls=(cert, key))
    # By name, so the probes have a name to resolve (the dns phase); the certificate covers it.
    by_name = inner.url.replace("127.0.0.1", "localhost")
    outer = modvault(by_name, env={**BASE, "MODVAULT_UPSTREAM_CA_FILE": str(cert),
                                   "MODVAULT_UPSTREAM_PROBE_INTERVAL": "0.2",
                                   "MODVAULT_UPSTREAM_READ_TIMEOUT": "30",
                                   "MODVAULT_UPSTREAM_RETRIES": "2",
                                   "MODVAULT_BREAKER_FAILURES": "5"})
    r = httpx.get(outer.url + ARTS[0], timeout=60)
    assert r.status_code == 200, r.text

    samples = scrape(outer.url)
    # dns is measured by probes only (their timing depends on the machine's load): checked when seen.
    for phase in ("connect", "tls", "ttfb", "total"):
        count = value(samples, "modvault_upstream_phase_seconds_count", upstream=by_name,
                      phase=phase)
        total = value(samples, "modvault_upstream_phase_seconds_sum", upstream=by_name,
                      phase=phase)
        assert count >= 1, phase
        assert 0 < total < 30 * count, (phase, total, count)  # present and plausible


def test_readyz_tells_the_truth(upstream_a: TestUpstreamServer, mirror: TestUpstreamServer,
                                modvault: ModvaultFactory) -> None:
    mv = modvault(f"{upstream_a.url}|{mirror.url}",
                  env={**BASE, "MODVAULT_UPSTREAM_PROBE_INTERVAL": "0.2",
                       "MODVAULT_BREAKER_BACKOFF": "0.5"})
    assert httpx.get(mv.url + "/readyz", timeout=30).status_code == 200
    upstream_a.fail_everything(status=503)
    mirror.fail_everything(status=503)

    def status() -> int:
        return httpx.get(mv.url + "/readyz", timeout=30).status_code

    assert wait_for(lambda: status() == 503)
    r = httpx.get(mv.url + "/readyz", timeout=30)
    assert "no upstream reachable" in r.text and upstream_a.url in r.text and mirror.url in r.text
    mirror.reset()  # one healthy route is enough
    assert wait_for(lambda: status() == 200)
    assert mirror.url in httpx.get(mv.url + "/readyz", timeout=30).text
    # The readiness alert (deploy/prometheus/alerts.yml) reads these counters.
    text = httpx.get(mv.url + "/metrics").text
    counts = {r: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              for r in ("ready", "not_ready")
              if line.startswith(f'modvault_readiness_checks_total{{result="{r}"}}')}
    assert counts["ready"] >= 2 and counts["not_ready"] >= 2, counts
