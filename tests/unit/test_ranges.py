"""Range and conditional rules (RFC 9110 §13, §14) as pure functions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modvault.server.ranges import (
    ByteRange,
    Unsatisfiable,
    accepts_gzip,
    etag_matches,
    if_range_allows,
    not_modified,
    parse_range,
)


@pytest.mark.parametrize(
    ("header", "size", "want"),
    [
        ("bytes=0-99", 1000, [(0, 100)]),
        ("bytes=0-0", 1000, [(0, 1)]),
        ("bytes=900-", 1000, [(900, 1000)]),
        ("bytes=-100", 1000, [(900, 1000)]),
        ("bytes=-5000", 1000, [(0, 1000)]),
        ("bytes=990-5000", 1000, [(990, 1000)]),
        ("bytes=0-1,5-9", 1000, [(0, 2), (5, 10)]),
        ("BYTES=0-1", 10, [(0, 2)]),
        ("bytes= 0-1 , 3-4", 10, [(0, 2), (3, 5)]),
        ("bytes=5-1000,2000-3000", 1000, [(5, 1000)]),  # unsatisfiable part dropped
    ],
)
def test_parse_range(header: str, size: int, want: list[tuple[int, int]]) -> None:
    got = parse_range(header, size)
    assert got is not None
    assert [(r.start, r.end) for r in got] == want


@pytest.mark.parametrize(
    "header",
    ["", "bytes", "bytes=", "items=0-1", "bytes=a-b", "bytes=5-1", "bytes=-", "bytes=0-1,,2-3",
     "bytes=1--2", "bytes=0x1-2", "bytes=" + ",".join(["0-1"] * 40), "bytes=١-٢"],
)
def test_malformed_range_is_ignored(header: str) -> None:
    assert parse_range(header, 100) is None


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=200-300", "bytes=-0", "bytes=100-,150-"])
def test_unsatisfiable(header: str) -> None:
    with pytest.raises(Unsatisfiable):
        parse_range(header, 100)


@given(st.integers(0, 10_000), st.text(max_size=40))
def test_parse_range_never_crashes(size: int, header: str) -> None:
    try:
        got = parse_range(header, size)
    except Unsatisfiable:
        return
    if got is not None:
        for r in got:
            assert 0 <= r.start < r.end <= size


@given(st.integers(1, 10_000), st.data())
def test_satisfiable_ranges_stay_inside(size: int, data: st.DataObject) -> None:
    start = data.draw(st.integers(0, size - 1))
    end = data.draw(st.integers(start, size * 2))
    got = parse_range(f"bytes={start}-{end}", size)
    assert got == [ByteRange(start, min(end, size - 1) + 1)]
    assert got[0].content_range(size) == f"bytes {start}-{min(end, size - 1)}/{size}"


def test_conditionals() -> None:
    tags = ('"abc"', '"abc-gzip"')
    assert etag_matches('"abc"', tags, weak=True)
    assert etag_matches('W/"abc"', tags, weak=True)
    assert not etag_matches('W/"abc"', tags, weak=False)
    assert etag_matches('"x", "abc-gzip"', tags, weak=True)
    assert etag_matches("*", tags, weak=True)
    assert not etag_matches('"zzz"', tags, weak=True)
    mtime = 1_700_000_000.0
    assert not_modified(None, "Tue, 14 Nov 2023 22:13:20 GMT", tags, mtime)
    assert not not_modified(None, "Tue, 14 Nov 2023 22:13:19 GMT", tags, mtime)
    assert not not_modified(None, "garbage", tags, mtime)
    # If-None-Match takes precedence over If-Modified-Since.
    assert not not_modified('"zzz"', "Tue, 14 Nov 2023 22:13:20 GMT", tags, mtime)
    assert if_range_allows(None, '"abc"', mtime)
    assert if_range_allows('"abc"', '"abc"', mtime)
    assert not if_range_allows('W/"abc"', '"abc"', mtime)
    assert if_range_allows("Tue, 14 Nov 2023 22:13:20 GMT", '"abc"', mtime)
    assert not if_range_allows("Tue, 14 Nov 2023 22:13:21 GMT", '"abc"', mtime)


@pytest.mark.parametrize(
    ("header", "want"),
    [("gzip", True), ("gzip, deflate", True), ("deflate", False), ("gzip;q=0", False),
     ("br, gzip;q=0.5", True), ("*", True), (None, False), ("", False), ("gzip;q=x", False)],
)
def test_accepts_gzip(header: str | None, want: bool) -> None:
    assert accepts_gzip(header) is want
