"""Chain semantics and misbehaving upstreams, checked with raw HTTP against a running modvault.

Each failure must give a clear 502/504 naming the upstream and the reason, and leave nothing in the store.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.conftest import Corpus, ModvaultFactory
from tests.support.upstream_server import Behaviour, TestUpstreamServer

pytestmark = pytest.mark.e2e

MOD = "github.com/acme/hello"
ZIP_PATH = f"/{MOD}/@v/v1.0.0.zip"
INFO_PATH = f"/{MOD}/@v/v1.0.0.info"

# No memory of not-found answers or refusals: these tests see every answer fresh (the memories
# have their own tests in test_health_failover.py).
FAST = {"MODVAULT_UPSTREAM_RETRIES": "1", "MODVAULT_UPSTREAM_READ_TIMEOUT": "2",
        "MODVAULT_UPSTREAM_TOTAL_TIMEOUT": "6", "MODVAULT_NEGATIVE_TTL": "0",
        "MODVAULT_REFUSAL_TTL": "0"}


def make_zip(names: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in names.items():
            zf.writestr(name, data)
    return buf.getvalue()


def stored_nothing(data_dir: Path) -> bool:
    artifacts = [p for p in (data_dir / "github.com").rglob("*") if p.is_file()] \
        if (data_dir / "github.com").exists() else []
    tmp = data_dir / ".modvault" / "tmp"
    leftovers = list(tmp.iterdir()) if tmp.exists() else []
    return not artifacts and not leftovers


# -- chain semantics ----------------------------------------------------------------------------


def test_404_falls_through_comma(upstream_a: TestUpstreamServer, upstream_b: TestUpstreamServer,
                                 modvault: ModvaultFactory) -> None:
    mv = modvault(f"{upstream_b.url},{upstream_a.url}", env=FAST)
    r = httpx.get(mv.url + INFO_PATH)
    assert r.status_code == 200 and r.json()["Version"] == "v1.0.0"
    assert upstream_b.count(INFO_PATH) == 1 and upstream_a.count(INFO_PATH) == 1


def test_500_with_comma_is_502_and_stops(upstream_a: TestUpstreamServer,
                                         upstream_b: TestUpstreamServer,
                                         modvault: ModvaultFactory) -> None:
    upstream_b.behaviours[INFO_PATH] = Behaviour(status=500, body=b"boom\n")
    mv = modvault(f"{upstream_b.url},{upstream_a.url}", env=FAST)
    r = httpx.get(mv.url + INFO_PATH)
    assert r.status_code == 502
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert "500" in r.text and "127.0.0.1" in r.text and r.text.count("\n") == 1
    assert upstream_a.count(INFO_PATH) == 0
    assert stored_nothing(mv.data_dir)


def test_500_with_pipe_falls_through(upstream_a: TestUpstreamServer, upstream_b: TestUpstreamServer,
                                     modvault: ModvaultFactory) -> None:
    upstream_b.behaviours[INFO_PATH] = Behaviour(status=500, body=b"boom\n")
    mv = modvault(f"{upstream_b.url}|{upstream_a.url}", env=FAST)
    r = httpx.get(mv.url + INFO_PATH)
    assert r.status_code == 200 and r.json()["Version"] == "v1.0.0"
    assert upstream_a.count(INFO_PATH) == 1


def test_timeout_with_pipe_falls_through(upstream_a: TestUpstreamServer,
                                         upstream_b: TestUpstreamServer,
                                         modvault: ModvaultFactory) -> None:
    upstream_b.behaviours[INFO_PATH] = Behaviour(delay=4)
    mv = modvault(f"{upstream_b.url}|{upstream_a.url}",
                  env={**FAST, "MODVAULT_UPSTREAM_RETRIES": "0"})
    r = httpx.get(mv.url + INFO_PATH, timeout=30)
    assert r.status_code == 200 and r.json()["Version"] == "v1.0.0"


def test_timeout_with_comma_is_504(upstream_a: TestUpstreamServer, modvault: ModvaultFactory) -> None:
    upstream_a.behaviours[INFO_PATH] = Behaviour(delay=4)
    mv = modvault(upstream_a.url, env={**FAST, "MODVAULT_UPSTREAM_RETRIES": "0"})
    r = httpx.get(mv.url + INFO_PATH, timeout=30)
    assert r.status_code == 504, r.text
    assert stored_nothing(mv.data_dir)


def test_off(upstream_a: TestUpstreamServer, modvault: ModvaultFactory) -> None:
    mv = modvault("off", env=FAST)
    r = httpx.get(mv.url + INFO_PATH)
    assert r.status_code == 404 and "off" in r.text
    mv2 = modvault(f"{upstream_a.url},off", env=FAST)
    assert httpx.get(mv2.url + INFO_PATH).status_code == 200
    assert httpx.get(mv2.url + "/github.com/acme/nothere/@v/list").status_code == 404


def test_direct_unknown_repository_is_404(modvault: ModvaultFactory, tmp_path: Path) -> None:
    cfg = tmp_path / "gitconfig"
    cfg.write_text(f'[url "{tmp_path / "no-repos"}/"]\n\tinsteadOf = https://github.com/\n')
    mv = modvault("direct", env={**FAST, "GIT_CONFIG_GLOBAL": str(cfg), "GIT_CONFIG_NOSYSTEM": "1"})
    r = httpx.get(mv.url + INFO_PATH, timeout=60)
    assert r.status_code == 404 and "github.com/acme/hello" in r.text, r.text
    assert stored_nothing(mv.data_dir)


def test_retry_after_then_success(upstream_a: TestUpstreamServer, modvault: ModvaultFactory) -> None:
    upstream_a.behaviours[INFO_PATH] = Behaviour(status=503, body=b"busy\n",
                                                 headers={"Retry-After": "1"}, times=1)
    mv = modvault(upstream_a.url, env=FAST)
    r = httpx.get(mv.url + INFO_PATH, timeout=30)
    assert r.status_code == 200
    assert upstream_a.count(INFO_PATH) == 2


def test_410_is_passed_on(upstream_a: TestUpstreamServer, modvault: ModvaultFactory) -> None:
    upstream_a.behaviours[INFO_PATH] = Behaviour(status=410, body=b"gone: removed by owner\n")
    mv = modvault(upstream_a.url, env=FAST)
    r = httpx.get(mv.url + INFO_PATH)
    assert r.status_code == 410 and "removed by owner" in r.text


# -- untrusted upstream answers ------------------------------------------------------------------

PREFIX = f"{MOD}@v1.0.0/"


@pytest.mark.parametrize(
    ("path", "behaviour", "status", "reason"),
    [
        (INFO_PATH, Behaviour(body=b"{not json"), 502, "not valid JSON"),
        (INFO_PATH, Behaviour(body=b'{"Version": "v1.0.1", "Time": "2023-01-01T00:00:00Z"}'), 502,
         "does not match"),
        (INFO_PATH, Behaviour(body=b'{"Version": "1.0.0"}'), 502, "not a canonical version"),
        (INFO_PATH, Behaviour(body=b'["v1.0.0"]'), 502, "no Version"),
        (ZIP_PATH, Behaviour(body=make_zip({"other.com/x@v1.0.0/a.go": b"package a\n"})), 502, "zip"),
        (ZIP_PATH, Behaviour(body=make_zip({PREFIX + "../evil.go": b"package a\n"})), 502, "zip"),
        (ZIP_PATH, Behaviour(body=make_zip({PREFIX + "a.go": b"package a\n",
                                            PREFIX + "A.go": b"package a\n"})), 502, "zip"),
        (ZIP_PATH, Behaviour(body=b"PK\x03\x04 this is not really a zip"), 502, "zip"),
        (ZIP_PATH, Behaviour(content_length=100_000), 502, "closed"),
        (ZIP_PATH, Behaviour(content_length=50), 502, "zip"),
        (ZIP_PATH, Behaviour(drop_after=100), 502, "closed"),
        (ZIP_PATH, Behaviour(redirect_to=ZIP_PATH), 502, "redirects"),
        (ZIP_PATH, Behaviour(trickle=0.5, chunk=32), 504, "within"),
    ],
    ids=["bad-json", "wrong-version", "non-canonical", "not-object", "zip-outside-prefix",
         "zip-dotdot", "zip-case-collision", "zip-corrupt", "lying-length", "short-length", "dropped",
         "redirect-loop", "slow-trickle"],
)
def test_bad_upstream_answers(upstream_a: TestUpstreamServer, modvault: ModvaultFactory,
                              path: str, behaviour: Behaviour, status: int, reason: str) -> None:
    upstream_a.behaviours[path] = behaviour
    mv = modvault(upstream_a.url, env={**FAST, "MODVAULT_UPSTREAM_TOTAL_TIMEOUT": "3"})
    r = httpx.get(mv.url + path, timeout=30)
    assert r.status_code == status, r.text
    assert reason in r.text
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert len(r.text.strip().splitlines()) == 1
    assert stored_nothing(mv.data_dir), list(mv.data_dir.rglob("*"))
    # Once the upstream behaves, the same request succeeds: no bad answer was cached.
    upstream_a.behaviours.clear()
    assert httpx.get(mv.url + path, timeout=30).status_code == 200


def test_zip_over_the_size_limit(upstream_a: TestUpstreamServer, corpus: Corpus,
                                 modvault: ModvaultFactory) -> None:
    size = (corpus.proxy_a / ZIP_PATH.lstrip("/")).stat().st_size
    mv = modvault(upstream_a.url, env={**FAST, "MODVAULT_MAX_ZIP_BYTES": str(size - 1)})
    r = httpx.get(mv.url + ZIP_PATH)
    assert r.status_code == 502 and "larger than" in r.text
    assert stored_nothing(mv.data_dir)
    # Without a Content-Length the limit is enforced while streaming.
    upstream_a.behaviours[ZIP_PATH] = Behaviour(no_length=True)
    r = httpx.get(mv.url + ZIP_PATH)
    assert r.status_code == 502 and "larger than" in r.text
    assert stored_nothing(mv.data_dir)


def test_oversized_mod(upstream_a: TestUpstreamServer, modvault: ModvaultFactory) -> None:
    path = f"/{MOD}/@v/v1.0.0.mod"
    upstream_a.behaviours[path] = Behaviour(body=b"module github.com/acme/hello\n" + b"//" * 600)
    mv = modvault(upstream_a.url, env={**FAST, "MODVAULT_MAX_MOD_BYTES": "1000"})
    r = httpx.get(mv.url + path)
    assert r.status_code == 502 and "larger than" in r.text
    assert stored_nothing(mv.data_dir)
