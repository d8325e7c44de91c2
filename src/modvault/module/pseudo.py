"""Pseudo-versions (go.dev/ref/mod#pseudo-versions; mirrors golang.org/x/mod/module/pseudo.go).

A pseudo-version names an untagged revision and sorts it among tagged versions. Its forms:

1. ``vX.0.0-yyyymmddhhmmss-abcdefabcdef``: no earlier tag with major vX;
2. ``vX.Y.(Z+1)-0.yyyymmddhhmmss-abcdefabcdef``: the latest earlier tag is the release vX.Y.Z;
3. ``vX.Y.Z-pre.0.yyyymmddhhmmss-abcdefabcdef``: the latest earlier tag is the pre-release
   vX.Y.Z-pre;

and forms 2 and 3 may carry the base tag's ``+incompatible``. The timestamp is the commit time in
UTC and the revision is conventionally the 12-character prefix of the commit hash.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from modvault.module import semver
from modvault.module.errors import InvalidVersion
from modvault.module.path import go_quote

__all__ = [
    "is_pseudo_version",
    "is_zero_pseudo_version",
    "pseudo_version",
    "pseudo_version_base",
    "pseudo_version_rev",
    "pseudo_version_time",
    "pseudo_version_time_as_datetime",
    "zero_pseudo_version",
]

# x/mod module.pseudoVersionRE (ASCII classes only, as in RE2).
_PSEUDO_RE = re.compile(
    r"v[0-9]+\.(0\.0-|[0-9]+\.[0-9]+-([^+]*\.)?0\.)[0-9]{14}-[A-Za-z0-9]+"
    r"(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?",
    re.ASCII,
)


def _format_time(t: datetime) -> str:
    # Go's t.UTC().Format("20060102150405"); a naive datetime is taken to be UTC already.
    if t.tzinfo is not None:
        t = t.astimezone(UTC)
    return f"{t.year:04d}{t.month:02d}{t.day:02d}{t.hour:02d}{t.minute:02d}{t.second:02d}"


def pseudo_version(major: str, older: str, t: datetime, rev: str) -> str:
    """module.PseudoVersion: the pseudo-version for revision ``rev`` committed at ``t``.

    ``major`` (``"v1"``; "" means ``"v0"``) is used only when ``older``, the latest earlier tag, is
    "" or invalid (form 1). A release ``older`` gives form 2 and a pre-release gives form 3; the
    build suffix of ``older`` (``+incompatible``) is carried over. ``rev`` is used as given (callers
    pass the 12-character hash prefix). A naive ``t`` is read as UTC.
    """
    if major == "":
        major = "v0"
    segment = f"{_format_time(t)}-{rev}"
    build = semver.build(older)
    older = semver.canonical(older)
    if older == "":
        return f"{major}.0.0-{segment}"  # form (1)
    if semver.prerelease(older) != "":
        return f"{older}.0.{segment}{build}"  # form (3)
    # Form (2): the next patch release, as a "-0." pre-release so real pre-releases sort later.
    i = older.rindex(".") + 1
    return f"{older[:i]}{_inc_decimal(older[i:])}-0.{segment}{build}"


def zero_pseudo_version(major: str) -> str:
    """module.ZeroPseudoVersion: the placeholder with zero time (Go's year 1) and zero revision."""
    return pseudo_version(major, "", datetime(1, 1, 1), "000000000000")


def is_zero_pseudo_version(v: str) -> bool:
    """module.IsZeroPseudoVersion: whether ``v`` is :func:`zero_pseudo_version` of its major."""
    return v == zero_pseudo_version(semver.major(v))


def is_pseudo_version(v: str) -> bool:
    """module.IsPseudoVersion: whether ``v`` has one of the pseudo-version forms."""
    return v.count("-") >= 2 and semver.is_valid(v) and _PSEUDO_RE.fullmatch(v) is not None


def _inc_decimal(decimal: str) -> str:
    """The decimal plus one (x/mod incDecimal), digit-wise so any length works."""
    digits = list(decimal)
    i = len(digits) - 1
    while i >= 0 and digits[i] == "9":
        digits[i] = "0"
        i -= 1
    if i < 0:
        return "1" + "".join(digits)
    digits[i] = chr(ord(digits[i]) + 1)
    return "".join(digits)


def _dec_decimal(decimal: str) -> str:
    """The decimal minus one, or "" when it is zero (x/mod decDecimal)."""
    digits = list(decimal)
    i = len(digits) - 1
    while i >= 0 and digits[i] == "0":
        digits[i] = "9"
        i -= 1
    if i < 0:
        return ""
    if i == 0 and digits[0] == "1" and len(digits) > 1:
        return "".join(digits[1:])
    digits[i] = chr(ord(digits[i]) - 1)
    return "".join(digits)


def _invalid(v: str, reason: str) -> InvalidVersion:
    return InvalidVersion(f"pseudo-version {go_quote(v)} invalid: {reason}")


def _parse(v: str) -> tuple[str, str, str, str]:
    """x/mod parsePseudoVersion: ``(base, timestamp, rev, build)``."""
    if not is_pseudo_version(v):
        raise _invalid(v, "syntax error")
    build = semver.build(v)
    rest = v[: len(v) - len(build)]
    j = rest.rindex("-")
    rest, rev = rest[:j], rest[j + 1 :]
    i = rest.rindex("-")
    k = rest.rfind(".")
    if k > i:
        base, timestamp = rest[:k], rest[k + 1 :]  # "vX.Y.Z-pre.0" or "vX.Y.(Z+1)-0"
    else:
        base, timestamp = rest[:i], rest[i + 1 :]  # "vX.0.0"
    return base, timestamp, rev, build


def _parse_time(v: str, timestamp: str) -> datetime:
    # time.Parse("20060102150405", ...): every field must be in range for its calendar date.
    try:
        return datetime(
            int(timestamp[0:4]),
            int(timestamp[4:6]),
            int(timestamp[6:8]),
            int(timestamp[8:10]),
            int(timestamp[10:12]),
            int(timestamp[12:14]),
            tzinfo=UTC,
        )
    except ValueError:
        raise _invalid(v, f"malformed time {go_quote(timestamp)}") from None


def pseudo_version_time(v: str) -> str:
    """The 14-digit ``yyyymmddhhmmss`` timestamp of pseudo-version ``v``.

    Raises :class:`InvalidVersion` if ``v`` is not a pseudo-version or the timestamp is not a real
    time (as module.PseudoVersionTime does).
    """
    timestamp = _parse(v)[1]
    _parse_time(v, timestamp)
    return timestamp


def pseudo_version_time_as_datetime(v: str) -> datetime:
    """module.PseudoVersionTime: the timestamp of pseudo-version ``v`` as an aware UTC datetime."""
    return _parse_time(v, _parse(v)[1])


def pseudo_version_rev(v: str) -> str:
    """module.PseudoVersionRev: the revision identifier of pseudo-version ``v``."""
    return _parse(v)[2]


def pseudo_version_base(v: str) -> str:
    """module.PseudoVersionBase: the tag ``v`` was derived from, or "" for form 1.

    ``+incompatible`` is kept: ``v2.0.1-0.…+incompatible`` gives ``v2.0.0+incompatible``. Raises
    :class:`InvalidVersion` for a non-pseudo-version, a form-1 version with build metadata, and a
    form-2 version whose patch is 0 (it has no predecessor).
    """
    base, _, _, build = _parse(v)
    pre = semver.prerelease(base)
    if pre == "":
        # vX.0.0-yyyymmddhhmmss-abcdef: no base. "+incompatible" here would claim a base tag.
        if build != "":
            raise _invalid(v, f"lacks base version, but has build metadata {go_quote(build)}")
        return ""
    if pre == "-0":
        # vX.Y.(Z+1)-0.yyyymmddhhmmss-abcdef → vX.Y.Z
        base = base[: -len(pre)]
        i = base.rindex(".")
        patch = _dec_decimal(base[i + 1 :])
        if patch == "":
            raise _invalid(v, f"version before {base} would have negative patch number")
        return base[: i + 1] + patch + build
    # vX.Y.Z-pre.0.yyyymmddhhmmss-abcdef → vX.Y.Z-pre
    return base[: -len(".0")] + build
