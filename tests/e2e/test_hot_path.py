"""Prebuilt answers (server/hotpath.py) over a real socket: the same bytes and headers as the general
path, recorded the same way, and never used once they stop being true (memory eviction, a removed
file, a block, authentication)."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import Corpus, ModvaultFactory
from tests.support.gitrepos import GO, download_json, go_env, run_go
from tests.support.metrics import scrape, value
from tests.support.upstream_server import Behaviour, TestUpstreamServer
from tests.support.waits import wait_for

pytestmark = pytest.mark.e2e

MOD = "github.com/acme/hello"
INFO = f"/{MOD}/@v/v1.0.0.info"
MODF = f"/{MOD}/@v/v1.0.0.mod"
ZIP = f"/{MOD}/@v/v1.0.0.zip"
BIG_MOD = f"/{MOD}/@v/v1.1.0.mod"
BIG_MOD_BODY = b"module github.com/acme/hello\n\ngo 1.21\n" + b"// padding comment line\n" * 200
VOLATILE = {"date", "server"}


def metric(url: str, name: str, **labels: str) -> float:
    """One sample of /metrics (each call names all its labels); 0 when it is not there yet."""
    return value(scrape(url), name, **labels)


def answered_prebuilt(c: httpx.Client, url: str, path: str, kind: str,
                      headers: dict[str, str] | None = None) -> bool:
    """One GET of ``path`` (a 200): whether a prebuilt answer gave it (their count grew by one)."""
    was = metric(url, "modvault_prebuilt_answers_total", kind=kind)
    assert c.get(path, headers=headers).status_code == 200
    return metric(url, "modvault_prebuilt_answers_total", kind=kind) == was + 1


def mv_cli(data: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """``modvault ARGS --data-dir DATA``, with no MODVAULT_* setting but ``env``'s; its stdout."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("MODVAULT_")}
    return subprocess.run([sys.executable, "-m", "modvault", *args, "--data-dir", str(data)],
                          check=True, env={**base, **(env or {})}, capture_output=True, text=True,
                          timeout=120).stdout


def raw_items(r: httpx.Response) -> list[tuple[str, str]]:
    return [(k.decode().lower(), v.decode()) for k, v in r.headers.raw
            if k.decode().lower() not in VOLATILE]


def test_prebuilt_answers_are_the_general_paths_answers(upstream_a: TestUpstreamServer,
                                                        modvault: ModvaultFactory) -> None:
    upstream_a.behaviours[BIG_MOD] = Behaviour(body=BIG_MOD_BODY)
    mv = modvault(upstream_a.url)
    cases: list[tuple[str, dict[str, str]]] = [
        (INFO, {}), (MODF, {}), (ZIP, {}),
        (INFO, {"Accept-Encoding": "gzip"}),  # gzip would be larger: the plain answer
        (BIG_MOD, {"Accept-Encoding": "gzip"}),  # gzip is smaller: the gzip answer
        (ZIP, {"Range": "bytes=100-1099"}), (ZIP, {"Range": "bytes=-10"}),
    ]
    with httpx.Client(base_url=mv.url, headers={"Accept-Encoding": "identity"}) as c:
        for path, headers in cases:
            first = c.get(path, headers=headers)  # from upstream, or the store
            assert first.status_code in (200, 206), (path, first.text)
            general = c.get(path, headers=headers)  # the general path answers, and learns
            before = metric(mv.url, "modvault_prebuilt_answers_total", kind=path.rsplit(".", 1)[1])
            hot = [c.get(path, headers=headers) for _ in range(3)]
            after = metric(mv.url, "modvault_prebuilt_answers_total", kind=path.rsplit(".", 1)[1])
            assert after - before == 3, (path, headers, before, after)
            for r in hot:
                assert (r.status_code, raw_items(r), r.content) == \
                       (general.status_code, raw_items(general), general.content), (path, headers)
            assert ("cache-status", "modvault; hit") in raw_items(hot[0])
        full = c.get(ZIP).content
        assert c.get(ZIP, headers={"Range": "bytes=100-1099"}).content == full[100:1100]
        assert c.get(BIG_MOD, headers={"Accept-Encoding": "gzip"}).headers["content-encoding"] \
            == "gzip"
        # Conditional requests and HEAD still get their own answers.
        etag = c.get(INFO).headers["etag"]
        assert c.get(INFO, headers={"If-None-Match": etag}).status_code == 304
        assert c.head(ZIP).content == b"" and c.head(ZIP).headers["content-length"] == str(len(full))
        assert c.get(ZIP, headers={"Range": f"bytes={len(full)}-"}).status_code == 416
        r = c.get(ZIP, headers={"Range": "bytes=0-0,5-5"})
        assert r.status_code == 206 and r.headers["content-type"].startswith("multipart/byteranges")
    # Every prebuilt answer is counted and logged like any other.
    total = metric(mv.url, "modvault_requests_total", kind="info", status="200")
    assert total >= 10
    time.sleep(0.5)  # the access log is flushed within 0.1 s
    lines = [json.loads(x) for x in mv.output().splitlines()
             if '"modvault.access"' in x and f'"path":"{INFO}"' in x and '"status":200' in x]
    assert len(lines) == total, (len(lines), total)
    assert {ln["cache"] for ln in lines[2:]} == {"memory"}


