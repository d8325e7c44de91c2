"""What to prewarm or export: ``module@version`` arguments, go.mod, go.sum, go.work, or files of
``module@version`` lines (``-`` for stdin). Pure parsing; the caller reads the files."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from modvault.module.errors import ModuleError
from modvault.module.modfile import parse_lax
from modvault.module.path import check, check_path


class TargetError(ValueError):
    """An input cannot be read as targets; the message names it."""


@dataclass(frozen=True, slots=True, order=True)
class Target:
    module: str
    version: str  # canonical, or a query such as "latest" to resolve through the server

    def __str__(self) -> str:
        return f"{self.module}@{self.version}"


def parse_target(text: str, where: str = "argument") -> Target:
    module, sep, version = text.strip().partition("@")
    if not sep or not version:
        raise TargetError(f"{where}: expected module@version, got {text.strip()[:100]!r}")
    try:
        check_path(module)
    except ModuleError as exc:
        raise TargetError(f"{where}: {exc}") from None
    try:
        check(module, version)
    except ModuleError:
        if not re.fullmatch(r"[A-Za-z0-9._+~/-]{1,200}", version):
            raise TargetError(f"{where}: invalid version {version[:100]!r}") from None
    return Target(module, version)


def from_gomod(data: bytes, where: str = "go.mod") -> list[Target]:
    try:
        gomod = parse_lax(data)
    except ModuleError as exc:
        raise TargetError(f"{where}: {exc}") from None
    return [Target(m, v) for m, v in gomod.requires]


def from_gosum(text: str, where: str = "go.sum") -> list[Target]:
    """Every module version a go.sum line names (``M V h1:`` and ``M V/go.mod h1:``)."""
    out: dict[Target, None] = {}
    for n, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3 or not fields[2].startswith("h1:"):
            raise TargetError(f"{where}:{n}: malformed go.sum line")
        version = fields[1].removesuffix("/go.mod")
        out[parse_target(f"{fields[0]}@{version}", f"{where}:{n}")] = None
    return list(out)


def gowork_uses(text: str, where: str = "go.work") -> list[str]:
    """Directories named by ``use`` directives (single lines and blocks), relative as written."""
    uses: list[str] = []
    in_block = False
    for raw in text.splitlines():
        line = raw.split("//", 1)[0].strip()
        if not line:
            continue
        if in_block:
            if line == ")":
                in_block = False
            else:
                uses.append(line.strip('"'))
            continue
        if line.startswith("use"):
            rest = line[3:].strip()
            if rest == "(":
                in_block = True
            elif rest:
                uses.append(rest.strip('"'))
    if in_block:
        raise TargetError(f"{where}: unterminated use block")
    return uses


def from_lines(text: str, where: str) -> list[Target]:
    out: list[Target] = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(parse_target(line, f"{where}:{n}"))
    return out


def kind_of(name: str) -> str:
    """``gomod``, ``gosum``, ``gowork`` or ``lines`` by file name."""
    base = PurePosixPath(name).name
    if base == "go.mod" or base.endswith(".mod"):
        return "gomod"
    if base == "go.sum" or base.endswith(".sum"):
        return "gosum"
    if base == "go.work":
        return "gowork"
    return "lines"
