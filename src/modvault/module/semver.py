"""Semantic versions as the go command reads them (mirrors golang.org/x/mod/semver).

A version is ``vMAJOR[.MINOR[.PATCH[-PRERELEASE][+BUILD]]]``: the leading ``v`` is required, numbers
have no extra leading zeros, PRERELEASE and BUILD are non-empty dot-separated identifiers of
``[0-9A-Za-z-]``, and numeric PRERELEASE identifiers have no leading zeros. ``vMAJOR`` and
``vMAJOR.MINOR`` (with no suffixes) are shorthands for ``vMAJOR.0.0`` and ``vMAJOR.MINOR.0``.
Precedence follows Semantic Versioning 2.0.0 §11; build metadata (including the go command's
``+incompatible``) never affects precedence.

Every function accepts any string: invalid versions are answered with ``""``/``False`` rather than
an exception, as x/mod does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "SortKey",
    "build",
    "canonical",
    "compare",
    "is_prerelease",
    "is_valid",
    "major",
    "major_minor",
    "max_version",
    "prerelease",
    "sort_key",
    "sort_versions",
]


@dataclass(frozen=True, slots=True)
class _Parsed:
    major: str
    minor: str
    patch: str
    short: str  # what the shorthand form leaves out: ".0.0", ".0" or ""
    prerelease: str  # with its leading "-", or ""
    build: str  # with its leading "+", or ""


def _is_digit(c: str) -> bool:
    return "0" <= c <= "9"


def _is_ident_char(c: str) -> bool:
    return "A" <= c <= "Z" or "a" <= c <= "z" or "0" <= c <= "9" or c == "-"


def _is_num(s: str) -> bool:
    return all(_is_digit(c) for c in s)


def _parse_int(s: str) -> tuple[str, str] | None:
    """Split a leading decimal number (no extra leading zeros) off ``s``."""
    i = 0
    while i < len(s) and _is_digit(s[i]):
        i += 1
    if i == 0 or (s[0] == "0" and i != 1):
        return None
    return s[:i], s[i:]


def _idents_ok(body: str, *, numeric_leading_zero_ok: bool) -> bool:
    if body == "":
        return False
    for ident in body.split("."):
        if ident == "" or not all(_is_ident_char(c) for c in ident):
            return False
        # semver.org §9: numeric pre-release identifiers MUST NOT include leading zeroes.
        if not numeric_leading_zero_ok and len(ident) > 1 and ident[0] == "0" and _is_num(ident):
            return False
    return True


def _parse(v: str) -> _Parsed | None:
    """x/mod semver.parse: the pieces of ``v``, or None when it is not a valid version."""
    if not v.startswith("v"):
        return None
    got = _parse_int(v[1:])
    if got is None:
        return None
    major_, rest = got
    if rest == "":
        return _Parsed(major_, "0", "0", ".0.0", "", "")
    if rest[0] != ".":
        return None
    got = _parse_int(rest[1:])
    if got is None:
        return None
    minor_, rest = got
    if rest == "":
        return _Parsed(major_, minor_, "0", ".0", "", "")
    if rest[0] != ".":
        return None
    got = _parse_int(rest[1:])
    if got is None:
        return None
    patch_, rest = got
    pre = ""
    if rest.startswith("-"):
        end = rest.find("+")
        if end < 0:
            end = len(rest)
        pre, rest = rest[:end], rest[end:]
        if not _idents_ok(pre[1:], numeric_leading_zero_ok=False):
            return None
    bld = ""
    if rest.startswith("+"):
        bld, rest = rest, ""
        if not _idents_ok(bld[1:], numeric_leading_zero_ok=True):
            return None
    if rest != "":
        return None
    return _Parsed(major_, minor_, patch_, "", pre, bld)


def is_valid(v: str) -> bool:
    """semver.IsValid: whether ``v`` is a valid semantic version string."""
    return _parse(v) is not None


def canonical(v: str) -> str:
    """semver.Canonical: ``v`` with shorthands filled in and build metadata dropped; "" if invalid.

    ``canonical("v1.2") == "v1.2.0"``; ``canonical("v2.0.0+incompatible") == "v2.0.0"``.
    """
    p = _parse(v)
    if p is None:
        return ""
    if p.build:
        return v[: len(v) - len(p.build)]
    return v + p.short


def major(v: str) -> str:
    """semver.Major: ``"v2"`` for ``"v2.1.0"``; "" if invalid."""
    p = _parse(v)
    if p is None:
        return ""
    return v[: 1 + len(p.major)]


def major_minor(v: str) -> str:
    """semver.MajorMinor: ``"v2.1"`` for ``"v2.1.0"`` (and ``"v2.0"`` for ``"v2"``); "" if invalid."""
    p = _parse(v)
    if p is None:
        return ""
    i = 1 + len(p.major)
    j = i + 1 + len(p.minor)
    if j <= len(v) and v[i] == "." and v[i + 1 : j] == p.minor:
        return v[:j]
    return v[:i] + "." + p.minor


def prerelease(v: str) -> str:
    """semver.Prerelease: ``"-pre"`` for ``"v2.1.0-pre+meta"``; "" if none or invalid."""
    p = _parse(v)
    return "" if p is None else p.prerelease


def build(v: str) -> str:
    """semver.Build: ``"+meta"`` for ``"v2.1.0+meta"``; "" if none or invalid."""
    p = _parse(v)
    return "" if p is None else p.build


def is_prerelease(v: str) -> bool:
    """Whether ``v`` is a valid version with a pre-release suffix."""
    return prerelease(v) != ""


def _compare_int(x: str, y: str) -> int:
    # Both are decimal strings without extra leading zeros.
    if len(x) != len(y):
        return -1 if len(x) < len(y) else 1
    if x == y:
        return 0
    return -1 if x < y else 1


def _compare_prerelease(x: str, y: str) -> int:
    # semver.org §11: a pre-release has lower precedence than the release; identifiers compare
    # left to right, numeric ones numerically and below alphanumeric ones, which compare in ASCII
    # order; a longer list wins when all earlier identifiers are equal.
    if x == y:
        return 0
    if x == "":
        return 1
    if y == "":
        return -1
    xs = x[1:].split(".")
    ys = y[1:].split(".")
    for dx, dy in zip(xs, ys, strict=False):
        if dx == dy:
            continue
        nx, ny = _is_num(dx), _is_num(dy)
        if nx != ny:
            return -1 if nx else 1
        if nx:
            return _compare_int(dx, dy)
        return -1 if dx < dy else 1
    return -1 if len(xs) < len(ys) else 1


def compare(a: str, b: str) -> int:
    """semver.Compare: -1, 0 or +1 by precedence.

    An invalid version is less than every valid one, and all invalid versions compare equal.
    """
    pa, pb = _parse(a), _parse(b)
    if pa is None or pb is None:
        if pa is None and pb is None:
            return 0
        return -1 if pa is None else 1
    for x, y in ((pa.major, pb.major), (pa.minor, pb.minor), (pa.patch, pb.patch)):
        c = _compare_int(x, y)
        if c != 0:
            return c
    return _compare_prerelease(pa.prerelease, pb.prerelease)


def max_version(a: str, b: str) -> str:
    """semver.Max: canonicalize both and return the greater (``b``'s form when they are equal)."""
    a, b = canonical(a), canonical(b)
    return a if compare(a, b) > 0 else b


_Num = tuple[int, str]  # (digit count, digits): numeric order without int() size limits
_Ident = tuple[int, int, str]
SortKey = tuple[int, _Num, _Num, _Num, int, tuple[_Ident, ...], str]


def _num_key(n: str) -> _Num:
    return (len(n), n)


def sort_key(v: str) -> SortKey:
    """A ``sorted()`` key giving semver.Sort order: by :func:`compare`, ties broken by the string.

    Invalid versions sort first, among themselves by string.
    """
    p = _parse(v)
    if p is None:
        return (0, (0, ""), (0, ""), (0, ""), 0, (), v)
    idents: tuple[_Ident, ...] = ()
    if p.prerelease:
        idents = tuple(
            (0, len(ident), ident) if _is_num(ident) else (1, 0, ident)
            for ident in p.prerelease[1:].split(".")
        )
    release = 0 if p.prerelease else 1
    return (1, _num_key(p.major), _num_key(p.minor), _num_key(p.patch), release, idents, v)


def sort_versions(versions: Iterable[str]) -> list[str]:
    """semver.Sort order as a new list: by :func:`compare`, ties broken by string order."""
    return sorted(versions, key=sort_key)