def test_prebuilt_answers_come_straight_from_granians_scheduler(
        tmp_path: Path, upstream_a: TestUpstreamServer, modvault: ModvaultFactory) -> None:
    """With no middleware in front, granian's scheduler offers each request to the prebuilt
    answers before any coroutine or Task (server/scheduling.py); the rest take the general path.
    With auth on, the access middleware's decision is made there too (auth/quick.py)."""
    line = "prebuilt answers straight from granian's scheduler"
    mv = modvault(upstream_a.url, "--log-level", "debug")
    assert wait_for(lambda: line in mv.output(), timeout=5)
    with httpx.Client(base_url=mv.url) as c:
        assert c.get(INFO).status_code == 200  # the general path: fetched from upstream
        first = c.get(INFO)  # the general path again: read from the store, then learned
        before = scrape(mv.url)
        again = [c.get(INFO) for _ in range(3)]
        after = scrape(mv.url)
        missing = c.get(f"/{MOD}/@v/v9.9.9.info")
        listed = c.get(f"/{MOD}/@v/list")
    assert (value(after, "modvault_prebuilt_answers_total", kind="info")
            - value(before, "modvault_prebuilt_answers_total", kind="info")) == 3
    for r in again:
        assert (r.status_code, r.content, raw_items(r)) == (200, first.content, raw_items(first))
    assert missing.status_code in (404, 410) and missing.text.strip()
    assert listed.status_code == 200 and "v1.0.0" in listed.text.split()

    data = tmp_path / "authdata"
    token = mv_cli(data, "token", "create", "reader1", "--role", "reader").split()[-1]
    authed = modvault(upstream_a.url, "--auth", "on", "--log-level", "debug", data_dir=data)
    with httpx.Client(base_url=authed.url, headers={"Authorization": f"Bearer {token}"}) as c:
        assert [c.get(INFO).status_code for _ in range(3)] == [200, 200, 200]
    assert " serving http" in authed.output() and line in authed.output()


def _access_lines(output: str, path: str) -> list[dict[str, object]]:
    return [json.loads(x) for x in output.splitlines()
            if x.startswith("{") and '"modvault.access"' in x and f'"path":"{path}"' in x]


def test_prebuilt_answers_under_concurrency_are_each_recorded_once(
        upstream_a: TestUpstreamServer, modvault: ModvaultFactory) -> None:
    """Prebuilt answers are given on granian's thread and recorded on the loop's
    (HotPath.serve_now, settle): many clients at once, beside requests that take the general
    path, get the right bytes, and every answer has its metrics and its access-log line."""
    import concurrent.futures

    mv = modvault(upstream_a.url)
    with httpx.Client(base_url=mv.url) as c:
        for path in (INFO, ZIP, INFO, ZIP):  # fetched, then learned by the general path
            assert c.get(path).status_code == 200
        whole = c.get(ZIP).content
        info = c.get(INFO, headers={"accept-encoding": "identity"}).content
    before = scrape(mv.url)
    clients, rounds = 8, 60

    def client(n: int) -> list[str]:
        wrong = []
        with httpx.Client(base_url=mv.url, headers={"accept-encoding": "identity"}) as c:
            for i in range(rounds):
                start = (n * 7919 + i * 104729) % (len(whole) - 100)
                r = c.get(ZIP, headers={"range": f"bytes={start}-{start + 99}"})
                if (r.status_code, r.content) != (206, whole[start:start + 100]):
                    wrong.append(f"range {start}: {r.status_code}")
                r = c.get(INFO)
                if (r.status_code, r.content) != (200, info):
                    wrong.append(f"info: {r.status_code}")
                if c.get(f"/{MOD}/@v/v9.{n}.{i}.info").status_code not in (404, 410):
                    wrong.append("miss")
        return wrong

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        assert [w for wrong in pool.map(client, range(clients)) for w in wrong] == []
    after = scrape(mv.url)
    n = clients * rounds
    for kind in ("info", "zip"):
        assert (value(after, "modvault_prebuilt_answers_total", kind=kind)
                - value(before, "modvault_prebuilt_answers_total", kind=kind)) == n
    assert (value(after, "modvault_requests_total", kind="zip", status="206")
            - value(before, "modvault_requests_total", kind="zip", status="206")) == n
    assert (value(after, "modvault_request_duration_seconds_count", kind="info")
            - value(before, "modvault_request_duration_seconds_count", kind="info")) >= n
    # 4 + 2 before, then n each; the log is written within about 0.1 s.
    assert wait_for(lambda: len(_access_lines(mv.output(), INFO)) == n + 3, timeout=5)
    assert wait_for(lambda: len(_access_lines(mv.output(), ZIP)) == n + 3, timeout=5)
    ranges = [x for x in _access_lines(mv.output(), ZIP) if x["status"] == 206]
    assert len(ranges) == n and all(x["bytes"] == 100 for x in ranges)


