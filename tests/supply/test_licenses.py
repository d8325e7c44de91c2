"""The licence matcher on real licence texts, and what it must refuse to guess."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modvault.supply.licenses import NOASSERTION, detect_file, detect_module, is_licence_file
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
