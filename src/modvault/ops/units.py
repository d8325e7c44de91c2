"""Parse the sizes and durations operators type (``10GiB``, ``500M``, ``30d``, ``12h``). Pure."""

from __future__ import annotations

import re

_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?)(b?)\s*", re.IGNORECASE)
_SCALE = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_size(text: str) -> int:
    """Bytes from ``1234``, ``10K``/``10KB`` (powers of 1000) or ``10KiB`` (powers of 1024)."""
    m = _SIZE.fullmatch(text)
    if m is None:
        raise ValueError(f"invalid size {text!r}: expected a number with an optional unit "
                         "(K, M, G, T, KiB, MiB, GiB, TiB)")
    number, unit, binary, _ = m.groups()
    if binary and not unit:
        raise ValueError(f"invalid size {text!r}")
    base = 1024 if binary else 1000
    return int(float(number) * base ** _SCALE[unit.lower()])


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``15m``, ``12h``, ``30d``, ``2w`` or a sum (``1h30m``)."""
    t = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", t):
        return float(t)
    pos, total = 0, 0.0
    for m in _DURATION.finditer(t):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _SECONDS[m.group(2)]
        pos = m.end()
    if not t or pos != len(t):
        raise ValueError(f"invalid duration {text!r}: expected e.g. 3600, 90s, 15m, 12h, 30d, 1h30m")
    return total


def format_bytes(n: float) -> str:
    """``1.5 MiB``: for human summaries only."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")
