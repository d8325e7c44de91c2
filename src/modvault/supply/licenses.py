"""Licence detection: which SPDX licence a module's LICENSE/COPYING text is, or NOASSERTION. Pure.

Deliberately small and conservative ("never guess"): each licence is described by phrases that
its canonical text contains and that together set it apart from its neighbours (MIT vs ISC, the
BSD clause counts), phrases that must be absent (a third or advertising clause), and the range of
words the whole file may have once copyright lines are set aside. A file that misses one phrase,
carries a forbidden one, or is much longer or shorter than the licence (extra terms, several
licences pasted together) is NOASSERTION. The phrases below were written for this matcher from the
licences' published texts (spdx.org/licenses); word bounds were measured on those texts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["NOASSERTION", "LicenceRule", "detect_file", "detect_module", "is_licence_file",
           "normalize"]

NOASSERTION = "NOASSERTION"

# Names the go command keeps at a module's root and licence scanners look for.
_LICENCE_NAME = re.compile(r"(?i)^(licen[cs]e|copying|unlicense)([-._][A-Za-z0-9.+-]*)?$")
_COPYRIGHT_LINE = re.compile(r"(?im)^\s*(copyright\b|\(c\)|©|all rights reserved).*$")
_NON_WORD = re.compile(r"[^a-z0-9]+")
MAX_LICENCE_BYTES = 256 * 1024


_SOURCE_SUFFIXES = (".go", ".s", ".c", ".h", ".py", ".sh", ".json", ".yaml", ".yml", ".tmpl")


def is_licence_file(name: str) -> bool:
    """Whether a file name (no directory) is a licence file: LICENSE, LICENCE.md, COPYING, ...
    (not source files such as license.go)."""
    return (_LICENCE_NAME.match(name) is not None
            and not name.lower().endswith(_SOURCE_SUFFIXES))


def normalize(text: str) -> str:
    """Lower case, punctuation and line breaks as single spaces: layout never matters."""
    text = text.replace("\u2019", "'").replace("\u201c", '"').replace("\u201d", '"')
    return " " + _NON_WORD.sub(" ", text.lower()).strip() + " "


@dataclass(frozen=True)
class LicenceRule:
    """How to recognise one licence. Each entry of ``required`` is a tuple of alternatives (any
    one suffices); every entry must be present; none of ``forbidden`` may be."""

    spdx_id: str
    required: tuple[tuple[str, ...], ...]
    forbidden: tuple[str, ...]
    min_words: int
    max_words: int

    def matches(self, norm: str, words: int) -> bool:
        if not self.min_words <= words <= self.max_words:
            return False
        if any(normalize(f) in norm for f in self.forbidden):
            return False
        return all(any(normalize(alt) in norm for alt in alts) for alts in self.required)


_BSD_PREAMBLE = ("Redistribution and use in source and binary forms, with or without modification, "
                 "are permitted provided that the following conditions are met",)
_BSD_SOURCE = ("Redistributions of source code must retain the above copyright notice, this list "
               "of conditions and the following disclaimer",)
_BSD_BINARY = ("Redistributions in binary form must reproduce the above copyright notice, this "
               "list of conditions and the following disclaimer in the documentation",)
_BSD_DISCLAIMER = ("implied warranties of merchantability and fitness for a particular purpose are "
                   "disclaimed",)
_BSD_ENDORSE = "endorse or promote products derived from this software"
_BSD_ADVERTISING = "all advertising materials mentioning features or use of this software"

RULES: tuple[LicenceRule, ...] = (
    LicenceRule(
        "MIT",
        required=(
            ("Permission is hereby granted, free of charge, to any person obtaining a copy of this "
             "software and associated documentation files",),
            ("to deal in the Software without restriction, including without limitation the rights "
             "to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies",),
            ("The above copyright notice and this permission notice shall be included in all copies "
             "or substantial portions of the Software",),
            ("THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED",),
        ),
        forbidden=("shall be used for good, not evil",),
        min_words=150, max_words=200,
    ),
    LicenceRule(
        "ISC",
        required=(
            ("Permission to use, copy, modify, and/or distribute this software for any purpose "
             "with or without fee is hereby granted",
             "Permission to use, copy, modify, and distribute this software for any purpose "
             "with or without fee is hereby granted"),
            ("provided that the above copyright notice and this permission notice appear in all "
             "copies",),
            ("DISCLAIMS ALL WARRANTIES WITH REGARD TO THIS SOFTWARE INCLUDING ALL IMPLIED WARRANTIES "
             "OF MERCHANTABILITY AND FITNESS",),
            ("LOSS OF USE, DATA OR PROFITS, WHETHER IN AN ACTION OF CONTRACT, NEGLIGENCE OR OTHER "
             "TORTIOUS ACTION",),
        ),
        forbidden=("without restriction",),
        min_words=95, max_words=135,
    ),
    LicenceRule(
        "BSD-2-Clause",
        required=(_BSD_PREAMBLE, _BSD_SOURCE, _BSD_BINARY, _BSD_DISCLAIMER),
        forbidden=(_BSD_ENDORSE, _BSD_ADVERTISING, "neither the name of"),
        min_words=165, max_words=245,
    ),
    LicenceRule(
        "BSD-3-Clause",
        required=(_BSD_PREAMBLE, _BSD_SOURCE, _BSD_BINARY, _BSD_DISCLAIMER,
                  ("may be used to endorse or promote products derived from this software without "
                   "specific prior written permission",)),
        forbidden=(_BSD_ADVERTISING,),
        min_words=195, max_words=290,
    ),
    LicenceRule(
        "Apache-2.0",
        required=(
            ("Apache License Version 2.0, January 2004",),
            ("TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION",),
            ("Grant of Copyright License. Subject to the terms and conditions of this License, "
             "each Contributor hereby grants to You a perpetual, worldwide, non-exclusive, "
             "no-charge, royalty-free, irrevocable copyright license",),
            ("Grant of Patent License",),
            ("END OF TERMS AND CONDITIONS",),
        ),
        forbidden=(),
        min_words=1380, max_words=1660,
    ),
    LicenceRule(
        "MPL-2.0",
        required=(
            ("Mozilla Public License Version 2.0", "Mozilla Public License, version 2.0"),
            ("\"Contributor\" means each individual or legal entity that creates, contributes to "
             "the creation of, or owns Covered Software",),
            ("Exhibit A - Source Code Form License Notice",),
            ("This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0",),
        ),
        forbidden=(),
        min_words=2350, max_words=2500,
    ),
)


def _words(text: str) -> int:
    """Words of the text outside copyright lines (names and years vary, the licence does not)."""
    return len(normalize(_COPYRIGHT_LINE.sub(" ", text)).split())


def detect_file(data: bytes) -> str:
    """The SPDX id of one licence file's text, or NOASSERTION."""
    if len(data) > MAX_LICENCE_BYTES:
        return NOASSERTION
    text = data.decode("utf-8", "replace")
    norm = normalize(text)
    words = _words(text)
    found = [r.spdx_id for r in RULES if r.matches(norm, words)]
    return found[0] if len(found) == 1 else NOASSERTION


def detect_module(files: Mapping[str, bytes] | Iterable[tuple[str, bytes]]) -> str:
    """The licence of a module from its root licence files: one SPDX id when every file is
    recognised (``A AND B`` when they name different licences), else NOASSERTION."""
    items = files.items() if isinstance(files, Mapping) else files
    ids = set()
    for _, data in items:
        ids.add(detect_file(data))
    if not ids or NOASSERTION in ids:
        return NOASSERTION
    return " AND ".join(sorted(ids))