def test_prebuilt_answers_just_before_a_stop_are_all_logged(upstream_a: TestUpstreamServer,
                                                            modvault: ModvaultFactory) -> None:
    """A worker stopped right after a burst of prebuilt answers records them all before it
    exits (their access-log lines were queued for the loop's thread)."""
    mv = modvault(upstream_a.url)
    n = 200
    with httpx.Client(base_url=mv.url) as c:
        for _ in range(2):
            assert c.get(INFO).status_code == 200
        assert [c.get(INFO).status_code for _ in range(n)] == [200] * n
    mv.stop()  # SIGTERM at once
    assert mv.proc.returncode == 0
    assert len(_access_lines(mv.log_path.read_text(), INFO)) == n + 2


def test_prebuilt_answers_log_module_paths_masked_once(tmp_path: Path,
                                                      modvault: ModvaultFactory) -> None:
    """Prebuilt answers of stored modules whose paths hold a suspect word (sigs.k8s.io) or a
    token's shape: the first is logged as it is, the second masked, on every answer."""
    data = tmp_path / "data"
    clean, tokened = "sigs.k8s.io/yaml", "example.com/mvt_plantedinpath0123/m"
    for mod in (clean, tokened):
        d = data / mod / "@v"
        d.mkdir(parents=True)
        (d / "v1.0.0.info").write_text('{"Version":"v1.0.0","Time":"2026-01-02T03:04:05Z"}')
    mv = modvault("off", "--offline", data_dir=data)
    n = 5
    with httpx.Client(base_url=mv.url) as c:
        for _ in range(2):  # read from the store, then learned by the general path
            for mod in (clean, tokened):
                assert c.get(f"/{mod}/@v/v1.0.0.info").status_code == 200
        before = scrape(mv.url)
        for _ in range(n):
            for mod in (clean, tokened):
                assert c.get(f"/{mod}/@v/v1.0.0.info").status_code == 200
        after = scrape(mv.url)
    assert (value(after, "modvault_prebuilt_answers_total", kind="info")
            - value(before, "modvault_prebuilt_answers_total", kind="info")) == 2 * n

    def access_paths() -> list[str]:
        return [json.loads(x)["path"] for x in mv.output().splitlines()
                if x.startswith("{") and '"modvault.access"' in x and "v1.0.0.info" in x]

    assert wait_for(lambda: len(access_paths()) == 2 * (n + 2), timeout=5), access_paths()
    paths = access_paths()
    assert paths.count(f"/{clean}/@v/v1.0.0.info") == n + 2
    assert paths.count("/example.com/mvt_***/m/@v/v1.0.0.info") == n + 2
    assert "plantedinpath" not in mv.output()


def test_prebuilt_answers_add_to_every_request_metric(upstream_a: TestUpstreamServer,
                                                      modvault: ModvaultFactory) -> None:
    """Each prebuilt answer adds what the general path would to each per-request metric (the
    answers keep their metrics' cells, server/hotpath.py Counts): requests by status, bytes,
    the latency histogram's count, cache lookups by tier, prebuilt answers."""
    mv = modvault(upstream_a.url)
    n = 7
    with httpx.Client(base_url=mv.url) as c:
        for path in (INFO, ZIP, INFO, ZIP):  # fetched, then learned by the general path
            assert c.get(path).status_code == 200
        # Bytes on the wire (the .info may go gzip-encoded): what modvault_bytes_served counts.
        sizes = {k: int(c.get(p).headers["content-length"]) for k, p in (("info", INFO), ("zip", ZIP))}
        before = scrape(mv.url)
        for _ in range(n):
            assert c.get(INFO).status_code == 200
            assert c.get(ZIP).status_code == 200
            assert c.get(ZIP, headers={"Range": "bytes=0-99"}).status_code == 206
        after = scrape(mv.url)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("modvault_prebuilt_answers_total", kind="info") == n
    assert grew("modvault_prebuilt_answers_total", kind="zip") == 2 * n
    assert grew("modvault_requests_total", kind="info", status="200") == n
    assert grew("modvault_requests_total", kind="zip", status="200") == n
    assert grew("modvault_requests_total", kind="zip", status="206") == n
    assert grew("modvault_bytes_served_total", kind="info") == n * sizes["info"]
    assert grew("modvault_bytes_served_total", kind="zip") == n * (sizes["zip"] + 100)
    assert grew("modvault_request_duration_seconds_count", kind="info") == n
    assert grew("modvault_request_duration_seconds_count", kind="zip") == 2 * n
    assert grew("modvault_request_duration_seconds_bucket", kind="zip", le="+Inf") == 2 * n
    assert grew("modvault_request_duration_seconds_sum", kind="info") > 0
    assert grew("modvault_cache_lookups_total", tier="memory", result="hit") == n
    assert grew("modvault_cache_lookups_total", tier="store", result="hit") == 2 * n


