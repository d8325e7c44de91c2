"""The licence matcher on real licence texts, and what it must refuse to guess."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modvault.module.zipcheck import check_zip
from modvault.supply.licenses import (
    MAX_LICENCE_BYTES,
    NOASSERTION,
    detect_file,
    detect_module,
    is_licence_file,
)
from modvault.supply.zipfacts import MAX_LICENCE_FILES, LicenceFiles, licence_of_zip
from tests.supply.licence_texts import ALL, licence_text


@pytest.mark.parametrize("spdx_id", ALL)
def test_recognises_the_real_text(spdx_id: str) -> None:
    assert detect_file(licence_text(spdx_id).encode()) == spdx_id


@pytest.mark.parametrize("spdx_id", ALL)
def test_crlf_and_rewrapping_do_not_matter(spdx_id: str) -> None:
    text = licence_text(spdx_id)
    words = text.split()
    rewrapped = "\r\n".join(" ".join(words[i:i + 7]) for i in range(0, len(words), 7))
    assert detect_file(rewrapped.encode()) == spdx_id


@pytest.mark.parametrize("spdx_id", ALL)
def test_half_a_licence_is_not_that_licence(spdx_id: str) -> None:
    text = licence_text(spdx_id)
    assert detect_file(text[: len(text) // 2].encode()) == NOASSERTION


@pytest.mark.parametrize("spdx_id", ALL)
def test_extra_terms_make_it_unknown(spdx_id: str) -> None:
    extra = ("\nAdditional restriction: this software may not be used by any organisation that "
             "employs more than ten people, nor in any product sold for profit, nor in any service "
             "offered to the public, unless a separate commercial agreement has been signed. ") * 8
    assert detect_file((licence_text(spdx_id) + extra).encode()) == NOASSERTION


def test_two_licences_in_one_file_are_unknown() -> None:
    both = licence_text("MIT") + "\n\n" + licence_text("Apache-2.0")
    assert detect_file(both.encode()) == NOASSERTION


def test_bsd_clause_counts_are_told_apart() -> None:
    bsd3 = licence_text("BSD-3-Clause")
    advertising = bsd3.replace(
        "* Neither the name",
        "* All advertising materials mentioning features or use of this software must display "
        "the following acknowledgement: This product includes software developed by Google.\n"
        "* Neither the name")
    assert advertising != bsd3
    assert detect_file(advertising.encode()) == NOASSERTION


@pytest.mark.parametrize("text", [
    "",
    "All rights reserved. Do not redistribute.\n",
    "This is free and unencumbered software released into the public domain.\n" * 20,
    "Licensed under the Apache License, Version 2.0 (the \"License\"); you may not use this file "
    "except in compliance with the License.\n",  # a header pointing elsewhere, not the licence
])
def test_unknown_texts_are_noassertion(text: str) -> None:
    assert detect_file(text.encode()) == NOASSERTION


def test_module_level_combination() -> None:
    mit, apache = licence_text("MIT").encode(), licence_text("Apache-2.0").encode()
    assert detect_module({"LICENSE": mit}) == "MIT"
    assert detect_module({"LICENSE-MIT": mit, "LICENSE-APACHE": apache}) == "Apache-2.0 AND MIT"
    assert detect_module({"LICENSE": mit, "COPYING": b"custom terms"}) == NOASSERTION
    assert detect_module({}) == NOASSERTION


def test_licence_file_names() -> None:
    for name in ("LICENSE", "LICENCE", "license.md", "LICENSE.txt", "COPYING", "LICENSE-MIT",
                 "License.Apache-2.0", "UNLICENSE"):
        assert is_licence_file(name), name
    for name in ("license.go", "LICENSES", "README", "licensing.txt", "NOTICE"):
        assert not is_licence_file(name), name


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(ALL), st.binary(max_size=300))
def test_noise_never_turns_into_another_licence(spdx_id: str, noise: bytes) -> None:
    got = detect_file(licence_text(spdx_id).encode() + b"\n" + noise)
    assert got in (spdx_id, NOASSERTION)


# -- the licence picked while check_zip reads the zip (zipfacts.LicenceFiles) ----------------------

_M, _V = "example.com/lic", "v1.0.0"


def _zip_with(tmp_path: Path, files: dict[str, bytes], name: str = "m.zip") -> Path:
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{_M}@{_V}/go.mod", f"module {_M}\n")
        for rel, body in files.items():
            zf.writestr(f"{_M}@{_V}/{rel}", body)
    return path


def _picked(path: Path) -> str:
    picker = LicenceFiles()
    summary = check_zip(path, _M, _V, keep=picker)
    # A file too large to be matched is not read into memory either.
    assert all(len(body) <= MAX_LICENCE_BYTES for _, body in summary.kept)
    return picker.licence(summary.kept)


LICENCE_CASES = {
    "one": {"LICENSE": "MIT"},
    "two kinds": {"LICENSE": "MIT", "COPYING": "ISC", "a/LICENSE": "BSD-2-Clause"},
    "nested only": {"sub/LICENSE": "MIT"},
    "source file named like one": {"license.go": "MIT"},
    "none": {},
    "noise": {"LICENCE.md": None},
    "too large": {"LICENSE": "MIT", "COPYING": "big"},
    "too many": {f"LICENSE.{i}": "MIT" for i in range(MAX_LICENCE_FILES + 1)},
}


@pytest.mark.parametrize("case", sorted(LICENCE_CASES))
def test_licence_picked_during_the_check_is_the_one_read_from_the_zip(tmp_path: Path, case: str
                                                                        ) -> None:
    files: dict[str, bytes] = {}
    for rel, spdx in LICENCE_CASES[case].items():
        if spdx is None:
            files[rel] = b"some words that are no licence at all\n"
        elif spdx == "big":  # a licence the matcher would name, were it not too large
            files[rel] = licence_text("ISC").encode() + b" " * MAX_LICENCE_BYTES
        else:
            files[rel] = licence_text(spdx).encode()
    path = _zip_with(tmp_path, files)
    expected = licence_of_zip(path, _M, _V)
    assert _picked(path) == expected
    if case in ("too large", "too many", "noise", "none", "nested only",
                "source file named like one"):
        assert expected == NOASSERTION
    else:
        assert expected != NOASSERTION


def test_keep_is_asked_only_for_root_files_and_returns_their_content(tmp_path: Path) -> None:
    path = _zip_with(tmp_path, {"LICENSE": b"L", "README": b"R", "a/LICENSE": b"X"})
    asked: list[tuple[str, int]] = []

    def keep(name: str, size: int) -> bool:
        asked.append((name, size))
        return name == "LICENSE"

    summary = check_zip(path, _M, _V, keep=keep)
    assert asked == [("go.mod", len(f"module {_M}\n")), ("LICENSE", 1), ("README", 1)]
    assert summary.kept == (("LICENSE", b"L"),)
    assert check_zip(path, _M, _V).kept == ()


def test_licence_of_a_zip_python_zipfile_refuses_but_go_reads(tmp_path: Path) -> None:
    """A "version needed to extract" above what Python's zipfile supports: Go (and check_zip)
    read the zip, zipfile raised NotImplementedError (a 500 for a publish of it). licence_of_zip
    reads zips as check_zip does."""
    path = _zip_with(tmp_path, {"LICENSE": licence_text("MIT").encode()})
    data = bytearray(path.read_bytes())
    at = data.index(b"PK\x01\x02")
    while at >= 0:
        data[at + 6:at + 8] = (0x89).to_bytes(2, "little")  # version needed: 13.7
        at = data.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(data))
    with pytest.raises(NotImplementedError):
        zipfile.ZipFile(path)
    assert check_zip(path, _M, _V).file_count == 2
    assert licence_of_zip(path, _M, _V) == "MIT" == _picked(path)
