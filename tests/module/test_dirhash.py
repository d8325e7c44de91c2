"""The h1: hashes (modvault.module.dirhash): the summary format, and agreement with x/mod."""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest

from modvault.module.dirhash import hash1, hash_gomod, hash_zip
from modvault.module.errors import ModuleError, ZipError
from tests.module.test_modfile import XMod, xmod_oracle
from tests.module.test_zipcheck import RawEntry, build_zip


@pytest.fixture(scope="session")
def xmod(tmp_path_factory: pytest.TempPathFactory) -> XMod:
    return xmod_oracle(tmp_path_factory)


def reference_h1(files: list[tuple[bytes, bytes]]) -> str:
    """Hash1 written out from its definition: sha256sum lines sorted by name, then sha256."""
    summary = b"".join(
        hashlib.sha256(content).hexdigest().encode() + b"  " + name + b"\n"
        for name, content in sorted(files)
    )
    return "h1:" + base64.b64encode(hashlib.sha256(summary).digest()).decode()


def opener(data: bytes) -> Callable[[], BinaryIO]:
    return lambda: io.BytesIO(data)


def test_hash1_matches_its_definition() -> None:
    files = [(b"b.go", b"package b\n"), (b"a/z.go", b"z"), (b"A.go", b""), (b"a.go", b"x" * 100000)]
    got = hash1([(name.decode(), opener(content)) for name, content in files])
    assert got == reference_h1(files)


def test_hash1_of_nothing() -> None:
    assert hash1([]) == "h1:" + base64.b64encode(hashlib.sha256(b"").digest()).decode()


def test_hash1_sorts_by_bytes_not_code_points() -> None:
    # U+E000 encodes as EE 80 80; an undecodable byte FF (as surrogate U+DCFF) sorts after it in
    # byte order, though before it in code point order.
    names = ["\ue000", "\udcff", "é", "z", "Z"]
    got = hash1([(n, opener(n.encode("utf-8", "surrogateescape"))) for n in names])
    want = reference_h1([(n.encode("utf-8", "surrogateescape"),) * 2 for n in names])
    assert got == want


def test_hash1_refuses_newlines() -> None:
    with pytest.raises(ModuleError, match="filenames with newlines are not supported"):
        hash1([("a\nb", opener(b""))])


def test_hash1_hashes_duplicate_names_twice() -> None:
    files = [(b"a", b"1"), (b"a", b"2")]
    assert hash1([("a", opener(b"1")), ("a", opener(b"2"))]) == reference_h1(files)


class Streamed(io.RawIOBase):
    """A large file that refuses to be read in one piece and records that it was closed."""

    def __init__(self, size: int, log: list[str]) -> None:
        self.left = size
        self.log = log

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:  # type: ignore[override]
        assert 0 < n <= 1 << 20, f"read({n}) of a large file"
        n = min(n, self.left)
        self.left -= n
        return b"\x00" * n

    def close(self) -> None:
        if not self.closed:
            self.log.append("closed")
        super().close()


def test_hash1_streams_and_closes_each_file_once() -> None:
    log: list[str] = []
    opened: list[str] = []

    def open_big() -> BinaryIO:
        opened.append("big")
        return Streamed(64 << 20, log)  # type: ignore[return-value]

    got = hash1([("big", open_big)])
    summary = hashlib.sha256(bytes(64 << 20)).hexdigest() + "  big\n"
    assert got == "h1:" + base64.b64encode(hashlib.sha256(summary.encode()).digest()).decode()
    assert opened == ["big"]
    assert log == ["closed"]


def test_hash_gomod_is_hash1_of_one_file_named_go_mod() -> None:
    data = b"module example.com/m\n\ngo 1.21\n"
    assert hash_gomod(data) == reference_h1([(b"go.mod", data)])
    assert hash_gomod(b"") == reference_h1([(b"go.mod", b"")])


def test_hash_zip_includes_every_entry_as_stored(tmp_path: Path) -> None:
    p = tmp_path / "z.zip"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("m@v1.0.0/", b"")
        zf.writestr("m@v1.0.0/b.go", b"package b\n")
        zf.writestr("m@v1.0.0/a.go", b"package a\n", compress_type=zipfile.ZIP_STORED)
        zf.writestr("m@v1.0.0/é.go", b"package e\n")
    assert hash_zip(p) == reference_h1([
        (b"m@v1.0.0/", b""), (b"m@v1.0.0/b.go", b"package b\n"),
        (b"m@v1.0.0/a.go", b"package a\n"), ("m@v1.0.0/é.go".encode(), b"package e\n"),
    ])


def test_hash_zip_duplicate_names_hash_the_last_entry(tmp_path: Path) -> None:
    p = tmp_path / "z.zip"
    p.write_bytes(build_zip([RawEntry("a", b"first"), RawEntry("a", b"second")]))
    assert hash_zip(p) == reference_h1([(b"a", b"second"), (b"a", b"second")])


def test_hash_zip_uses_raw_name_bytes(tmp_path: Path) -> None:
    p = tmp_path / "z.zip"
    p.write_bytes(build_zip([RawEntry(b"caf\x82", b"x"), RawEntry("caf\u00e9", b"y", flags=0x800)]))
    assert hash_zip(p) == reference_h1([(b"caf\x82", b"x"), ("caf\u00e9".encode(), b"y")])


@pytest.mark.parametrize(
    "entries",
    [
        [RawEntry("a", b"0123456789", size=3)],
        [RawEntry("a", b"data", crc=99)],
        [RawEntry("d/", b"data")],
        [RawEntry("a\nb", b"")],
    ],
    ids=["lying size", "bad crc", "directory with data", "newline in name"],
)
def test_hash_zip_fails_where_go_fails(tmp_path: Path, entries: list[RawEntry]) -> None:
    p = tmp_path / "z.zip"
    p.write_bytes(build_zip(entries))
    with pytest.raises(ZipError):
        hash_zip(p)


def test_hash_zip_agrees_with_xmod(tmp_path: Path, xmod: XMod) -> None:
    zips = {
        "plain": [RawEntry("m@v1/a.go", b"a"), RawEntry("m@v1/b/", b"")],
        "stored": [RawEntry("x", b"stored data", method=0)],
        "descriptor": [RawEntry("x", b"with descriptor", descriptor=True)],
        "duplicates": [RawEntry("d", b"1"), RawEntry("d", b"2"), RawEntry("e", b"3")],
        "non-utf8": [RawEntry(b"\xff\xfe", b"bytes")],
        "utf8-flag": [RawEntry("\u00e9", b"e", flags=0x800)],
        "empty": [],
        "big": [RawEntry("big", bytes(3 << 20))],
    }
    paths = {}
    for name, entries in zips.items():
        paths[name] = tmp_path / f"{name}.zip"
        paths[name].write_bytes(build_zip(entries))
    answers = xmod.ask([{"op": "hashzip", "path": str(p)} for p in paths.values()])
    for (name, p), answer in zip(paths.items(), answers, strict=True):
        assert answer["err"] is None, name
        assert hash_zip(p) == answer["hash"], name
