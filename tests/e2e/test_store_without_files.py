"""A store without local files (the memory store, like S3): zips are streamed and ranged from the
store's body rather than sent from a file, and the go command cannot tell the difference."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from tests.conftest import Corpus, ModvaultFactory
from tests.support.gitrepos import download_json, go_env, run_go
from tests.support.upstream_server import TestUpstreamServer

pytestmark = pytest.mark.e2e
ZIP = "/github.com/acme/hello/@v/v1.0.0.zip"


def test_go_and_http_semantics_over_a_streamed_store(corpus: Corpus, upstream_a: TestUpstreamServer,
                                                    modvault: ModvaultFactory, gohome: Path,
                                                    tmp_path: Path) -> None:
    mv = modvault(upstream_a.url, env={"MODVAULT_STORE": "memory"})
    env = go_env(gohome, GOPROXY=mv.url)
    proc = run_go(["mod", "download", "-json", "github.com/acme/hello@v1.0.0"], cwd=gohome, env=env)
    [doc] = download_json(proc.stdout)
    assert doc["Sum"] == corpus.reference["github.com/acme/hello@v1.0.0"]["Sum"]
    want = Path(str(doc["Zip"])).read_bytes()
    # Nothing went to the data directory: the store holds it all.
    assert not list((mv.data_dir).glob("github.com/**/*.zip"))

    with httpx.Client(base_url=mv.url, timeout=30) as c:
        r = c.get(ZIP)
        assert r.status_code == 200 and r.content == want
        assert r.headers["content-length"] == str(len(want))
        etag = r.headers["etag"]
        assert etag == '"' + hashlib.sha256(want).hexdigest()[:40] + '"'
        assert c.get(ZIP, headers={"if-none-match": etag}).status_code == 304
        head = c.head(ZIP)
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(len(want))
        part = c.get(ZIP, headers={"range": "bytes=10-99"})
        assert part.status_code == 206 and part.content == want[10:100]
        assert part.headers["content-range"] == f"bytes 10-99/{len(want)}"
        tail = c.get(ZIP, headers={"range": "bytes=-7"})
        assert tail.status_code == 206 and tail.content == want[-7:]
        multi = c.get(ZIP, headers={"range": "bytes=0-3,20-29"})
        assert multi.status_code == 206
        assert multi.headers["content-type"].startswith("multipart/byteranges; boundary=")
        assert want[0:4] in multi.content and want[20:30] in multi.content
        assert int(multi.headers["content-length"]) == len(multi.content)
        bad = c.get(ZIP, headers={"range": f"bytes={len(want) + 5}-"})
        assert bad.status_code == 416
    # A second client is served from the store: the upstream is not asked again.
    asked = upstream_a.count(ZIP)
    gohome2 = tmp_path / "gohome2"
    gohome2.mkdir()
    proc = run_go(["mod", "download", "-json", "github.com/acme/hello@v1.0.0"], cwd=gohome2,
                  env=go_env(gohome2, GOPROXY=mv.url))
    assert download_json(proc.stdout)[0]["Sum"] == doc["Sum"]
    assert upstream_a.count(ZIP) == asked
