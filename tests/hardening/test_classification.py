"""Class 6: no request and no upstream answer produces a 500; each failure is classified.

Before: a path element or version longer than a file name may be, ~1,000 path elements, and an
upstream .info nested 30,000 levels deep all answered 500.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from modvault.storage.fs import FileStore
from tests.conftest import ModvaultFactory
from tests.support.probes import leftovers
from tests.support.upstream_server import Behaviour, TestUpstreamServer

pytestmark = pytest.mark.e2e

LONG = "a" * 300


@pytest.mark.parametrize("path", [
    f"/example.com/{LONG}/@v/list",
    f"/example.com/{LONG}/@v/v1.0.0.info",
    f"/{LONG}.com/x/@latest",
    f"/example.com/x/@v/v1.0.0-{LONG}.info",
    f"/example.com/x/@v/v1.0.0-{LONG}.zip",
    f"/example.com/x/@v/{LONG}.info",  # a query (branch name) too long to keep
    "/example.com/" + "a/" * 1000 + "@v/list",
    "/example.com/" + "a/" * 1000 + "@v/v1.0.0.mod",
    "/example.com/" + "a/" * 100 + "@v/v1.0.0.info",
])
def test_unstorable_names_are_4xx(path: str, upstream_a: TestUpstreamServer,
                                  modvault: ModvaultFactory) -> None:
    # The upstream would answer anything: only our own rules decide.
    upstream_a.prefix_behaviours["/"] = Behaviour(body=b'{"Version":"v1.0.0"}')
    mv = modvault(upstream_a.url)
    r = httpx.get(mv.url + path, timeout=30)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert r.text.count("\n") == 1 and len(r.text) < 1100
    assert "internal error" not in r.text
    assert not leftovers(mv.data_dir)


def test_store_treats_unstorable_names_as_absent(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "data")
    assert asyncio.run(store.stat(f"example.com/{LONG}/@v/list")) is None
    assert asyncio.run(store.stat("example.com/" + "a/" * 2000 + "@v/list")) is None


def test_deeply_nested_info_is_502(upstream_a: TestUpstreamServer,
                                   modvault: ModvaultFactory) -> None:
    path = "/github.com/acme/hello/@v/v1.0.0.info"
    upstream_a.behaviours[path] = Behaviour(body=b"[" * 30000 + b"]" * 30000)
    upstream_a.behaviours["/github.com/acme/hello/@v/main.info"] = Behaviour(
        body=b'{"Version":' + b"[" * 30000 + b"]" * 30000 + b"}")
    mv = modvault(upstream_a.url, env={"MODVAULT_UPSTREAM_RETRIES": "0"})
    for p in (path, "/github.com/acme/hello/@v/main.info"):
        r = httpx.get(mv.url + p, timeout=30)
        assert r.status_code == 502, (r.status_code, r.text)
        assert upstream_a.url.removeprefix("http://") in r.text
    assert not (mv.data_dir / "github.com").exists()
    assert not leftovers(mv.data_dir)