def test_prebuilt_answers_follow_the_memory_tier(upstream_a: TestUpstreamServer,
                                                 modvault: ModvaultFactory) -> None:
    # Room for one .info in memory (an entry is charged body + 2 x key + 512 bytes): asking another
    # one evicts the first, whose prebuilt answer must then be dropped (the general path looks in
    # memory again, and misses).
    mv = modvault(upstream_a.url, env={"MODVAULT_MEMORY_CACHE_BYTES": "1200"})
    other = f"/{MOD}/@v/v1.1.0.info"
    with httpx.Client(base_url=mv.url) as c:
        for _ in range(4):
            assert c.get(INFO).status_code == 200
        assert metric(mv.url, "modvault_prebuilt_answers_total", kind="info") >= 1
        for _ in range(2):
            assert c.get(other).status_code == 200
        misses = metric(mv.url, "modvault_cache_lookups_total", tier="memory", result="miss")
        assert c.get(INFO).status_code == 200
        assert metric(mv.url, "modvault_cache_lookups_total", tier="memory", result="miss") \
            == misses + 1


def wait_for_zip_bytes(url: str, want: float) -> None:
    """Until the worker holds ``want`` bytes of zips in memory (read in a thread once learned)."""
    deadline = time.monotonic() + 15
    while metric(url, "modvault_hot_zip_bytes") != want:
        assert time.monotonic() < deadline, metric(url, "modvault_hot_zip_bytes")
        time.sleep(0.05)


def test_removed_zip_is_fetched_again_not_served_from_a_prebuilt_answer(
        upstream_a: TestUpstreamServer, modvault: ModvaultFactory) -> None:
    mv = modvault(upstream_a.url)
    stored = mv.data_dir / MOD / "@v" / "v1.0.0.zip"
    with httpx.Client(base_url=mv.url) as c:
        for _ in range(4):
            assert c.get(ZIP).headers["cache-status"] in ("modvault; hit",
                                                          "modvault; fwd=miss; stored")
        assert metric(mv.url, "modvault_prebuilt_answers_total", kind="zip") >= 1
        body = stored.read_bytes()
        wait_for_zip_bytes(mv.url, len(body))  # answered from memory: removal still counts
        os.unlink(stored)
        r = c.get(ZIP)
        assert r.status_code == 200 and r.content == body
        assert r.headers["cache-status"] == "modvault; fwd=miss; stored"


def test_block_overrides_prebuilt_answers(upstream_a: TestUpstreamServer,
                                          modvault: ModvaultFactory) -> None:
    mv = modvault(upstream_a.url)
    with httpx.Client(base_url=mv.url) as c:
        for _ in range(4):
            assert c.get(INFO).status_code == 200 and c.get(ZIP).status_code == 200
        mv_cli(mv.data_dir, "block", f"{MOD}@v1.0.0", "--reason", "CVE-2099-0002")
        deadline = time.monotonic() + 15
        while c.get(INFO).status_code != 403:
            assert time.monotonic() < deadline, "block not seen within 15 s"
            time.sleep(0.2)
        for path in (INFO, ZIP):
            r = c.get(path)
            assert r.status_code == 403 and "CVE-2099-0002" in r.text, path


def test_prebuilt_answers_with_blocks_and_a_deny_list(upstream_a: TestUpstreamServer,
                                                      modvault: ModvaultFactory) -> None:
    """Blocks and allow/deny lists no longer turn the prebuilt answers off for every module: each
    answer asks the gate about its own module and version. A blocked version and a denied
    module still get their 403 with the reason; unblocking serves the version again."""
    mv = modvault(upstream_a.url, env={"MODVAULT_DENY_MODULES": "github.com/acme/denied"})
    blocked = f"/{MOD}/@v/v1.1.0.info"
    with httpx.Client(base_url=mv.url) as c:
        for _ in range(3):
            assert c.get(INFO).status_code == 200 and c.get(ZIP).status_code == 200
            assert c.get(blocked).status_code == 200
        mv_cli(mv.data_dir, "block", f"{MOD}@v1.1.0", "--reason", "CVE-2099-0003")
        assert wait_for(lambda: c.get(blocked).status_code == 403, 15)
        r = c.get(blocked)
        assert r.status_code == 403 and "CVE-2099-0003" in r.text
        for path, kind in ((INFO, "info"), (ZIP, "zip")):
            assert wait_for(functools.partial(answered_prebuilt, c, mv.url, path, kind), 15), path
        r = c.get("/github.com/acme/denied/@v/v1.0.0.info")
        assert r.status_code == 403 and "deny list" in r.text
        before = metric(mv.url, "modvault_prebuilt_answers_total", kind="info")
        assert c.get(blocked).status_code == 403
        assert metric(mv.url, "modvault_prebuilt_answers_total", kind="info") == before
        mv_cli(mv.data_dir, "unblock", f"{MOD}@v1.1.0")
        assert wait_for(lambda: c.get(blocked).status_code == 200, 15)


