"""The download scan (module/zipstream.py) against the whole-file check: with the scan's figures,
check_zip reaches the same verdict, the same error and the same h1: hash as without them, however
the bytes were cut into chunks, and it reads again only what the scan could not follow."""

from __future__ import annotations

import random
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modvault.module import zipstream
from modvault.module.dirhash import hash_zip
from modvault.module.errors import ZipError
from modvault.module.zipcheck import ZipSummary, check_zip
from modvault.module.zipstream import ZipStreamScan
from tests.module.test_zipcheck import (
    PREFIX,
    M,
    RawEntry,
    V,
    _random_zip,
    build_zip,
    good_files,
    streamed_zip,
)


def scan_of(data: bytes, cuts: list[int] | None = None) -> ZipStreamScan:
    """Feed *data* cut at the given sizes (cycled), as a download would."""
    scan = ZipStreamScan()
    sizes = cuts or [len(data) or 1]
    pos, i = 0, 0
    while pos < len(data):
        n = max(1, sizes[i % len(sizes)])
        scan.feed(data[pos:pos + n])
        pos, i = pos + n, i + 1
    return scan


def verdict(path: Path, streamed: dict[int, zipstream.StreamedEntry] | None
            ) -> ZipSummary | str:
    try:
        return check_zip(path, M, V, streamed)
    except ZipError as exc:
        return f"ZipError: {exc}"


def test_valid_zip_is_checked_from_the_scan(tmp_path: Path) -> None:
    """Every file but go.mod (whose content the summary returns) comes from the scan."""
    files = good_files()
    p = tmp_path / "m.zip"
    p.write_bytes(build_zip(files))
    scan = scan_of(p.read_bytes(), [7])
    summary = check_zip(p, M, V, scan.entries)
    assert summary == check_zip(p, M, V)
    assert summary.h1 == hash_zip(p)
    assert scan.stopped == "central directory reached"
    # go.mod and the directory entry are read from the file; m.go, LICENSE, sub/s.go are not.
    assert (summary.from_scan, summary.from_file) == (3, 2)


def test_zip_written_by_go_style_streaming_writer_is_scanned(tmp_path: Path) -> None:
    """Data descriptors with a signature (as archive/zip writes them) are stepped over."""
    files = {PREFIX + "go.mod": "module example.com/m\n"}
    files.update({f"{PREFIX}f{i}.go": f"package m // {i}\n" * (i * 300 + 1) for i in range(5)})
    p = tmp_path / "m.zip"
    p.write_bytes(streamed_zip(files))
    scan = scan_of(p.read_bytes(), [1000])
    summary = check_zip(p, M, V, scan.entries)
    assert summary.from_scan == 5 and summary.h1 == hash_zip(p)


def test_descriptor_without_signature_is_stepped_over(tmp_path: Path) -> None:
    entries = [RawEntry(PREFIX + "a.go", b"package a\n" * 30, descriptor=True),
               RawEntry(PREFIX + "b.go", b"package b\n" * 30)]
    data = build_zip(entries)
    first = data.index(b"PK\x07\x08")
    data = data[:first] + data[first + 4:]  # archive/zip accepts a descriptor without it
    data = build_zip_with_offsets_fixed(data, removed_at=first, removed=4)
    p = tmp_path / "m.zip"
    p.write_bytes(data)
    scan = scan_of(data, [3])
    assert set(scan.entries) == {0, data.index(b"PK\x03\x04", 1)}
    assert verdict(p, scan.entries) == verdict(p, None)


def build_zip_with_offsets_fixed(data: bytes, *, removed_at: int, removed: int) -> bytes:
    """Shift the central directory's offsets after *removed* bytes were cut at *removed_at*."""
    out = bytearray(data)
    eocd = out.rindex(b"PK\x05\x06")
    cd_offset = int.from_bytes(out[eocd + 16:eocd + 20], "little") - removed
    out[eocd + 16:eocd + 20] = cd_offset.to_bytes(4, "little")
    pos = cd_offset
    while out[pos:pos + 4] == b"PK\x01\x02":
        off = int.from_bytes(out[pos + 42:pos + 46], "little")
        if off > removed_at:
            out[pos + 42:pos + 46] = (off - removed).to_bytes(4, "little")
        n, x, c = (int.from_bytes(out[pos + k:pos + k + 2], "little") for k in (28, 30, 32))
        pos += 46 + n + x + c
    return bytes(out)


@pytest.mark.parametrize("name", [PREFIX + "../evil.go", PREFIX + "a//b.go", "other@v1/x.go",
                                  PREFIX + "GO.MOD"])
