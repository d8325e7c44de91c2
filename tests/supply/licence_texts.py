"""Real licence texts from the Debian system: /usr/share/common-licenses and the DEP-5 copyright
files of golang-*-dev packages (installed by .ci/run). Nothing here is typed in by hand."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

COMMON = Path("/usr/share/common-licenses")
DOC = Path("/usr/share/doc")

# SPDX id -> (Debian package whose copyright file carries the text, its DEP-5 licence name)
DEP5 = {
    "MIT": ("golang-github-mitchellh-go-homedir-dev", "Expat"),
    "ISC": ("golang-github-davecgh-go-spew-dev", "ISC"),
    "BSD-2-Clause": ("golang-github-pkg-errors-dev", "BSD-2-clause"),
    "BSD-3-Clause": ("golang-github-google-uuid-dev", "BSD-3-clause~Google"),
}
COMMON_FILES = {"Apache-2.0": "Apache-2.0", "MPL-2.0": "MPL-2.0"}
# Where each licence's module tree comes from (a real Go package shipped by Debian).
TREES = {
    "MIT": "github.com/mitchellh/go-homedir",
    "ISC": "github.com/davecgh/go-spew",
    "BSD-2-Clause": "github.com/pkg/errors",
    "BSD-3-Clause": "github.com/google/uuid",
    "Apache-2.0": "github.com/google/btree",
    "MPL-2.0": "github.com/hashicorp/go-version",
}


def dep5_text(package: str, name: str) -> str:
    """The stand-alone ``License: name`` paragraph of a DEP-5 file, unfolded to plain text."""
    path = DOC / package / "copyright"
    if not path.exists():
        pytest.skip(f"{package} is not installed (.ci/run installs it)")
    best = ""
    for m in re.finditer(r"(?ms)^License: " + re.escape(name) + r"\n(.*?)(?=^\S|\Z)", path.read_text()):
        best = max(best, m.group(1), key=len)
    lines = [line.strip() for line in best.splitlines()]
    return "\n".join("" if line == "." else line for line in lines).strip() + "\n"


def licence_text(spdx_id: str) -> str:
    if spdx_id in COMMON_FILES:
        return (COMMON / COMMON_FILES[spdx_id]).read_text()
    text = dep5_text(*DEP5[spdx_id])
    return f"Copyright (c) 2014 The Authors\n\n{text}"


ALL = [*DEP5, *COMMON_FILES]