def test_blocks_hold_from_the_first_request_after_a_restart(upstream_a: TestUpstreamServer,
                                                            modvault: ModvaultFactory) -> None:
    """Blocks made while the server was down hold for its very first answers (they were served
    for about a second, until the first periodic reread of the blocks), cached or not, listed
    or not."""
    first = modvault(upstream_a.url)
    with httpx.Client(base_url=first.url) as c:
        for path in (INFO, ZIP, f"/{MOD}/@v/list"):
            assert c.get(path).status_code == 200, path
    first.stop()
    mv_cli(first.data_dir, "block", f"{MOD}@v1.0.0", "--reason", "CVE-2099-0004")
    again = modvault(upstream_a.url, data_dir=first.data_dir)
    with httpx.Client(base_url=again.url) as c:  # at once: the port has just opened
        for path in (INFO, ZIP, MODF):
            r = c.get(path)
            assert r.status_code == 403 and "CVE-2099-0004" in r.text, (path, r.status_code)
        assert "v1.0.0" not in c.get(f"/{MOD}/@v/list").text.split()


def test_prebuilt_answers_resume_after_a_change_elsewhere(upstream_a: TestUpstreamServer,
                                                          modvault: ModvaultFactory) -> None:
    """A change announced by another process (here ``modvault rm`` of another version) makes the
    worker drop its caches and reread the blocks; once it has, answers are prebuilt again (they
    stopped for good before: the reread of unchanged blocks left the gate marked active)."""
    mv = modvault(upstream_a.url)
    other = f"/{MOD}/@v/v1.1.0.info"
    with httpx.Client(base_url=mv.url) as c:
        for _ in range(3):
            assert c.get(INFO).status_code == 200 and c.get(other).status_code == 200
        before = metric(mv.url, "modvault_prebuilt_answers_total", kind="info")
        assert c.get(INFO).status_code == 200
        assert metric(mv.url, "modvault_prebuilt_answers_total", kind="info") == before + 1
        mv_cli(mv.data_dir, "rm", f"{MOD}@v1.1.0")
        assert wait_for(functools.partial(answered_prebuilt, c, mv.url, INFO, "info"), 15)
        assert c.get(other).headers["cache-status"] == "modvault; fwd=miss; stored"  # removed


def test_authenticated_answers_are_never_prebuilt_public_ones(tmp_path: Path,
                                                              upstream_a: TestUpstreamServer,
                                                              modvault: ModvaultFactory) -> None:
    data = tmp_path / "authdata"
    token = mv_cli(data, "token", "create", "reader1", "--role", "reader").split()[-1]
    mv = modvault(upstream_a.url, "--auth", "on", data_dir=data)
    with httpx.Client(base_url=mv.url, headers={"Authorization": f"Bearer {token}"}) as c:
        for _ in range(4):
            r = c.get(INFO)
            assert r.status_code == 200 and r.headers["cache-control"].startswith("private")
        # Not a public answer learned from them: anonymous clients are still refused.
        assert httpx.get(mv.url + INFO).status_code == 401


def _tokens(data: Path, env: dict[str, str], *specs: tuple[str, ...]) -> dict[str, str]:
    """``modvault token create NAME --role ROLE [more]`` for each spec; name -> secret."""
    return {name: mv_cli(data, "token", "create", name, "--role", role, *more,
                         env=env).split()[-1] for name, role, *more in specs}


AUTH_ENV = {"MODVAULT_METRICS_AUTH": "false",
            "MODVAULT_ROLES": '{"slow": {"read": ["*"], "rate": 0.2, "burst": 3}}'}


def test_authenticated_prebuilt_answers_are_the_general_paths(tmp_path: Path,
                                                              upstream_a: TestUpstreamServer,
                                                              modvault: ModvaultFactory) -> None:
    """With auth on, the middleware still sees every request; once it lets one through, an
    authenticated GET is answered from the private table: the general path's bytes and headers
    (Cache-Control: private), counted and logged like it."""
    upstream_a.behaviours[BIG_MOD] = Behaviour(body=BIG_MOD_BODY)
    data = tmp_path / "authdata"
    token = _tokens(data, AUTH_ENV, ("reader1", "reader"))["reader1"]
    mv = modvault(upstream_a.url, "--auth", "on", data_dir=data, env=AUTH_ENV)
    cases: list[tuple[str, dict[str, str]]] = [
        (INFO, {}), (MODF, {}), (ZIP, {}), (BIG_MOD, {"Accept-Encoding": "gzip"}),
        (ZIP, {"Range": "bytes=100-1099"}),
    ]
    auth = {"Authorization": f"Bearer {token}", "Accept-Encoding": "identity"}
    with httpx.Client(base_url=mv.url, headers=auth) as c:
        for path, headers in cases:
            assert c.get(path, headers=headers).status_code in (200, 206), path
            general = c.get(path, headers=headers)
            kind = path.rsplit(".", 1)[1]
            before = metric(mv.url, "modvault_prebuilt_answers_total", kind=kind)
            hot = [c.get(path, headers=headers) for _ in range(3)]
            assert metric(mv.url, "modvault_prebuilt_answers_total", kind=kind) - before == 3, path
            for r in hot:
                assert (r.status_code, raw_items(r), r.content) == \
                       (general.status_code, raw_items(general), general.content), (path, headers)
            assert hot[0].headers["cache-control"].startswith("private"), path
        # Conditional requests and HEAD still take the general path.
        etag = c.get(INFO).headers["etag"]
        assert c.get(INFO, headers={"If-None-Match": etag}).status_code == 304
        assert c.head(ZIP).status_code == 200 and c.head(ZIP).content == b""
    total = metric(mv.url, "modvault_requests_total", kind="info", status="200")
    time.sleep(0.5)  # the access log is flushed within 0.1 s
    lines = [json.loads(x) for x in mv.output().splitlines()
             if '"modvault.access"' in x and f'"path":"{INFO}"' in x and '"status":200' in x]
    assert len(lines) == total >= 6, (len(lines), total)
    assert {ln["cache"] for ln in lines[2:]} == {"memory"}