def test_bad_names_are_refused_exactly_as_before(tmp_path: Path, name: str) -> None:
    p = tmp_path / "m.zip"
    p.write_bytes(build_zip([RawEntry(PREFIX + "go.mod", b"module m\n"), RawEntry(name, b"x")]))
    scan = scan_of(p.read_bytes(), [5])
    assert len(scan.entries) == 2
    old = verdict(p, None)
    assert isinstance(old, str) and verdict(p, scan.entries) == old


@pytest.mark.parametrize("lie", ["size", "crc", "descriptor_crc", "corrupt", "truncated-stream"])
def test_lying_entries_are_refused_exactly_as_before(tmp_path: Path, lie: str) -> None:
    data = b"package m\n" * 500
    e = RawEntry(PREFIX + "m.go", data)
    if lie == "size":
        e.size = len(data) - 1
    elif lie == "crc":
        e.crc = 12345
    elif lie == "descriptor_crc":
        e.descriptor, e.descriptor_crc = True, 1
    elif lie == "corrupt":
        e.compressed = b"\xff" * 40
    else:
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        e.compressed = (c.compress(data) + c.flush())[:-3]
    p = tmp_path / "m.zip"
    p.write_bytes(build_zip([e]))
    old = verdict(p, None)
    assert isinstance(old, str)
    for cuts in ([1], [13], [1 << 20]):
        assert verdict(p, scan_of(p.read_bytes(), cuts).entries) == old


def test_a_bomb_stops_the_scan_not_the_check(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The scan inflates at most MAX_OUTPUT in all; past it, the check reads the file as before."""
    monkeypatch.setattr(zipstream, "MAX_OUTPUT", 100_000)
    p = tmp_path / "m.zip"
    p.write_bytes(build_zip([RawEntry(PREFIX + "a.go", b"a" * 60_000),
                             RawEntry(PREFIX + "b.go", b"b" * 60_000)]))
    scan = scan_of(p.read_bytes(), [4096])
    assert scan.stopped.startswith("more inflated output")
    summary = check_zip(p, M, V, scan.entries)
    assert summary == check_zip(p, M, V)
    assert (summary.from_scan, summary.from_file) == (1, 1)


def test_scan_memory_is_bounded_by_a_header() -> None:
    """Arbitrary bytes are read without gathering them: the scan stops or holds a header."""
    scan = scan_of(b"PK\x03\x04" + b"\x00" * 22 + b"\xff\xff\xff\xff" + b"z" * 200_000, [4096])
    assert len(scan._buf) <= 30 + 2 * 0xFFFF
    scan = scan_of(random.Random(1).randbytes(1 << 20), [65536])
    assert scan.stopped == "not a local file header" and scan.entries == {}


def _cases() -> list[bytes]:
    rng = random.Random(1313)
    return [_random_zip(rng) for _ in range(600)]


def test_same_verdict_as_the_whole_file_check_on_random_zips(tmp_path: Path) -> None:
    """600 hand-made zips (lying sizes, CRCs, descriptors, methods, zip64, prefixes, truncation),
    each scanned in odd chunks: the same verdict, error text and h1: with the scan as without."""
    rng = random.Random(7)
    used = 0
    for i, data in enumerate(_cases()):
        p = tmp_path / f"{i}.zip"
        p.write_bytes(data)
        scan = scan_of(data, [rng.randint(1, 300) for _ in range(5)])
        old, new = verdict(p, None), verdict(p, scan.entries)
        assert new == old, (i, old, new)
        if isinstance(new, ZipSummary):
            used += new.from_scan
    # Most accepted zips are checked from the scan (39 entries with these seeds; the others are
    # go.mod, directories, and zips the scan cannot follow, e.g. with bytes before the first
    # header): the comparison above is not only of the fallback against itself.
    assert used > 20


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32), cuts=st.lists(st.integers(1, 5000), min_size=1, max_size=8),
       flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), max_size=3))
def test_same_verdict_with_corrupted_bytes(tmp_path: Path, seed: int, cuts: list[int],
                                           flips: list[tuple[int, int]]) -> None:
    """Bytes flipped anywhere (headers, data, descriptors, central directory): the scan may
    follow, misread or give up, and the check still says what it says without the scan."""
    data = bytearray(_random_zip(random.Random(seed)))
    for at, xor in flips:
        if data:
            data[at % len(data)] ^= xor
    p = tmp_path / "z.zip"
    p.write_bytes(bytes(data))
    assert verdict(p, scan_of(bytes(data), cuts).entries) == verdict(p, None)

