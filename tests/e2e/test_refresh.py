"""Fresh lists: hot `list` answers are revalidated in the background before they expire, and a push
(POST /api/v1/refresh/{module}, what a git host's tag webhook calls) lists a new version at once."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ModvaultFactory
from tests.ops.depgraph import DepGraph
from tests.support.upstream_server import TestUpstreamServer, serve_tree

pytestmark = pytest.mark.e2e

LIST = "/github.com/acme/base/@v/list"


@pytest.fixture
def tree(depgraph: DepGraph, tmp_path: Path) -> Path:
    """A copy of the upstream whose list of base says only v1.0.0 (v1.1.0 is 'tagged' later)."""
    root = tmp_path / "upstream"
    shutil.copytree(depgraph.proxy, root)
    (root / LIST.lstrip("/")).write_text("v1.0.0\n")
    return root


@pytest.fixture
def upstream(tree: Path) -> Iterator[TestUpstreamServer]:
    yield from serve_tree(tree)


def test_push_refresh_lists_a_new_tag_at_once(tree: Path, upstream: TestUpstreamServer,
                                              modvault: ModvaultFactory) -> None:
    mv = modvault(upstream.url, env={"MODVAULT_REFRESH_BUDGET": "2"})
    assert httpx.get(mv.url + LIST).text == "v1.0.0\n"
    (tree / LIST.lstrip("/")).write_text("v1.0.0\nv1.1.0\n")  # the tag is pushed
    assert httpx.get(mv.url + LIST).text == "v1.0.0\n"  # still fresh for mutable_ttl
    r = httpx.post(mv.url + "/api/v1/refresh/github.com/acme/base")
    assert r.status_code == 200, r.text
    assert r.json() == {"Path": "github.com/acme/base", "Versions": ["v1.0.0", "v1.1.0"]}
    assert httpx.get(mv.url + LIST).text == "v1.0.0\nv1.1.0\n"
    assert httpx.get(mv.url + "/api/v1/refresh/github.com/acme/base").status_code == 405
    bad = httpx.post(mv.url + "/api/v1/refresh/-bad.example/x")
    assert bad.status_code == 400 and len(bad.text.splitlines()) == 1
    unknown = httpx.post(mv.url + "/api/v1/refresh/github.com/acme/nothere")
    assert unknown.status_code == 404
    # The budget (2 a minute, shared with hot refreshes) is spent: refuse, don't hammer upstreams.
    over = httpx.post(mv.url + "/api/v1/refresh/github.com/acme/base")
    assert over.status_code == 429 and "budget" in over.text


def test_hot_list_is_revalidated_before_it_expires(tree: Path, upstream: TestUpstreamServer,
                                                   modvault: ModvaultFactory) -> None:
    mv = modvault(upstream.url, env={"MODVAULT_MUTABLE_TTL": "4", "MODVAULT_MUTABLE_MAX_STALE": "600"})
    for _ in range(3):
        assert httpx.get(mv.url + LIST).text == "v1.0.0\n"
    (tree / LIST.lstrip("/")).write_text("v1.0.0\nv1.1.0\n")
    stored = mv.data_dir / LIST.lstrip("/")
    before = upstream.count(LIST)
    deadline = time.monotonic() + 20
    # No client asks again: only the background revalidation can bring the new version in.
    while time.monotonic() < deadline and stored.read_text() != "v1.0.0\nv1.1.0\n":
        time.sleep(0.25)
    assert stored.read_text() == "v1.0.0\nv1.1.0\n"
    assert upstream.count(LIST) > before
    assert httpx.get(mv.url + LIST).text == "v1.0.0\nv1.1.0\n"