def test_client_allowlist_runs_before_prebuilt_answers(upstream_a: TestUpstreamServer,
                                                       modvault: ModvaultFactory) -> None:
    """Auth off with a client allowlist: answers are prebuilt after the allowlist has let the
    request through; a client outside it (here through a trusted proxy) is still refused."""
    mv = modvault(upstream_a.url, env={"MODVAULT_ALLOW_CIDRS": "127.0.0.1/32",
                                       "MODVAULT_TRUSTED_PROXIES": "127.0.0.1/32"})
    with httpx.Client(base_url=mv.url, headers={"Accept-Encoding": "identity"}) as c:
        for path, kind in ((INFO, "info"), (ZIP, "zip")):
            general = [c.get(path) for _ in range(2)][-1]
            before = metric(mv.url, "modvault_prebuilt_answers_total", kind=kind)
            hot = c.get(path)
            assert metric(mv.url, "modvault_prebuilt_answers_total", kind=kind) == before + 1
            assert (hot.status_code, raw_items(hot), hot.content) == \
                   (general.status_code, raw_items(general), general.content)
            assert hot.headers["cache-control"].startswith("public")
            r = c.get(path, headers={"X-Forwarded-For": "10.9.9.9"})
            assert r.status_code == 403, path
            assert metric(mv.url, "modvault_prebuilt_answers_total", kind=kind) == before + 1


def test_anonymous_and_authenticated_prebuilt_answers_keep_their_headers(
        tmp_path: Path, upstream_a: TestUpstreamServer, modvault: ModvaultFactory) -> None:
    """Auth on with an anonymous role: both kinds of request get prebuilt answers, each from
    its own table: public for anonymous clients, private for authenticated ones."""
    data = tmp_path / "authdata"
    env = {**AUTH_ENV, "MODVAULT_ANONYMOUS_ROLE": "reader"}
    token = _tokens(data, env, ("reader1", "reader"))["reader1"]
    mv = modvault(upstream_a.url, "--auth", "on", data_dir=data, env=env)
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=mv.url, headers={"Accept-Encoding": "identity"}) as c:
        for path, kind in ((INFO, "info"), (ZIP, "zip")):
            for _ in range(3):  # fetched or read from the store, learned, then prebuilt
                assert c.get(path).status_code == 200
                assert c.get(path, headers=auth).status_code == 200
            before = metric(mv.url, "modvault_prebuilt_answers_total", kind=kind)
            anonymous, authenticated = c.get(path), c.get(path, headers=auth)
            assert metric(mv.url, "modvault_prebuilt_answers_total", kind=kind) == before + 2
            assert anonymous.headers["cache-control"].startswith("public"), path
            assert authenticated.headers["cache-control"].startswith("private"), path
            assert anonymous.content == authenticated.content
            assert c.get(path, headers={"Authorization": "Bearer mvt_wrong"}).status_code == 401


