"""Checking untrusted module zips (modvault.module.zipcheck), rule by rule and against x/mod."""

from __future__ import annotations

import io
import os
import random
import struct
import time
import tracemalloc
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from modvault.module.dirhash import hash_zip
from modvault.module.errors import ZipError
from modvault.module.zipcheck import (
    MAX_GO_MOD,
    MAX_LICENSE,
    MAX_ZIP_FILE,
    CollisionChecker,
    ZipReader,
    ZipSummary,
    check_zip,
    equal_fold,
    go_path_clean,
    str_to_fold,
)
from tests.module.test_modfile import XMod, xmod_oracle

M, V = "example.com/m", "v1.0.0"
PREFIX = f"{M}@{V}/"


@pytest.fixture(scope="session")
def xmod(tmp_path_factory: pytest.TempPathFactory) -> XMod:
    return xmod_oracle(tmp_path_factory)


# --- a zip writer that can lie ----------------------------------------------------------------


@dataclass
class RawEntry:
    """One entry of a hand-made zip; every header field can be made to lie."""

    name: bytes | str
    data: bytes = b""
    method: int = 8  # 0 stored, 8 deflate
    size: int | None = None  # declared uncompressed size (None: the real one)
    crc: int | None = None  # declared CRC-32 (None: the real one)
    descriptor: bool = False  # sizes and CRC in a data descriptor (flag 0x8)
    descriptor_crc: int | None = None
    flags: int = 0
    compressed: bytes | None = None  # raw body to store instead of compressing data
    creator: int = 3
    external_attr: int = 0o100644 << 16
    zip64: bool = False  # sizes and offset in a zip64 extra field of the central header


def build_zip(entries: list[RawEntry], *, comment: bytes = b"", prefix: bytes = b"",
              zip64: bool = False) -> bytes:
    """A zip of ``entries``; with ``zip64`` the end record points to a zip64 end record."""
    out = bytearray(prefix)
    central = bytearray()
    for e in entries:
        name = e.name.encode() if isinstance(e.name, str) else e.name
        if e.compressed is not None:
            body = e.compressed
        elif e.method == 8:
            c = zlib.compressobj(6, zlib.DEFLATED, -15)
            body = c.compress(e.data) + c.flush()
        else:
            body = e.data
        crc = zlib.crc32(e.data) if e.crc is None else e.crc
        size = len(e.data) if e.size is None else e.size
        flags = e.flags | (0x8 if e.descriptor else 0)
        offset = len(out)
        local = (0, 0, 0) if e.descriptor else (crc, len(body), size)
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, flags, e.method, 0, 0x21, *local,
                           len(name), 0) + name + body
        if e.descriptor:
            dcrc = crc if e.descriptor_crc is None else e.descriptor_crc
            out += struct.pack("<4s3L", b"PK\x07\x08", dcrc, len(body), size)
        extra = b""
        fields = (len(body), size, offset)
        if e.zip64:
            extra = struct.pack("<2H3Q", 1, 24, size, len(body), offset)
            fields = (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF)
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", (e.creator << 8) | 45, 45, flags,
                               e.method, 0, 0x21, crc, fields[0], fields[1], len(name),
                               len(extra), 0, 0, 0, e.external_attr, fields[2]) + name + extra
    cd_offset = len(out)
    out += central
    if zip64:
        end64 = len(out)
        out += struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, len(entries),
                           len(entries), len(central), cd_offset)
        out += struct.pack("<4sLQL", b"PK\x06\x07", 0, end64, 1)
        out += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF,
                           0xFFFFFFFF, len(comment)) + comment
    else:
        out += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries),
                           len(central), cd_offset, len(comment)) + comment
    return bytes(out)


