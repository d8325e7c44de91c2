"""Single-flight, crash safety, offline mode, TTLs, stale-if-error, and the operations endpoints."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import random
import threading
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from modvault.module.dirhash import hash_zip
from tests.conftest import Corpus, ModvaultFactory
from tests.support.upstream_server import Behaviour, TestUpstreamServer

pytestmark = pytest.mark.e2e

MOD = "github.com/acme/hello"
ZIP = f"/{MOD}/@v/v1.0.0.zip"
INFO = f"/{MOD}/@v/v1.0.0.info"
LIST = f"/{MOD}/@v/list"


def test_single_flight_50_concurrent(corpus: Corpus, upstream_a: TestUpstreamServer,
                                     modvault: ModvaultFactory) -> None:
    upstream_a.behaviours[ZIP] = Behaviour(delay=1.0)
    mv = modvault(upstream_a.url)

    async def fetch_all() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=60)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            return await asyncio.gather(*(client.get(mv.url + ZIP) for _ in range(50)))

    responses = asyncio.run(fetch_all())
    want = (corpus.proxy_a / ZIP.lstrip("/")).read_bytes()
    assert [r.status_code for r in responses] == [200] * 50
    assert all(r.content == want for r in responses)
    assert upstream_a.count(ZIP) == 1
    metrics = httpx.get(mv.url + "/metrics").text
    waits = [line for line in metrics.splitlines()
             if line.startswith('modvault_singleflight_coalesced_total{kind="zip"}')]
    assert waits and float(waits[0].split()[-1]) >= 40  # the rest waited on the one fetch


def test_errors_are_shared_too(upstream_a: TestUpstreamServer, modvault: ModvaultFactory) -> None:
    upstream_a.behaviours[ZIP] = Behaviour(status=500, body=b"broken\n", delay=1.0)
    mv = modvault(upstream_a.url, env={"MODVAULT_UPSTREAM_RETRIES": "0"})

    async def fetch_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(*(client.get(mv.url + ZIP) for _ in range(10)))

    assert [r.status_code for r in asyncio.run(fetch_all())] == [502] * 10
    assert upstream_a.count(ZIP) == 1


def _big_module(root: Path, size: int) -> tuple[Path, str]:
    """A valid module zip of ~size incompressible bytes, in a static proxy tree."""
    mod = "github.com/acme/big"
    rnd = random.Random(7)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{mod}@v1.0.0/go.mod", f"module {mod}\n")
        for i in range(size // (1 << 20)):
            zf.writestr(f"{mod}@v1.0.0/data/blob{i}.bin", rnd.randbytes(1 << 20))
    d = root / mod / "@v"
    d.mkdir(parents=True)
    (d / "v1.0.0.zip").write_bytes(buf.getvalue())
    (d / "list").write_text("v1.0.0\n")
    return d / "v1.0.0.zip", f"/{mod}/@v/v1.0.0.zip"


def test_kill9_mid_download_leaves_nothing_partial(tmp_path: Path, modvault: ModvaultFactory) -> None:
    src, path = _big_module(tmp_path / "big-proxy", 8 << 20)
    srv = TestUpstreamServer(tmp_path / "big-proxy").start()
    try:
        srv.behaviours[path] = Behaviour(trickle=0.01, chunk=16 * 1024, times=1)
        data_dir = tmp_path / "data"
        mv = modvault(srv.url, data_dir=data_dir)
        result: dict[str, object] = {}

        def client() -> None:
            try:
                result["r"] = httpx.get(mv.url + path, timeout=60)
            except httpx.HTTPError as exc:
                result["err"] = exc

        t = threading.Thread(target=client)
        t.start()
        tmpdir = data_dir / ".modvault" / "tmp"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # wait until the download is well under way
            partial = [p for p in tmpdir.iterdir()] if tmpdir.exists() else []
            if partial and partial[0].stat().st_size > 512 * 1024:
                break
            time.sleep(0.05)
        else:
            pytest.fail("download never started")
        mv.kill9()
        t.join(30)
        assert "r" not in result or result["r"].status_code != 200  # type: ignore[union-attr]
        stored = data_dir / path.lstrip("/")
        assert not stored.exists()
        # Restart on the same data directory: the leftover temp file is swept, nothing partial
        # is served, and the artifact is fetched again whole.
        mv2 = modvault(srv.url, data_dir=data_dir)
        assert list(tmpdir.iterdir()) == []
        r = httpx.get(mv2.url + path, timeout=60)
        assert r.status_code == 200
        assert hashlib.sha256(r.content).digest() == hashlib.sha256(src.read_bytes()).digest()
        assert hash_zip(stored) == hash_zip(src)
    finally:
        srv.stop()


def test_offline_serves_only_the_store(upstream_a: TestUpstreamServer, modvault: ModvaultFactory,
                                       tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    online = modvault(upstream_a.url, data_dir=data_dir)
    assert httpx.get(online.url + ZIP).status_code == 200
    assert httpx.get(online.url + INFO).status_code == 200
    online.stop()
    before = len(upstream_a.requests)
    offline = modvault(upstream_a.url, "--offline", data_dir=data_dir)
    assert httpx.get(offline.url + ZIP).status_code == 200
    r = httpx.get(offline.url + f"/{MOD}/@v/v1.1.0.info")
    assert r.status_code == 404 and "offline" in r.text
    # No list was ever fetched: offline, list comes from the versions in the store.
    assert httpx.get(offline.url + LIST).text == "v1.0.0\n"
    assert len(upstream_a.requests) == before
    assert httpx.get(offline.url + "/readyz").status_code == 200


def test_stale_while_revalidate_and_stale_if_error(corpus: Corpus, upstream_a: TestUpstreamServer,
                                                   modvault: ModvaultFactory) -> None:
    # Hot-list revalidation (refresh_budget) would refresh the list before it goes stale; this test
    # is about the plain stale-while-revalidate path, so it is off here.
    mv = modvault(upstream_a.url, env={"MODVAULT_MUTABLE_TTL": "1", "MODVAULT_UPSTREAM_RETRIES": "0",
                                       "MODVAULT_REFRESH_BUDGET": "0"})
    assert httpx.get(mv.url + LIST).text == "v1.0.0\nv1.1.0\nv1.2.0-rc.1\n"
    assert upstream_a.count(LIST) == 1
    assert httpx.get(mv.url + LIST).status_code == 200
    assert upstream_a.count(LIST) == 1  # fresh: from cache
    upstream_a.behaviours[LIST] = Behaviour(body=b"v1.0.0\nv1.1.0\nv1.2.0-rc.1\nv1.3.0\n")
    time.sleep(1.2)
    # Stale: served at once from cache while one background fetch revalidates.
    assert httpx.get(mv.url + LIST).text == "v1.0.0\nv1.1.0\nv1.2.0-rc.1\n"
    deadline = time.monotonic() + 5
    while httpx.get(mv.url + LIST).text != "v1.0.0\nv1.1.0\nv1.2.0-rc.1\nv1.3.0\n":
        assert time.monotonic() < deadline, "background refresh never landed"
        time.sleep(0.1)
    # Every upstream failing: the stale answer is still served.
    upstream_a.behaviours[LIST] = Behaviour(status=503, body=b"down\n")
    time.sleep(1.2)
    for _ in range(3):
        r = httpx.get(mv.url + LIST)
        assert r.status_code == 200 and "v1.3.0" in r.text
        time.sleep(0.2)


def test_list_falls_back_to_store_when_upstream_down(upstream_a: TestUpstreamServer,
                                                     modvault: ModvaultFactory) -> None:
    mv = modvault(upstream_a.url, env={"MODVAULT_UPSTREAM_RETRIES": "0"})
    assert httpx.get(mv.url + f"/{MOD}/@v/v1.1.0.mod").status_code == 200
    upstream_a.behaviours[LIST] = Behaviour(status=502, body=b"down\n")
    r = httpx.get(mv.url + LIST)
    assert r.status_code == 200 and r.text == "v1.1.0\n"
    r = httpx.get(mv.url + "/github.com/acme/unknown/@v/list")
    assert r.status_code == 404


def test_negative_answers_are_cached_briefly(upstream_a: TestUpstreamServer,
                                             modvault: ModvaultFactory) -> None:
    path = f"/{MOD}/@v/v1.9.9.info"
    mv = modvault(upstream_a.url, env={"MODVAULT_NEGATIVE_TTL": "1"})
    assert httpx.get(mv.url + path).status_code == 404
    assert httpx.get(mv.url + path).status_code == 404
    assert upstream_a.count(path) == 1
    time.sleep(1.1)
    assert httpx.get(mv.url + path).status_code == 404
    assert upstream_a.count(path) == 2


def test_health_ready_metrics_and_access_log(upstream_a: TestUpstreamServer,
                                             modvault: ModvaultFactory) -> None:
    secret_upstream = upstream_a.url.replace("http://", "http://user:hunter2@")
    mv = modvault(secret_upstream)
    assert httpx.get(mv.url + "/healthz").text == "ok\n"
    assert httpx.get(mv.url + "/readyz").status_code == 200
    assert httpx.get(mv.url + INFO + "?token=sekrit").status_code == 200
    assert httpx.get(mv.url + INFO).status_code == 200
    upstream_a.behaviours[ZIP] = Behaviour(status=500, body=b"nope\n")
    r = httpx.get(mv.url + ZIP)
    assert r.status_code == 502 and "hunter2" not in r.text
    metrics = httpx.get(mv.url + "/metrics").text
    assert 'modvault_requests_total{kind="info",status="200"} 2.0' in metrics
    assert 'modvault_requests_total{kind="zip",status="502"} 1.0' in metrics
    assert 'modvault_cache_lookups_total{result="hit",tier="memory"}' in metrics
    assert "modvault_upstream_requests_total" in metrics
    assert "modvault_request_duration_seconds_bucket" in metrics
    assert 'modvault_bytes_served_total{kind="info"}' in metrics
    lines = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [json.loads(x) for x in mv.output().splitlines() if x.startswith("{")
                 and '"modvault.access"' in x]
        if len(lines) >= 5:
            break
        time.sleep(0.1)
    info_lines = [x for x in lines if x["path"] == INFO]
    assert [x["cache"] for x in info_lines] == ["upstream", "memory"]
    assert info_lines[0]["upstream"].startswith("http://127.0.0.1")
    assert {"method", "path", "status", "bytes", "duration_ms", "cache", "upstream"} <= set(lines[0])
    out = mv.output()
    assert "sekrit" not in out and "hunter2" not in out


def test_readyz_fails_with_no_reachable_upstream(modvault: ModvaultFactory) -> None:
    mv = modvault("http://127.0.0.1:9", env={"MODVAULT_UPSTREAM_CONNECT_TIMEOUT": "1"})
    r = httpx.get(mv.url + "/readyz", timeout=20)
    assert r.status_code == 503 and "no upstream reachable" in r.text


def test_bad_configuration_fails_at_startup(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("MODVAULT_")}
    env["MODVAULT_UPSTREAM"] = "gopher://x"
    proc = subprocess.run([sys.executable, "-m", "modvault", "serve", "--data-dir",
                           str(tmp_path)], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "upstream" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "modvault", "serve", "--listen", "nope"],
                          env=env | {"MODVAULT_UPSTREAM": "off"}, capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 2 and "listen" in proc.stderr

