"""modvault.module.semver against golang.org/x/mod/semver behaviour."""

from __future__ import annotations

import functools
import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modvault.module import semver

# (input, canonical form or "" when invalid), in increasing precedence; rows with equal canonical
# forms are equal. The order is the one x/mod's semver tests check Compare against.
ORDERED = [
    ("bad", ""),
    ("v1-alpha.beta.gamma", ""),
    ("v1-pre", ""),
    ("v1+meta", ""),
    ("v1-pre+meta", ""),
    ("v1.2-pre", ""),
    ("v1.2+meta", ""),
    ("v1.2-pre+meta", ""),
    ("v1.0.0-alpha", "v1.0.0-alpha"),
    ("v1.0.0-alpha.1", "v1.0.0-alpha.1"),
    ("v1.0.0-alpha.beta", "v1.0.0-alpha.beta"),
    ("v1.0.0-beta", "v1.0.0-beta"),
    ("v1.0.0-beta.2", "v1.0.0-beta.2"),
    ("v1.0.0-beta.11", "v1.0.0-beta.11"),
    ("v1.0.0-rc.1", "v1.0.0-rc.1"),
    ("v1", "v1.0.0"),
    ("v1.0", "v1.0.0"),
    ("v1.0.0", "v1.0.0"),
    ("v1.2", "v1.2.0"),
    ("v1.2.0", "v1.2.0"),
    ("v1.2.3-456", "v1.2.3-456"),
    ("v1.2.3-456.789", "v1.2.3-456.789"),
    ("v1.2.3-456-789", "v1.2.3-456-789"),
    ("v1.2.3-456a", "v1.2.3-456a"),
    ("v1.2.3-pre", "v1.2.3-pre"),
    ("v1.2.3-pre+meta", "v1.2.3-pre"),
    ("v1.2.3-pre.1", "v1.2.3-pre.1"),
    ("v1.2.3-zzz", "v1.2.3-zzz"),
    ("v1.2.3", "v1.2.3"),
    ("v1.2.3+meta", "v1.2.3"),
    ("v1.2.3+meta-pre", "v1.2.3"),
    ("v1.2.3+meta-pre.sha.256a", "v1.2.3"),
]

MORE_INVALID = [
    "",
    "v",
    "1.2.3",
    "V1.2.3",
    "v01.2.3",
    "v1.02.3",
    "v1.2.03",
    "v1.2.3.4",
    "v1.2.3-",
    "v1.2.3+",
    "v1.2.3-01",
    "v1.2.3-a..b",
    "v1.2.3-a.",
    "v1.2.3+a..b",
    "v1.2.3-é",
    "v1.2.3+é",
    "v1.2.3 ",
    " v1.2.3",
    "v1.2.3-a_b",
    "v١.2.3",  # non-ASCII digits are not digits here
    "v1..3",
    "v1.",
    "v1.2.",
    "v-1.2.3",
    "v1.2.3-pre-+",
]

MORE_VALID = [
    ("v0.0.0", "v0.0.0"),
    ("v0", "v0.0.0"),
    ("v1.2.3-0", "v1.2.3-0"),
    ("v1.2.3-0a", "v1.2.3-0a"),
    ("v1.2.3-00a", "v1.2.3-00a"),  # alphanumeric, so leading zeros are fine
    ("v1.2.3+01", "v1.2.3"),  # build identifiers may have leading zeros
    ("v1.2.3--", "v1.2.3--"),
    ("v2.0.0+incompatible", "v2.0.0"),
    ("v1.2.3-pre+incompatible", "v1.2.3-pre"),
    ("v123456789012345678901234567890.0.0", "v123456789012345678901234567890.0.0"),
]


@pytest.mark.parametrize(("v", "want"), ORDERED + [(v, "") for v in MORE_INVALID] + MORE_VALID)
def test_is_valid_and_canonical(v: str, want: str) -> None:
    assert semver.is_valid(v) == (want != "")
    assert semver.canonical(v) == want


