"""Class 3: no request makes the server allocate or send more than a small multiple of the artifact.

Before: ``Range: bytes=0-,0-,...`` (32 ranges) on a 15 MB .mod made one 503 MB response, took the
worker from 75 MB to 1.5 GB and blocked the event loop for 3 s (multipart joined in memory).
"""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from modvault.server.ranges import MAX_RANGES, ByteRange, coalesce, parse_range
from tests.conftest import ModvaultFactory
from tests.support.probes import LagProbe, rss_mb
from tests.support.upstream_server import Behaviour, TestUpstreamServer

PART_OVERHEAD = 200  # boundary line, content-type and content-range of one part, generously


def _covered(spans: list[ByteRange]) -> set[int]:
    return {i for s in spans for i in range(s.start, s.end)}


@given(st.integers(1, 400), st.lists(st.tuples(st.integers(0, 500), st.integers(0, 500)),
                                      min_size=1, max_size=MAX_RANGES))
def test_coalesced_ranges_never_exceed_the_representation(size: int,
                                                          pairs: list[tuple[int, int]]) -> None:
    header = "bytes=" + ",".join(f"{min(a, b)}-{max(a, b)}" for a, b in pairs)
    try:
        got = parse_range(header, size)
    except Exception as exc:  # only Unsatisfiable may escape
        assert type(exc).__name__ == "Unsatisfiable"
        return
    assert got is not None
    assert sum(s.length for s in got) <= size
    assert all(0 <= s.start < s.end <= size for s in got)
    want = {i for a, b in pairs for i in range(min(a, b), min(max(a, b) + 1, size))}
    assert _covered(got) == want  # the same bytes, each once


def test_disjoint_ranges_keep_their_order() -> None:
    spans = [ByteRange(50, 60), ByteRange(0, 10)]
    assert coalesce(spans) == spans
    assert coalesce([ByteRange(0, 10), ByteRange(5, 20), ByteRange(30, 40)]) == [
        ByteRange(0, 20), ByteRange(30, 40)]
    assert coalesce([ByteRange(10, 20), ByteRange(0, 10)]) == [ByteRange(0, 20)]  # adjacent


@pytest.mark.e2e
@pytest.mark.parametrize("ext", ["mod", "zip"])
def test_overlapping_multirange_is_bounded(ext: str, upstream_a: TestUpstreamServer,
                                           modvault: ModvaultFactory) -> None:
    mv = modvault(upstream_a.url)
    path = f"/github.com/acme/hello/@v/v1.1.0.{ext}"
    if ext == "mod":  # bigger than the memory tier's largest item: read from the store per request
        big = b"module github.com/acme/hello\n\n" + b"// padding padding padding\n" * 300_000
        upstream_a.behaviours[path] = Behaviour(body=big)
    full = httpx.get(mv.url + path, timeout=60).content
    size = len(full)
    pgid = mv.proc.pid
    before = rss_mb(pgid)
    with LagProbe(mv.url) as probe, httpx.Client(base_url=mv.url, timeout=60) as client:
        for header in ("bytes=" + ",".join(["0-"] * MAX_RANGES),
                       "bytes=" + ",".join(f"{i}-" for i in range(MAX_RANGES)),
                       "bytes=" + ",".join([f"-{size}"] * MAX_RANGES),
                       "bytes=0-10,5-20,-100,0-"):
            for _ in range(3):
                r = client.get(path, headers={"Range": header})
                assert r.status_code == 206, r.text[:200]
                assert len(r.content) <= size + MAX_RANGES * PART_OVERHEAD, (header, len(r.content))
                assert int(r.headers["content-length"]) == len(r.content)
                if not r.headers["content-type"].startswith("multipart/"):
                    assert r.content == full  # all coalesced into one range: the whole body
        r = client.get(path, headers={"Range": "bytes=0-0,2-2,-1"})
        assert r.status_code == 206 and r.headers["content-type"].startswith("multipart/")
        assert len(r.content) < 3 * PART_OVERHEAD
    after = rss_mb(pgid)
    assert after - before < 3 * size / 2**20 + 20, (before, after)  # was 20x size and more
    assert probe.worst < 1.0, probe.worst  # generous; the joined 503 MB body stalled 3 s