def write(tmp_path: Path, data: bytes, name: str = "m.zip") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def good_files() -> list[RawEntry]:
    return [
        RawEntry(PREFIX + "go.mod", b"module example.com/m\n\ngo 1.21\n"),
        RawEntry(PREFIX + "m.go", b"package m\n"),
        RawEntry(PREFIX + "LICENSE", b"MIT\n", method=0),
        RawEntry(PREFIX + "sub/", b""),
        RawEntry(PREFIX + "sub/s.go", b"package sub\n" * 50),
    ]


# --- valid zips -------------------------------------------------------------------------------


def test_valid_zip_summary(tmp_path: Path) -> None:
    p = write(tmp_path, build_zip(good_files()))
    summary = check_zip(p, M, V)
    assert summary == ZipSummary(
        file_count=4,
        total_size=len(b"module example.com/m\n\ngo 1.21\n") + 10 + 4 + 12 * 50,
        has_gomod=True,
        gomod=b"module example.com/m\n\ngo 1.21\n",
        h1=hash_zip(p),
    )


def test_zip_written_by_zipfile(tmp_path: Path) -> None:
    p = tmp_path / "z.zip"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(PREFIX + "a.go", "package a\n")
        zf.writestr(PREFIX + "é/ü.go", "package x\n")
    assert check_zip(p, M, V) == ZipSummary(2, 20, False, None, hash_zip(p))


def streamed_zip(files: dict[str, str]) -> bytes:
    """A deflated zip written to an unseekable stream, as archive/zip's streaming writer does:
    every entry is followed by a data descriptor (with its signature)."""
    class Unseekable(io.RawIOBase):
        def __init__(self) -> None:
            self.buf = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, b: bytes) -> int:  # type: ignore[override]
            self.buf += b
            return len(b)

    out = Unseekable()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:  # type: ignore[arg-type]
        for name, text in files.items():
            zf.writestr(name, text)
    return bytes(out.buf)


def test_zip_written_to_a_stream_has_data_descriptors(tmp_path: Path) -> None:
    p = write(tmp_path, streamed_zip({PREFIX + "go.mod": "module example.com/m\n"}))
    with open(p, "rb") as fp:
        assert ZipReader(fp).entries[0].flags & 0x8
    assert check_zip(p, M, V).gomod == b"module example.com/m\n"


def test_empty_module_zip_is_valid(tmp_path: Path) -> None:
    p = write(tmp_path, build_zip([]))
    assert check_zip(p, M, V) == ZipSummary(0, 0, False, None, hash_zip(p))


def test_prefix_entry_and_directories_are_allowed(tmp_path: Path) -> None:
    entries = [RawEntry(PREFIX), RawEntry(PREFIX + "a/"), RawEntry(PREFIX + "a/"),
               RawEntry(PREFIX + "a/b.go", b"x")]
    assert check_zip(write(tmp_path, build_zip(entries)), M, V).file_count == 1


def test_crc_zero_means_unset(tmp_path: Path) -> None:
    # archive/zip only compares a CRC-32 that is set.
    entries = [RawEntry(PREFIX + "a.go", b"data", crc=0)]
    check_zip(write(tmp_path, build_zip(entries)), M, V)


def test_zip64_records(tmp_path: Path) -> None:
    entries = [RawEntry(PREFIX + "go.mod", b"module example.com/m\n", zip64=True),
               RawEntry(PREFIX + "a.go", b"package a\n" * 10, zip64=True)]
    p = write(tmp_path, build_zip(entries, zip64=True))
    summary = check_zip(p, M, V)
    assert (summary.file_count, summary.gomod) == (2, b"module example.com/m\n")
    assert summary.h1 == hash_zip(p)


