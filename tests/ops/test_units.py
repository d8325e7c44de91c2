"""Sizes and durations as operators type them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modvault.ops.units import format_bytes, parse_duration, parse_size


@pytest.mark.parametrize(("text", "want"), [
    ("0", 0), ("1234", 1234), ("10K", 10_000), ("10kb", 10_000), ("10KiB", 10240),
    ("1.5MiB", 1572864), ("2G", 2_000_000_000), ("1GiB", 1 << 30), (" 3 TiB ", 3 << 40),
])
def test_parse_size(text: str, want: int) -> None:
    assert parse_size(text) == want


@pytest.mark.parametrize("text", ["", "K", "-1", "10X", "iB", "1e3", "10 GiBs", "0xff"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid size"):
        parse_size(text)


@pytest.mark.parametrize(("text", "want"), [
    ("90", 90), ("90s", 90), ("15m", 900), ("12h", 43200), ("30d", 2592000), ("2w", 1209600),
    ("1h30m", 5400), ("500ms", 0.5), ("1.5h", 5400),
])
def test_parse_duration(text: str, want: float) -> None:
    assert parse_duration(text) == pytest.approx(want)


@pytest.mark.parametrize("text", ["", "h", "1x", "1h 30m", "-5m", "m1", "1hh"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["", "K", "M", "G", "T"]),
       st.booleans())
def test_size_units_scale(n: int, unit: str, binary: bool) -> None:
    base = 1024 if binary else 1000
    scale = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4}[unit]
    suffix = unit + ("iB" if binary and unit else "")
    assert parse_size(f"{n}{suffix}") == n * base**scale


@given(st.lists(st.tuples(st.integers(0, 10**4), st.sampled_from(["s", "m", "h", "d", "w"])),
                min_size=1, max_size=4))
def test_duration_sums_its_parts(parts: list[tuple[int, str]]) -> None:
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    text = "".join(f"{n}{u}" for n, u in parts)
    assert parse_duration(text) == sum(n * seconds[u] for n, u in parts)


def test_format_bytes() -> None:
    assert format_bytes(10) == "10 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(3 << 30) == "3.0 GiB"