@pytest.mark.parametrize(("v", "out"), ORDERED + MORE_VALID)
def test_major_minor_prerelease_build(v: str, out: str) -> None:
    want_major = out.split(".")[0] if out else ""
    assert semver.major(v) == want_major

    want_mm = ""
    if out:
        stem = v.split("+")[0].split("-")[0]
        dots = stem.count(".")
        want_mm = stem + ".0" if dots == 0 else stem if dots == 1 else stem.rsplit(".", 1)[0]
    assert semver.major_minor(v) == want_mm

    want_pre = out[out.index("-") :] if out and "-" in out else ""
    assert semver.prerelease(v) == want_pre
    assert semver.is_prerelease(v) == (want_pre != "")

    want_build = v[v.index("+") :] if out and "+" in v else ""
    assert semver.build(v) == want_build


@pytest.mark.parametrize(
    ("v", "major", "major_minor", "pre", "build"),
    [
        ("v2.1.0", "v2", "v2.1", "", ""),
        ("v2.1.0-pre+meta", "v2", "v2.1", "-pre", "+meta"),
        ("v2", "v2", "v2.0", "", ""),
        ("v2.5", "v2", "v2.5", "", ""),
        ("v2.0.0+incompatible", "v2", "v2.0", "", "+incompatible"),
        ("nope", "", "", "", ""),
    ],
)
def test_accessors(v: str, major: str, major_minor: str, pre: str, build: str) -> None:
    assert semver.major(v) == major
    assert semver.major_minor(v) == major_minor
    assert semver.prerelease(v) == pre
    assert semver.build(v) == build


def test_compare_follows_table_order() -> None:
    for i, (vi, ci) in enumerate(ORDERED):
        for j, (vj, cj) in enumerate(ORDERED):
            want = 0 if ci == cj else (-1 if i < j else 1)
            assert semver.compare(vi, vj) == want, (vi, vj)


@pytest.mark.parametrize(
    ("a", "b", "want"),
    [
        ("v1", "v1", 0),
        ("v2", "v1", 1),
        ("v1", "v2", -1),
        ("v1.19", "v1.2", 1),  # numbers compare numerically, not as strings
        ("v1.2.10", "v1.2.9", 1),
        ("v10.0.0", "v9.0.0", 1),
        ("v1.0.0-alpha", "v1.0.0-alpha.1", -1),
        ("v1.0.0-alpha.1", "v1.0.0-alpha.beta", -1),
        ("v1.0.0-beta.2", "v1.0.0-beta.11", -1),
        ("v1.0.0-1", "v1.0.0-a", -1),  # numeric identifiers below alphanumeric ones
        ("v1.0.0-A", "v1.0.0-a", -1),  # ASCII order
        ("v1.0.0-rc.1", "v1.0.0", -1),
        ("v1.0.0+a", "v1.0.0+b", 0),  # build metadata is ignored
        ("v2.0.0+incompatible", "v2.0.0", 0),
        ("bad", "v0.0.0", -1),
        ("v0.0.0", "bad", 1),
        ("bad", "worse", 0),
        ("", "bad", 0),
    ],
)
def test_compare_cases(a: str, b: str, want: int) -> None:
    assert semver.compare(a, b) == want
    assert semver.compare(b, a) == -want


def test_max_version() -> None:
    for i, (vi, _) in enumerate(ORDERED):
        for j, (vj, _) in enumerate(ORDERED):
            want = semver.canonical(vj) if i < j else semver.canonical(vi)
            assert semver.max_version(vi, vj) == want, (vi, vj)
    assert semver.max_version("v1.2.3+meta", "v1.2") == "v1.2.3"
    assert semver.max_version("bad", "v0.1") == "v0.1.0"


def _by_version(a: str, b: str) -> int:
    """semver.ByVersion.Less as a cmp function: compare, then string order."""
    c = semver.compare(a, b)
    if c != 0:
        return c
    return (a > b) - (a < b)


def test_sort_versions_table() -> None:
    versions = [v for v, _ in ORDERED] + MORE_INVALID + [v for v, _ in MORE_VALID]
    rng = random.Random(7)
    for _ in range(20):
        rng.shuffle(versions)
        got = semver.sort_versions(versions)
        assert got == sorted(versions, key=functools.cmp_to_key(_by_version))
        for a, b in itertools.pairwise(got):
            assert _by_version(a, b) <= 0