def test_zip64_offsets_past_any_file_are_format_errors(tmp_path: Path) -> None:
    """A zip64 record may name any 64-bit offset; one no file system can seek to (EINVAL) reads
    as nothing there, as Go's ReadAt at EOF: a one-line ZipError, not an OSError (found by the
    hypothesis test of the download scan, tests/module/test_zipstream.py)."""
    entries = [RawEntry(PREFIX + "a.go", b"package a\n", zip64=True)]
    data = bytearray(build_zip(entries, zip64=True))
    locator = data.rindex(b"PK\x06\x07")
    far = bytearray(data)
    far[locator + 8:locator + 16] = (1 << 62).to_bytes(8, "little")  # where the zip64 end record is
    with pytest.raises(ZipError, match="not a valid zip file"):
        check_zip(write(tmp_path, bytes(far), "far-end.zip"), M, V)
    central = data.index(b"PK\x01\x02")
    name_len = int.from_bytes(data[central + 28:central + 30], "little")
    offset_at = central + 46 + name_len + 4 + 16  # the zip64 extra's header offset
    for far_offset in (1 << 62, (1 << 64) - 1):  # EINVAL; past what an off_t holds
        data[offset_at:offset_at + 8] = far_offset.to_bytes(8, "little")
        with pytest.raises(ZipError, match="bad local file header"):
            check_zip(write(tmp_path, bytes(data), "far-entry.zip"), M, V)


def test_zip64_written_by_zipfile(tmp_path: Path) -> None:
    p = tmp_path / "z.zip"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open(PREFIX + "a.go", "w", force_zip64=True) as w:
            w.write(b"package a\n")
        zf.writestr(PREFIX + "b.go", "package b\n")
    assert check_zip(p, M, V).file_count == 2


def test_prepended_data_is_tolerated(tmp_path: Path) -> None:
    data = build_zip(good_files(), prefix=b"#!/bin/sh\nexit 0\n")
    assert check_zip(write(tmp_path, data), M, V).file_count == 4


# --- one rule at a time -----------------------------------------------------------------------