def test_access_checks_run_before_authenticated_prebuilt_answers(
        tmp_path: Path, upstream_a: TestUpstreamServer, modvault: ModvaultFactory) -> None:
    """A learned answer is only ever sent after the access middleware let the request through:
    no credentials, a bad token, a token for other modules, a revoked token and a rate limit
    are each refused as before, and no prebuilt answer is counted for them."""
    data = tmp_path / "authdata"
    tokens = _tokens(data, AUTH_ENV, ("reader1", "reader"), ("gone", "reader"),
                     ("other", "reader", "--modules", "other.example/*"), ("limited", "slow"))
    mv = modvault(upstream_a.url, "--auth", "on", data_dir=data, env=AUTH_ENV)

    def get(path: str, token: str | None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.get(mv.url + path, headers=headers)

    for path in (INFO, ZIP):
        for _ in range(3):  # fetched, learned, answered prebuilt
            assert get(path, tokens["reader1"]).status_code == 200
            assert get(path, tokens["gone"]).status_code == 200
    hot = {k: metric(mv.url, "modvault_prebuilt_answers_total", kind=k) for k in ("info", "zip")}
    assert hot["info"] >= 2 and hot["zip"] >= 2, hot
    passed = {}
    for path, kind in ((INFO, "info"), (ZIP, "zip")):
        assert get(path, None).status_code == 401
        assert get(path, "mvt_not-a-token").status_code == 401
        assert get(path, tokens["other"]).status_code == 403
        statuses = [get(path, tokens["limited"]).status_code for _ in range(3)]
        assert set(statuses) <= {200, 429}, statuses
        passed[kind] = statuses.count(200)
    # burst 3 at 0.2/s, one bucket for both paths: 3 pass, the other 3 are refused
    assert statuses == [429, 429, 429] and passed["info"] == 3, passed
    # Only what passed the middleware was answered, prebuilt.
    assert {k: metric(mv.url, "modvault_prebuilt_answers_total", kind=k) for k in hot} == \
        {k: hot[k] + passed[k] for k in hot}
    mv_cli(data, "token", "revoke", "gone", env=AUTH_ENV)
    assert wait_for(lambda: get(INFO, tokens["gone"]).status_code == 401, 15), "not revoked"
    assert get(ZIP, tokens["gone"]).status_code == 401
    # The reader still gets prebuilt answers afterwards.
    before = metric(mv.url, "modvault_prebuilt_answers_total", kind="zip")
    assert get(ZIP, tokens["reader1"]).status_code == 200
    assert metric(mv.url, "modvault_prebuilt_answers_total", kind="zip") == before + 1


@pytest.mark.parametrize("held", [True, False], ids=["hot_zip_bytes on", "hot_zip_bytes=0"])
def test_small_zips_are_answered_from_memory(upstream_a: TestUpstreamServer,
                                             modvault: ModvaultFactory, held: bool) -> None:
    """Once learned, a small zip's bytes are read once and its answers (whole and ranges) come from
    memory: bytes written into the stored file afterwards (the same file, a probe no real store
    sees) do not reach clients. With hot_zip_bytes=0 every answer is sent from the file."""
    mv = modvault(upstream_a.url, env={} if held else {"MODVAULT_HOT_ZIP_BYTES": "0"})
    stored = mv.data_dir / MOD / "@v" / "v1.0.0.zip"
    with httpx.Client(base_url=mv.url) as c:
        general = [c.get(ZIP) for _ in range(2)][-1]  # fetched and stored, then learned
        body = general.content
        wait_for_zip_bytes(mv.url, len(body) if held else 0)
        with open(stored, "r+b") as fh:  # same inode, other bytes
            fh.write(bytes(255 - b for b in body))
        before = metric(mv.url, "modvault_prebuilt_answers_total", kind="zip")
        r = c.get(ZIP)
        part = c.get(ZIP, headers={"Range": "bytes=10-99"})
        assert metric(mv.url, "modvault_prebuilt_answers_total", kind="zip") == before + 2
        assert raw_items(r) == raw_items(general)
        if held:
            assert r.content == body and part.content == body[10:100]
            # A multipart range takes the general path (from the file), which learns the zip again:
            # the bytes held stay, they are not read again (that would now read the new ones).
            assert c.get(ZIP, headers={"Range": "bytes=0-0,5-5"}).status_code == 206
            time.sleep(0.5)
            assert c.get(ZIP).content == body
        else:
            assert r.content == bytes(255 - b for b in body)


def test_a_replaced_zip_file_is_not_answered_from_memory(upstream_a: TestUpstreamServer,
                                                         modvault: ModvaultFactory) -> None:
    """Another file at the path (another inode): the prebuilt answer and its bytes are dropped, the
    general path answers from the file that is there now, and learns that one."""
    mv = modvault(upstream_a.url)
    stored = mv.data_dir / MOD / "@v" / "v1.0.0.zip"
    with httpx.Client(base_url=mv.url) as c:
        body = [c.get(ZIP) for _ in range(2)][-1].content
        wait_for_zip_bytes(mv.url, len(body))
        other = stored.with_name("other.tmp")
        other.write_bytes(body[::-1])
        os.replace(other, stored)
        for _ in range(4):  # dropped, then learned again from the new file
            r = c.get(ZIP)
            assert r.status_code == 200 and r.content == body[::-1]
        wait_for_zip_bytes(mv.url, len(body))
        assert c.get(ZIP).content == body[::-1]


def test_zips_held_in_memory_stay_within_hot_zip_bytes(upstream_a: TestUpstreamServer,
                                                       modvault: ModvaultFactory) -> None:
    """Room for one of two small zips: learning the second drops the first's bytes (oldest
    first); both are still answered, the first from its file."""
    sizes = {v: len(httpx.get(f"{upstream_a.url}/{MOD}/@v/{v}.zip").content)
             for v in ("v1.0.0", "v1.1.0")}
    budget = max(sizes.values()) + 100
    mv = modvault(upstream_a.url, env={"MODVAULT_HOT_ZIP_BYTES": str(budget)})
    with httpx.Client(base_url=mv.url) as c:
        first = [c.get(ZIP) for _ in range(2)][-1].content
        wait_for_zip_bytes(mv.url, sizes["v1.0.0"])
        second = f"/{MOD}/@v/v1.1.0.zip"
        [c.get(second) for _ in range(2)]
        wait_for_zip_bytes(mv.url, sizes["v1.1.0"])
        for _ in range(3):
            assert c.get(ZIP).content == first
        assert metric(mv.url, "modvault_hot_zip_bytes") <= budget


@pytest.mark.skipif(GO is None, reason="go toolchain not on PATH")
def test_the_go_command_verifies_zips_answered_from_memory(corpus: Corpus,
                                                           upstream_a: TestUpstreamServer,
                                                           modvault: ModvaultFactory,
                                                           tmp_path: Path) -> None:
    """go mod download through modvault, three times into empty module caches: the third time the
    zips come from memory (prebuilt answers, the gauge holds them) and the go command's hashes
    are the reference's."""
    mv = modvault(upstream_a.url)
    targets = ["github.com/acme/hello@v1.0.0", "github.com/acme/hello@v1.1.0"]
    for i in range(3):
        home = tmp_path / f"gohome{i}"
        home.mkdir()
        if i == 2:
            wait_for_zip_bytes(mv.url, sum(
                (mv.data_dir / MOD / "@v" / f"{t.split('@')[1]}.zip").stat().st_size
                for t in targets))
            before = metric(mv.url, "modvault_prebuilt_answers_total", kind="zip")
        proc = run_go(["mod", "download", "-json", *targets], cwd=home,
                      env=go_env(home, GOPROXY=mv.url))
        docs = {f"{d['Path']}@{d['Version']}": d for d in download_json(proc.stdout)}
        for key in targets:
            assert not docs[key].get("Error"), docs[key]
            assert docs[key]["Sum"] == corpus.reference[key]["Sum"], key
        if i == 0:
            wait_for_zip_bytes(mv.url, 0.0)  # learned by the second round, not the first
    assert metric(mv.url, "modvault_prebuilt_answers_total", kind="zip") == before + len(targets)


def test_ranges_of_a_zip_held_in_memory_frame_the_connection(upstream_a: TestUpstreamServer,
                                                             modvault: ModvaultFactory) -> None:
    """Every single-range form, from memory, each followed by a whole GET on the same keep-alive
    connection: the bytes are the slice asked for and nothing more reaches the connection."""
    mv = modvault(upstream_a.url)
    with httpx.Client(base_url=mv.url) as c:
        body = [c.get(ZIP) for _ in range(2)][-1].content
        wait_for_zip_bytes(mv.url, len(body))
        n = len(body)
        cases = {"bytes=0-0": body[:1], "bytes=0-": body, f"bytes={n - 1}-": body[-1:],
                 "bytes=-1": body[-1:], "bytes=-10": body[-10:], f"bytes=-{n + 5}": body,
                 "bytes=10-99": body[10:100], f"bytes=5-{n + 100}": body[5:],
                 f"bytes={n // 2}-{n // 2}": body[n // 2:n // 2 + 1]}
        before = metric(mv.url, "modvault_prebuilt_answers_total", kind="zip")
        for _ in range(2):  # the second time, the 206 answers an entry keeps (hotpath._PARTIALS)
            for header, want in cases.items():
                r = c.get(ZIP, headers={"Range": header})
                assert r.status_code == 206 and r.content == want, header
                assert r.headers["content-length"] == str(len(want)), header
                assert c.get(ZIP).content == body, header  # the connection is still framed right
        assert metric(mv.url, "modvault_prebuilt_answers_total", kind="zip") \
            == before + 4 * len(cases)


def test_prebuilt_answers_behind_a_client_allowlist_keep_to_it(
        upstream_a: TestUpstreamServer, modvault: ModvaultFactory) -> None:
    """allow_cidrs, with the client's address from a trusted proxy's X-Forwarded-For: once the
    answer is prebuilt and given on granian's thread (auth/quick.py), a client outside the list
    still gets the middleware's 403, and one inside it the prebuilt answer."""
    mv = modvault(upstream_a.url, env={"MODVAULT_ALLOW_CIDRS": "127.0.0.0/8,192.0.2.0/24",
                                       "MODVAULT_TRUSTED_PROXIES": "127.0.0.1/32"})
    inside, outside = {"x-forwarded-for": "192.0.2.7"}, {"x-forwarded-for": "10.1.2.3"}
    with httpx.Client(base_url=mv.url) as c:
        first = c.get(INFO, headers=inside)
        assert first.status_code == 200
        assert wait_for(functools.partial(answered_prebuilt, c, mv.url, INFO, "info", inside),
                        timeout=10)
        before = metric(mv.url, "modvault_prebuilt_answers_total", kind="info")
        for _ in range(5):
            assert c.get(INFO, headers=inside).content == first.content
            refused = c.get(INFO, headers=outside)
            assert refused.status_code == 403 and "client address" in refused.text
        assert metric(mv.url, "modvault_prebuilt_answers_total", kind="info") == before + 5