def test_sort_versions_examples() -> None:
    assert semver.sort_versions(["v1.10.0", "v1.2.0", "v1.2.0-rc.1", "junk", "v1.2"]) == [
        "junk",
        "v1.2.0-rc.1",
        "v1.2",
        "v1.2.0",
        "v1.10.0",
    ]
    # Ties by precedence fall back to string order, as semver.Sort does.
    assert semver.sort_versions(["v1.0.0+b", "v1.0.0", "v1", "v1.0.0+a"]) == [
        "v1",
        "v1.0.0",
        "v1.0.0+a",
        "v1.0.0+b",
    ]
    assert sorted(["v2", "v1.0.0-pre", "x"], key=semver.sort_key) == ["x", "v1.0.0-pre", "v2"]


# --- properties ---------------------------------------------------------------------------------

_nums = st.one_of(
    st.integers(min_value=0, max_value=12), st.integers(min_value=0, max_value=10**30)
).map(str)
_alnum = st.text(
    alphabet="0123456789abcdefABCxyz-", min_size=1, max_size=4
).filter(lambda s: not (len(s) > 1 and s[0] == "0" and s.isdigit()))
_pre = st.lists(st.one_of(_alnum, _nums), min_size=1, max_size=4).map(lambda xs: "-" + ".".join(xs))
_build = st.lists(
    st.text(alphabet="0123456789abcXYZ-", min_size=1, max_size=4), min_size=1, max_size=3
).map(lambda xs: "+" + ".".join(xs))


@st.composite
def valid_versions(draw: st.DrawFn) -> str:
    maj = draw(_nums)
    shape = draw(st.sampled_from(["major", "minor", "full"]))
    if shape == "major":
        return "v" + maj
    if shape == "minor":
        return f"v{maj}.{draw(_nums)}"
    v = f"v{maj}.{draw(_nums)}.{draw(_nums)}"
    if draw(st.booleans()):
        v += draw(_pre)
    if draw(st.booleans()):
        v += draw(_build)
    return v


any_versions = st.one_of(valid_versions(), st.text(max_size=12), st.just("v1.0.0-01"))


@given(valid_versions())
def test_valid_generated(v: str) -> None:
    assert semver.is_valid(v)
    c = semver.canonical(v)
    assert semver.is_valid(c)
    assert semver.canonical(c) == c  # idempotent
    assert semver.build(c) == ""
    assert semver.compare(v, c) == 0
    assert c.count(".") >= 2
    assert semver.major(c) == semver.major(v)
    assert semver.major_minor(c) == semver.major_minor(v)
    assert semver.prerelease(c) == semver.prerelease(v)


@given(any_versions)
def test_canonical_idempotent_any(v: str) -> None:
    c = semver.canonical(v)
    assert semver.canonical(c) == c
    assert (c != "") == semver.is_valid(v)
    if not semver.is_valid(v):
        assert semver.major(v) == semver.major_minor(v) == semver.prerelease(v) == ""
        assert semver.build(v) == ""


@given(any_versions, any_versions)
def test_compare_antisymmetric(a: str, b: str) -> None:
    assert semver.compare(a, b) == -semver.compare(b, a)
    assert semver.compare(a, b) in (-1, 0, 1)
    assert (semver.compare(a, b) == 0) == (semver.canonical(a) == semver.canonical(b))


@given(valid_versions(), valid_versions(), valid_versions())
def test_compare_transitive(a: str, b: str, c: str) -> None:
    x, y, z = sorted([a, b, c], key=functools.cmp_to_key(semver.compare))
    assert semver.compare(x, y) <= 0
    assert semver.compare(y, z) <= 0
    assert semver.compare(x, z) <= 0


@given(any_versions, any_versions)
def test_sort_key_agrees_with_compare(a: str, b: str) -> None:
    ka, kb = semver.sort_key(a), semver.sort_key(b)
    want = _by_version(a, b)
    assert ((ka > kb) - (ka < kb)) == want


@given(st.lists(any_versions, max_size=12))
def test_sort_versions_consistent(versions: list[str]) -> None:
    got = semver.sort_versions(versions)
    assert got == sorted(versions, key=functools.cmp_to_key(_by_version))
    assert sorted(got) == sorted(versions)


@given(valid_versions(), valid_versions())
def test_max_version_is_greatest(a: str, b: str) -> None:
    m = semver.max_version(a, b)
    assert m in (semver.canonical(a), semver.canonical(b))
    assert semver.compare(m, a) >= 0
    assert semver.compare(m, b) >= 0