RULES: list[tuple[str, list[RawEntry], str]] = [
    ("missing prefix", [RawEntry("a.go", b"x")], 'path does not have prefix "example.com/m@v1.0.0/"'),
    ("other version", [RawEntry(f"{M}@v1.0.1/a.go", b"x")], "does not have prefix"),
    ("prefix is case-sensitive", [RawEntry(f"Example.com/m@{V}/a.go", b"x")], "prefix"),
    ("prefix without slash", [RawEntry(f"{M}@{V}", b"x")], "prefix"),
    ("dot-dot", [RawEntry(PREFIX + "../a.go", b"x")], 'invalid path element ".."'),
    ("inner dot-dot", [RawEntry(PREFIX + "a/../b.go", b"x")], "file path is not clean"),
    ("dot", [RawEntry(PREFIX + "./a.go", b"x")], "file path is not clean"),
    ("double slash", [RawEntry(PREFIX + "a//b.go", b"x")], "file path is not clean"),
    ("directory named by a bare slash", [RawEntry(PREFIX + "/")], "file path is not clean"),
    ("directory with two slashes", [RawEntry(PREFIX + "a//")], "file path is not clean"),
    ("leading slash", [RawEntry(PREFIX + "/a.go", b"x")], "empty path element"),
    ("backslash", [RawEntry(PREFIX + "a\\b.go", b"x")], "invalid char '\\\\'"),
    ("colon", [RawEntry(PREFIX + "c:x", b"x")], "invalid char ':'"),
    ("star", [RawEntry(PREFIX + "a*.go", b"x")], "invalid char '*'"),
    ("control char", [RawEntry(PREFIX + "a\x01.go", b"x")], "invalid char"),
    ("invalid UTF-8", [RawEntry(PREFIX.encode() + b"\xff.go", b"x")], "invalid UTF-8"),
    ("windows name", [RawEntry(PREFIX + "con.go", b"x")], '"con" disallowed as path element'),
    ("windows name in dir", [RawEntry(PREFIX + "a/LPT1/b.go", b"x")], "disallowed"),
    ("trailing dot", [RawEntry(PREFIX + "a./b.go", b"x")], "trailing dot in path element"),
    ("only dots", [RawEntry(PREFIX + ".../b.go", b"x")], 'invalid path element "..."'),
    ("duplicate", [RawEntry(PREFIX + "a.go", b"x"), RawEntry(PREFIX + "a.go", b"y")],
     'multiple entries for file "a.go"'),
    ("case collision", [RawEntry(PREFIX + "a.go", b"x"), RawEntry(PREFIX + "A.go", b"y")],
     'case-insensitive file name collision: "a.go" and "A.go"'),
    ("kelvin sign collision", [RawEntry(PREFIX + "k.go", b"x"), RawEntry(PREFIX + "\u212a.go", b"y")],
     "case-insensitive file name collision"),
    ("sharp s collision", [RawEntry(PREFIX + "ß", b"x"), RawEntry(PREFIX + "ẞ", b"y")],
     "case-insensitive file name collision"),
    ("directory case collision", [RawEntry(PREFIX + "a/x.go", b"x"), RawEntry(PREFIX + "A/y.go", b"y")],
     'case-insensitive file name collision: "a" and "A"'),
    ("file and directory", [RawEntry(PREFIX + "a", b"x"), RawEntry(PREFIX + "a/b.go", b"y")],
     'entry "a" is both a file and a directory'),
    ("directory then file", [RawEntry(PREFIX + "a/"), RawEntry(PREFIX + "a", b"y")],
     'entry "a" is both a file and a directory'),
    ("nested go.mod", [RawEntry(PREFIX + "sub/go.mod", b"module x\n")],
     "go.mod file not in module root directory"),
    ("upper-case go.mod", [RawEntry(PREFIX + "GO.MOD", b"module x\n")],
     "go.mod files must have lowercase names"),
    ("nested upper-case go.mod", [RawEntry(PREFIX + "a/Go.Mod", b"module x\n")],
     "go.mod file not in module root directory"),
    ("go.mod too large", [RawEntry(PREFIX + "go.mod", b"module m\n", size=MAX_GO_MOD + 1)],
     f"go.mod file too large (max size is {MAX_GO_MOD} bytes)"),
    ("LICENSE too large", [RawEntry(PREFIX + "LICENSE", b"MIT", size=MAX_LICENSE + 1)],
     f"LICENSE file too large (max size is {MAX_LICENSE} bytes)"),
    ("total too large", [RawEntry(PREFIX + f"f{i}", b"x", size=200 << 20) for i in range(3)],
     f"total uncompressed size of module contents too large (max size is {MAX_ZIP_FILE} bytes)"),
    ("directory with data", [RawEntry(PREFIX + "a/", b"data")], "directory entry has data"),
    ("larger than declared", [RawEntry(PREFIX + "a.go", b"0123456789", size=5)],
     "larger than declared size"),
    ("stored larger than declared", [RawEntry(PREFIX + "a.go", b"0123456789", method=0, size=5)],
     "larger than declared size"),
    ("smaller than declared", [RawEntry(PREFIX + "a.go", b"01234", size=10)],
     "smaller than declared size"),
    ("bad CRC", [RawEntry(PREFIX + "a.go", b"data", crc=1234)], "checksum error"),
    ("bad descriptor CRC", [RawEntry(PREFIX + "a.go", b"data", descriptor=True, descriptor_crc=1)],
     "checksum error"),
    ("corrupt deflate", [RawEntry(PREFIX + "a.go", b"data", compressed=b"\xff\xff\xff\xff")],
     "corrupt deflate data"),
    ("truncated deflate", [RawEntry(PREFIX + "a.go", b"data", compressed=b"\x4b\x49\x2c")],
     "deflate stream is truncated"),
    ("unsupported method", [RawEntry(PREFIX + "a.go", b"data", method=12, compressed=b"xxxx")],
     "unsupported compression method 12"),
]


