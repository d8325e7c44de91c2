"""modvault on an S3-compatible store (a real SeaweedFS): the go command through two replicas
sharing one bucket, and what happens when the object store goes away and comes back."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Corpus, ModvaultFactory
from tests.support.gitrepos import download_json, go_env, run_go
from tests.support.seaweed import SeaweedS3
from tests.support.upstream_server import TestUpstreamServer

pytestmark = pytest.mark.e2e
MOD = "github.com/acme/hello"
ZIP = f"/{MOD}/@v/v1.0.0.zip"


@pytest.fixture
def seaweed_own(tmp_path: Path) -> Iterator[SeaweedS3]:
    """A SeaweedFS of this test's own: the test stops and restarts it."""
    server = SeaweedS3(tmp_path / "seaweed")
    yield server
    server.stop()


def _download(home: Path, proxy: str, target: str) -> dict[str, object]:
    home.mkdir(exist_ok=True)
    proc = run_go(["mod", "download", "-json", target], cwd=home, env=go_env(home, GOPROXY=proxy))
    [doc] = download_json(proc.stdout)
    return doc


def test_two_replicas_share_one_bucket(corpus: Corpus, upstream_a: TestUpstreamServer,
                                       modvault: ModvaultFactory, seaweed_own: SeaweedS3,
                                       tmp_path: Path) -> None:
    env = seaweed_own.env(prefix=f"e2e-{uuid.uuid4().hex[:8]}")
    one = modvault(upstream_a.url, env=env)
    two = modvault(upstream_a.url, env=env)
    doc = _download(tmp_path / "go1", one.url, f"{MOD}@v1.0.0")
    assert doc["Sum"] == corpus.reference[f"{MOD}@v1.0.0"]["Sum"]
    want = Path(str(doc["Zip"])).read_bytes()
    assert not list(one.data_dir.rglob("*.zip"))  # the bucket holds it, not the local disk
    asked = upstream_a.count(ZIP)
    # The other replica serves it from the bucket: the upstream is not asked again.
    doc2 = _download(tmp_path / "go2", two.url, f"{MOD}@v1.0.0")
    assert doc2["Sum"] == doc["Sum"] and upstream_a.count(ZIP) == asked
    with httpx.Client(base_url=two.url, timeout=30) as c:
        r = c.get(ZIP, headers={"range": "bytes=5-20"})
        assert r.status_code == 206 and r.content == want[5:21]
        full = c.get(ZIP)
        assert full.content == want and full.headers["etag"].startswith('"')
        assert c.get(ZIP, headers={"if-none-match": full.headers["etag"]}).status_code == 304
        assert c.get("/readyz").status_code == 200


def test_object_store_down_is_503_and_recovers(upstream_a: TestUpstreamServer, modvault: ModvaultFactory,
                                               seaweed_own: SeaweedS3) -> None:
    mv = modvault(upstream_a.url, env=seaweed_own.env(prefix="down"))
    with httpx.Client(base_url=mv.url, timeout=60) as c:
        assert c.get("/readyz").status_code == 200
        assert c.get(f"/{MOD}/@v/v1.0.0.mod").status_code == 200
        seaweed_own.stop()
        r = c.get(ZIP)
        assert r.status_code == 503, r.text
        assert r.text.count("\n") == 1 and "store" in r.text and "Traceback" not in r.text
        ready = c.get("/readyz")
        assert ready.status_code == 503 and "store" in ready.text
        seaweed_own.start()
        assert c.get("/readyz").status_code == 200
        r = c.get(ZIP)
        assert r.status_code == 200 and r.content[:2] == b"PK"


def test_redirect_zips_sends_the_go_command_to_the_bucket(
        corpus: Corpus, upstream_a: TestUpstreamServer, modvault: ModvaultFactory,
        seaweed_own: SeaweedS3, tmp_path: Path) -> None:
    env = {**seaweed_own.env(prefix=f"redir-{uuid.uuid4().hex[:8]}"),
           "MODVAULT_REDIRECT_ZIPS": "true", "MODVAULT_REDIRECT_ZIPS_EXPIRY": "120"}
    mv = modvault(upstream_a.url, env=env)
    doc = _download(tmp_path / "go1", mv.url, f"{MOD}@v1.0.0")  # cold: fetched, stored, redirected
    assert doc["Sum"] == corpus.reference[f"{MOD}@v1.0.0"]["Sum"]
    doc2 = _download(tmp_path / "go2", mv.url, f"{MOD}@v1.0.0")  # warm: redirected
    assert doc2["Sum"] == doc["Sum"]
    want = Path(str(doc["Zip"])).read_bytes()
    with httpx.Client(base_url=mv.url, timeout=30) as c:
        r = c.get(ZIP)
        assert r.status_code == 302 and r.headers["cache-control"] == "no-store"
        location = r.headers["location"]
        assert location.startswith(seaweed_own.endpoint + "/") and "X-Amz-Expires=120" in location
        assert httpx.get(location, timeout=30).content == want  # the bucket sends the bytes
        # Ranges, HEAD and .info/.mod are still answered by modvault itself.
        assert c.get(ZIP, headers={"range": "bytes=0-9"}).content == want[:10]
        assert c.head(ZIP).status_code == 200
        assert c.get(f"/{MOD}/@v/v1.0.0.mod").status_code == 200
        assert "modvault_zip_redirects_total 3.0" in c.get("/metrics").text
    # Two go downloads plus the one above were redirected; the upstream was asked once.
    assert upstream_a.count(ZIP) == 1
