"""GET /api/v1/status: the operator's one-page truth about a running modvault."""

from __future__ import annotations

import time

import httpx
import pytest

from modvault import __version__
from modvault.sources.redact import redact_url
from tests.conftest import ModvaultFactory
from tests.sumdb.sumdb_support import FakeSumdb, FakeSumdbServer
from tests.support.upstream_server import TestUpstreamServer

pytestmark = pytest.mark.e2e

INFO = "/github.com/acme/hello/@v/v1.0.0.info"
ZIP = "/github.com/acme/hello/@v/v1.0.0.zip"


def test_status_document(upstream_a: TestUpstreamServer, upstream_b: TestUpstreamServer,
                         modvault: ModvaultFactory) -> None:
    db = FakeSumdb()
    db.add_many(5)
    sumdb = FakeSumdbServer(db)
    try:
        upstream_b.fail_everything(status=503)
        host_port = upstream_b.url.removeprefix("http://")
        secret_upstream = f"http://user:hunter2pw@{host_port}"
        mv = modvault(f"{secret_upstream}|{upstream_a.url}", env={
            "MODVAULT_UPSTREAM_RETRIES": "0", "MODVAULT_BREAKER_FAILURES": "1",
            "MODVAULT_BREAKER_BACKOFF": "60", "MODVAULT_UPSTREAM_PROBE_INTERVAL": "0",
            "MODVAULT_SUMDB": f"{db.vkey} {sumdb.url}",
            "MODVAULT_VCS_CREDENTIALS": "git.corp.example=alice:s3cr3t-token"})
        for path in (INFO, ZIP):
            assert httpx.get(mv.url + path, timeout=30).status_code == 200
        assert httpx.get(mv.url + f"/sumdb/{db.name}/latest", timeout=30).status_code == 200
        # The store section comes from the store's last walk (one begun before the zip landed may
        # miss it); /index starts a new walk when the last is over 2 s old.
        deadline = time.monotonic() + 60
        while True:
            r = httpx.get(mv.url + "/api/v1/status", timeout=30)
            if (r.status_code != 200 or r.json()["store"]["artifacts_by_kind"].get("zip")
                    or time.monotonic() > deadline):
                break
            httpx.get(mv.url + "/index", timeout=30)
            time.sleep(0.5)
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        assert "hunter2pw" not in r.text and "s3cr3t-token" not in r.text
        doc = r.json()
        assert doc["version"] == __version__ and doc["uptime_s"] > 0
        assert doc["settings"]["upstream"] == f"{redact_url(secret_upstream)}|{upstream_a.url}"
        assert doc["settings"]["data_dir"] == str(mv.data_dir)
        ups = {u["name"]: u for u in doc["upstreams"]}
        bad, good = ups[redact_url(secret_upstream)], ups[upstream_a.url]
        assert bad["state"] == "open" and bad["failures"] == 1 and "503" in bad["last_error"]
        assert bad["retry_in_s"] > 0
        assert good["state"] == "closed" and good["successes"] >= 2
        assert 0 < good["latency_ms"]["p50"] <= good["latency_ms"]["p99"]
        store = doc["store"]
        assert store["artifacts_by_kind"].get("zip") == 1 and store["bytes"] > 0
        assert store["modules"] == 1 and store["versions"] == 1
        (entry,) = doc["sumdb"]
        assert entry["name"] == db.name and entry["latest_verified_tree_size"] == db.size
        assert entry["role"] == "proxied"
        assert ups[db.name]["kind"] == "sumdb" and ups[db.name]["state"] == "closed"
    finally:
        sumdb.stop()