@pytest.mark.parametrize(("entries", "message"), [r[1:] for r in RULES], ids=[r[0] for r in RULES])
def test_rule(tmp_path: Path, entries: list[RawEntry], message: str) -> None:
    with pytest.raises(ZipError) as e:
        check_zip(write(tmp_path, build_zip(entries)), M, V)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_several_problems_are_summarized_on_one_line(tmp_path: Path) -> None:
    entries = [RawEntry("a", b""), RawEntry("b", b""), RawEntry(PREFIX + "con", b"")]
    with pytest.raises(ZipError, match=r"^a: path does not have prefix .* \(and 2 more\)$"):
        check_zip(write(tmp_path, build_zip(entries)), M, V)


def test_size_error_is_reported_first(tmp_path: Path) -> None:
    entries = [RawEntry("x", b"")] + [RawEntry(PREFIX + f"f{i}", size=300 << 20) for i in range(2)]
    with pytest.raises(ZipError, match=r"^total uncompressed size"):
        check_zip(write(tmp_path, build_zip(entries)), M, V)


@pytest.mark.parametrize(
    ("module", "version", "message"),
    [
        ("example.com/m", "v1.0", "not a canonical version"),
        ("example.com/m", "1.0.0", "not a semantic version"),
        ("example.com/m", "v2.0.0", "should be v0 or v1"),
        ("example.com/m/v2", "v1.0.0", "should be v2"),
        ("Example", "v1.0.0", "malformed module path"),
    ],
)
def test_module_and_version_are_validated(tmp_path: Path, module: str, version: str,
                                          message: str) -> None:
    p = write(tmp_path, build_zip([RawEntry(f"{module}@{version}/a.go", b"x")]))
    with pytest.raises(ZipError, match=message):
        check_zip(p, module, version)


def test_incompatible_version(tmp_path: Path) -> None:
    p = write(tmp_path, build_zip([RawEntry(f"{M}@v2.0.0+incompatible/a.go", b"x")]))
    assert check_zip(p, M, "v2.0.0+incompatible").file_count == 1


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not a zip file at all",
        b"PK\x03\x04" + b"\x00" * 100,
        build_zip(good_files())[:-10],  # end record cut
        build_zip(good_files())[:60],
        build_zip(good_files()).replace(b"PK\x01\x02", b"PK\x01\x03", 1),  # bad central header
    ],
)
def test_unreadable_zip(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(ZipError):
        check_zip(write(tmp_path, data), M, V)


def test_entry_count_mismatch(tmp_path: Path) -> None:
    data = bytearray(build_zip(good_files()))
    data[-12:-10] = struct.pack("<H", 9)  # total entries in the end record
    with pytest.raises(ZipError, match="not a valid zip file"):
        check_zip(write(tmp_path, bytes(data)), M, V)


def test_zip_file_too_large(tmp_path: Path) -> None:
    p = write(tmp_path, build_zip(good_files()))
    with open(p, "r+b") as f:
        f.truncate(MAX_ZIP_FILE + 1)  # sparse: no disk space used
    with pytest.raises(ZipError, match=r"module zip file is too large \(524288001 bytes; limit"):
        check_zip(p, M, V)


def test_zip_bomb_is_not_inflated(tmp_path: Path) -> None:
    # 256 MiB of zeros deflates to ~250 KiB; the header claims 100 bytes.
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(1 << 20)
    body = b"".join(c.compress(chunk) for _ in range(256)) + c.flush()
    entry = RawEntry(PREFIX + "bomb", b"", size=100, crc=0, compressed=body)
    p = write(tmp_path, build_zip([entry]))
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(ZipError, match="larger than declared size"):
            check_zip(p, M, V)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 2
    assert peak < 4 << 20


def test_large_entry_is_streamed(tmp_path: Path) -> None:
    data = os.urandom(1 << 20) * 24  # 24 MiB, compressible only by repetition
    p = write(tmp_path, build_zip([RawEntry(PREFIX + "big.bin", data)]))
    tracemalloc.start()
    try:
        assert check_zip(p, M, V).total_size == len(data)
        hash_zip(p)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


# --- building blocks --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "want"),
    [("", "."), ("a", "a"), ("a/", "a"), ("a//b", "a/b"), ("./a", "a"), ("a/./b", "a/b"),
     ("a/../b", "b"), ("../a", "../a"), ("a/../..", ".."), ("/../a", "/a"), ("//a", "/a"),
     ("/", "/"), ("a/b/..", "a")],
)
def test_go_path_clean(path: str, want: str) -> None:
    assert go_path_clean(path) == want


def test_collision_checker() -> None:
    cc = CollisionChecker()
    assert cc.check("a/b/c.go", False) is None
    assert cc.check("a/b/d.go", False) is None
    assert cc.check("a/B/e.go", False) == 'case-insensitive file name collision: "a/b" and "a/B"'
    assert cc.check("a/b", False) == 'entry "a/b" is both a file and a directory'
    assert cc.check("a/b/c.go", False) == 'multiple entries for file "a/b/c.go"'
    assert cc.check("x", True) is None
    assert cc.check("x", True) is None  # the same directory twice is fine


def test_collision_checker_walks_up_again_above_a_failed_walk() -> None:
    """A walk that stopped at a collision leaves its directories unsettled: the next entry below
    them meets the collision again (x/mod walks to the root every time), so the error count
    ("and N more") is x/mod's. Directories whose walk succeeded are not walked again."""
    cc = CollisionChecker()
    assert cc.check("a", False) is None
    collision = 'case-insensitive file name collision: "a" and "A"'
    assert cc.check("A/b/c", False) == collision
    assert cc.check("A/b/d", False) == collision
    assert cc.check("A/e", False) == collision
    assert cc.check("x/y/z", False) is None
    assert cc.check("x/y/w", False) is None
    assert cc._walked == {"x/y", "x"}
    assert cc.check("x/Y/v", False) == 'case-insensitive file name collision: "x/y" and "x/Y"'


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [("go.mod", "GO.MOD", True), ("k", "\u212a", True), ("s", "\u017f", True),
     ("ß", "ẞ", True), ("ß", "ss", False), ("σ", "ς", True), ("Σ", "ς", True),
     ("i", "İ", False), ("i", "ı", False), ("ǆ", "ǅ", True), ("µ", "μ", True), ("a", "b", False)],
)
def test_equal_fold(a: str, b: str, equal: bool) -> None:
    assert equal_fold(a, b) is equal
    assert (str_to_fold(a) == str_to_fold(b)) is equal


def test_str_to_fold_agrees_with_go(xmod: XMod) -> None:
    (answer,) = xmod.ask([{"op": "fold", "from": 0, "to": 0x20000}])
    go_folds = {k: chr(v) for k, v in answer["folds"].items()}
    mismatches = []
    for cp in range(0x20000):
        c = chr(cp)
        if 0xD800 <= cp <= 0xDFFF or unicodedata.category(c) == "Cn":
            continue
        want = go_folds.get(c, c)
        if unicodedata.category(want) == "Cn":
            continue  # its partner is newer than Python's Unicode database
        if str_to_fold(c) != want:
            mismatches.append((hex(cp), str_to_fold(c), want))
    assert mismatches == []


def test_reader_keeps_raw_names(tmp_path: Path) -> None:
    raw = PREFIX.encode() + b"caf\x82.go"  # cp437 bytes, no UTF-8 flag
    p = write(tmp_path, build_zip([RawEntry(raw, b"x")]))
    with open(p, "rb") as fp:
        (entry,) = ZipReader(fp).entries
    assert entry.raw_name == raw
    assert entry.name == PREFIX + "caf\udc82.go"


# --- against the real x/mod -------------------------------------------------------------------

_NAMES: list[bytes] = [
    PREFIX.encode() + n for n in
    [b"a.go", b"A.go", b"go.mod", b"GO.MOD", b"sub/go.mod", b"sub/", b"sub/x.go", b"LICENSE", b"",
     b"a.go/", b"../x", b"./x", b"x//y", b"con.txt", b"\xff.go", "ß".encode(), "ẞ".encode(),
     b"b.go", b"c/d/e.go", b"c/D/f.go", b"a b", b"x\ny", b"/", b"c//", b".x/y"]
] + ["é.go".encode(), b"example.com/m@v1.0.1/a.go", b"Example.com/m@v1.0.0/a.go"]


def _random_zip(rng: random.Random) -> bytes:
    entries = []
    for _ in range(rng.randint(0, 6)):
        data = rng.choice([b"", b"hello", b"module example.com/m\n", rng.randbytes(100), b"a" * 5000])
        e = RawEntry(rng.choice(_NAMES), data, method=rng.choice([0, 8, 8]))
        r = rng.random()
        if r < 0.08:
            e.size = max(0, len(data) + rng.choice([-1, 1, 100]))
        elif r < 0.12:
            e.crc = 0
        elif r < 0.16:
            e.crc = 12345
        elif r < 0.22:
            e.descriptor = True
        elif r < 0.25:
            e.descriptor, e.descriptor_crc = True, 1
        elif r < 0.27:
            e.compressed = b"\xff\xff\xff"
        elif r < 0.29:
            e.method = 12
        elif r < 0.31:
            e.flags = 0x1  # "encrypted": archive/zip ignores the flag
        elif r < 0.33:
            e.flags = 0x800
        entries.append(e)
    for e in entries:
        e.zip64 = rng.random() < 0.1
    data = build_zip(entries, prefix=rng.choice([b"", b"", b"junk" * 10]),
                     comment=rng.choice([b"", b"hi"]), zip64=rng.random() < 0.2)
    if rng.random() < 0.05:
        data = data[: rng.randint(0, len(data))]
    return data


def test_check_zip_and_hash_zip_agree_with_go(tmp_path: Path, xmod: XMod) -> None:
    rng = random.Random(4242)
    paths = []
    for i in range(1200):
        paths.append(write(tmp_path, _random_zip(rng), f"{i}.zip"))
    answers = xmod.ask(
        [{"op": "checkzip", "path": str(p), "module": M, "version": V} for p in paths]
        + [{"op": "hashzip", "path": str(p)} for p in paths])
    checks, hashes = answers[: len(paths)], answers[len(paths):]
    mismatches = []
    accepted = 0
    for p, check, hashed in zip(paths, checks, hashes, strict=True):
        try:
            summary = check_zip(p, M, V)
            ours: str | None = None
            accepted += 1
            if summary.h1 != hashed["hash"]:
                mismatches.append((p.name, "summary h1", hashed, summary.h1))
        except ZipError as e:
            ours = str(e)
        if (ours is None) != (check["err"] is None):
            mismatches.append((p.name, "check", check["err"], ours))
        try:
            h: str | None = hash_zip(p)
        except ZipError:
            h = None
        if h != (hashed["hash"] if hashed["err"] is None else None):
            mismatches.append((p.name, "hash", hashed, h))
    assert mismatches == []
    assert accepted > 200


def test_entry_count_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A central directory with more entries than modvault's bound is refused before it is
    held in memory whole."""
    import modvault.module.zipcheck as zc

    monkeypatch.setattr(zc, "MAX_ZIP_ENTRIES", 5)
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(6):
            zf.writestr(f"example.com/m@v1.0.0/f{i}.go", b"package m\n")
    with pytest.raises(ZipError, match="more than 5 entries"):
        zc.check_zip(path, "example.com/m", "v1.0.0")
    monkeypatch.setattr(zc, "MAX_ZIP_ENTRIES", 6)
    assert zc.check_zip(path, "example.com/m", "v1.0.0").file_count == 6
