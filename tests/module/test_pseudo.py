"""modvault.module.pseudo against golang.org/x/mod/module pseudo-version behaviour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modvault.module import pseudo, semver
from modvault.module.errors import InvalidVersion

T = datetime(2006, 1, 2, 15, 4, 5, tzinfo=UTC)

# (major, older tag, pseudo-version for T and revision "hash"), after x/mod's pseudoTests.
PSEUDO = [
    ("", "", "v0.0.0-20060102150405-hash"),
    ("v0", "", "v0.0.0-20060102150405-hash"),
    ("v1", "", "v1.0.0-20060102150405-hash"),
    ("v2", "", "v2.0.0-20060102150405-hash"),
    ("unused", "v0.0.0", "v0.0.1-0.20060102150405-hash"),
    ("unused", "v1.2.3", "v1.2.4-0.20060102150405-hash"),
    ("unused", "v1.2.99999999999999999", "v1.2.100000000000000000-0.20060102150405-hash"),
    ("unused", "v1.2.3-pre", "v1.2.3-pre.0.20060102150405-hash"),
    ("unused", "v1.3.0-pre", "v1.3.0-pre.0.20060102150405-hash"),
    ("unused", "v0.0.0--", "v0.0.0--.0.20060102150405-hash"),
    ("unused", "v1.0.0+metadata", "v1.0.1-0.20060102150405-hash+metadata"),
    ("unused", "v2.0.0+incompatible", "v2.0.1-0.20060102150405-hash+incompatible"),
    ("unused", "v2.3.0-pre+incompatible", "v2.3.0-pre.0.20060102150405-hash+incompatible"),
    ("unused", "v1.9.9", "v1.9.10-0.20060102150405-hash"),
]


@pytest.mark.parametrize(("major", "older", "want"), PSEUDO)
def test_pseudo_version(major: str, older: str, want: str) -> None:
    assert pseudo.pseudo_version(major, older, T, "hash") == want


@pytest.mark.parametrize(("_major", "older", "v"), PSEUDO)
def test_parse_back(_major: str, older: str, v: str) -> None:
    assert pseudo.is_pseudo_version(v)
    assert not pseudo.is_pseudo_version(older)
    assert pseudo.pseudo_version_time(v) == "20060102150405"
    assert pseudo.pseudo_version_time_as_datetime(v) == T
    assert pseudo.pseudo_version_rev(v) == "hash"
    assert pseudo.pseudo_version_base(v) == older
    for fn in (
        pseudo.pseudo_version_time,
        pseudo.pseudo_version_time_as_datetime,
        pseudo.pseudo_version_rev,
        pseudo.pseudo_version_base,
    ):
        with pytest.raises(InvalidVersion):
            fn(older)


def test_forms_with_real_hash() -> None:
    rev = "abcdefabcdef"
    assert pseudo.pseudo_version("v1", "", T, rev) == "v1.0.0-20060102150405-abcdefabcdef"
    assert pseudo.pseudo_version("v1", "v1.4.2", T, rev) == "v1.4.3-0.20060102150405-abcdefabcdef"
    assert (
        pseudo.pseudo_version("v1", "v1.5.0-rc.1", T, rev)
        == "v1.5.0-rc.1.0.20060102150405-abcdefabcdef"
    )
    # An invalid "older" counts as no tag at all.
    assert pseudo.pseudo_version("v3", "junk", T, rev) == "v3.0.0-20060102150405-abcdefabcdef"
    # Shorthand tags are canonicalized first.
    assert pseudo.pseudo_version("v1", "v1.2", T, rev) == "v1.2.1-0.20060102150405-abcdefabcdef"


def test_time_is_converted_to_utc() -> None:
    east = timezone(timedelta(hours=9))
    t = datetime(2006, 1, 3, 0, 4, 5, tzinfo=east)  # 2006-01-02T15:04:05Z
    assert pseudo.pseudo_version("v1", "", t, "h") == "v1.0.0-20060102150405-h"
    naive = datetime(2006, 1, 2, 15, 4, 5)  # read as UTC
    assert pseudo.pseudo_version("v1", "", naive, "h") == "v1.0.0-20060102150405-h"
    early = datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert pseudo.pseudo_version("v1", "", early, "h") == "v1.0.0-09990102030405-h"


@pytest.mark.parametrize(
    "v",
    [
        "v0.0.0",
        "v0.0.0-",  # empty pre-release
        "v0.0.0-0.20060102150405-hash",  # Z+1 == 0
        "v0.1.0-0.20060102150405-hash",  # Z+1 == 0
        "v1.0.0-0.20060102150405-hash",  # Z+1 == 0
        "v0.0.0-20060102150405-hash+incompatible",  # +incompatible without a base
        "v0.0.0-20060102150405-hash+metadata",  # other metadata without a base
    ],
)
def test_invalid_pseudo_version_base(v: str) -> None:
    with pytest.raises(InvalidVersion):
        pseudo.pseudo_version_base(v)


@pytest.mark.parametrize(
    ("v", "message"),
    [
        ("---", 'pseudo-version "---" invalid: syntax error'),
        (
            "v1.0.0-0.20060102150405-hash",
            'pseudo-version "v1.0.0-0.20060102150405-hash" invalid: '
            "version before v1.0.0 would have negative patch number",
        ),
        (
            "v0.0.0-20060102150405-hash+incompatible",
            'pseudo-version "v0.0.0-20060102150405-hash+incompatible" invalid: '
            'lacks base version, but has build metadata "+incompatible"',
        ),
    ],
)
def test_base_messages(v: str, message: str) -> None:
    with pytest.raises(InvalidVersion) as e:
        pseudo.pseudo_version_base(v)
    assert str(e.value) == message


@pytest.mark.parametrize(
    ("v", "want"),
    [
        ("v0.0.0-20060102150405-abcdefabcdef", True),
        ("v1.2.4-0.20060102150405-abcdefabcdef", True),
        ("v1.2.3-pre.0.20060102150405-abcdefabcdef", True),
        ("v2.0.1-0.20060102150405-abcdefabcdef+incompatible", True),
        ("v0.0.0-20060102150405", False),  # no revision
        ("v0.0.0-2006010215040-abcdefabcdef", False),  # 13 digits
        ("v0.0.0-200601021504050-abcdefabcdef", False),  # 15 digits
        ("v0.0.0-20060102150405-abc_def", False),
        ("v1.2.3-20060102150405-abcdefabcdef", False),  # release base must use "-0."
        ("v1.2.3-1.20060102150405-abcdefabcdef", False),
        ("v1.2.3-pre.1.20060102150405-abcdefabcdef", False),
        ("v1.2.3-0.20060102150405-abcdefabcdef", True),
        ("v1.2.3", False),
        ("v1.2.3-pre", False),
        ("v0.0.0-٢٠٠٦٠١٠٢١٥٠٤٠٥-abcdefabcdef", False),  # non-ASCII digits
        ("v0.0.0-20060102150405-abcdefabcdef+", False),
        ("v1.2.3-0.20060102150405-abcdefabcdef+meta.01", True),
        ("", False),
    ],
)
def test_is_pseudo_version(v: str, want: bool) -> None:
    assert pseudo.is_pseudo_version(v) == want


@pytest.mark.parametrize(
    "v",
    [
        "v0.0.0-20061302150405-hash",  # month 13
        "v0.0.0-20060230150405-hash",  # February 30
        "v0.0.0-20060102250405-hash",  # hour 25
        "v0.0.0-20060102156005-hash",  # minute 60
        "v0.0.0-20060102150460-hash",  # second 60
        "v0.0.0-20060100150405-hash",  # day 0
    ],
)
def test_malformed_time(v: str) -> None:
    assert pseudo.is_pseudo_version(v)
    with pytest.raises(InvalidVersion) as e:
        pseudo.pseudo_version_time(v)
    assert "malformed time" in str(e.value)
    with pytest.raises(InvalidVersion):
        pseudo.pseudo_version_time_as_datetime(v)
    assert pseudo.pseudo_version_rev(v) == "hash"


def test_leap_day_is_fine() -> None:
    v = "v0.0.0-20240229000000-hash"
    assert pseudo.pseudo_version_time_as_datetime(v) == datetime(2024, 2, 29, tzinfo=UTC)


def test_zero_pseudo_version() -> None:
    assert pseudo.zero_pseudo_version("v0") == "v0.0.0-00010101000000-000000000000"
    assert pseudo.zero_pseudo_version("") == "v0.0.0-00010101000000-000000000000"
    assert pseudo.zero_pseudo_version("v2") == "v2.0.0-00010101000000-000000000000"
    assert pseudo.is_zero_pseudo_version("v0.0.0-00010101000000-000000000000")
    assert pseudo.is_zero_pseudo_version("v3.0.0-00010101000000-000000000000")
    assert not pseudo.is_zero_pseudo_version("v0.0.0-00010101000000-000000000001")
    assert not pseudo.is_zero_pseudo_version("v0.0.0-20060102150405-000000000000")
    assert not pseudo.is_zero_pseudo_version("v0.0.1-0.00010101000000-000000000000")
    assert not pseudo.is_zero_pseudo_version("junk")
    assert pseudo.pseudo_version_time_as_datetime(pseudo.zero_pseudo_version("v1")) == datetime(
        1, 1, 1, tzinfo=UTC
    )


# --- properties -------------------------------------------------------------------------------

_num = st.integers(min_value=0, max_value=10**6).map(str)
_pre = st.lists(
    st.one_of(st.from_regex(r"[a-z][a-z0-9-]{0,4}", fullmatch=True), _num), min_size=1, max_size=3
).map(lambda xs: "-" + ".".join(xs))


@st.composite
def tags(draw: st.DrawFn) -> str:
    """An "older" tag: "", or a canonical version with optional pre-release and +incompatible."""
    if draw(st.integers(min_value=0, max_value=4)) == 0:
        return ""
    v = f"v{draw(_num)}.{draw(_num)}.{draw(_num)}"
    if draw(st.booleans()):
        v += draw(_pre)
    if draw(st.booleans()):
        v += "+incompatible"
    return v


_times = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)
).map(lambda t: t.replace(microsecond=0, tzinfo=UTC))
_revs = st.from_regex(r"[0-9a-f]{12}", fullmatch=True)
_majors = st.sampled_from(["", "v0", "v1", "v2", "v17"])


@given(_majors, tags(), _times, _revs)
def test_round_trip(major: str, older: str, t: datetime, rev: str) -> None:
    v = pseudo.pseudo_version(major, older, t, rev)
    assert semver.is_valid(v)
    assert pseudo.is_pseudo_version(v)
    assert pseudo.pseudo_version_rev(v) == rev
    assert pseudo.pseudo_version_time_as_datetime(v) == t
    assert pseudo.pseudo_version_time(v) == f"{t.year:04d}{t:%m%d%H%M%S}"
    if older == "":
        assert pseudo.pseudo_version_base(v) == ""
        assert semver.major(v) == (major or "v0")
        assert v.startswith((major or "v0") + ".0.0-")
    else:
        assert pseudo.pseudo_version_base(v) == older
        assert semver.build(v) == semver.build(older)
        # A pseudo-version sorts just after its base tag...
        assert semver.compare(v, older) > 0
        # ...and before the next release.
        if not semver.is_prerelease(older):
            base = semver.canonical(older)
            mm, patch = base.rsplit(".", 1)
            assert semver.compare(v, f"{mm}.{int(patch) + 1}") < 0


@given(_times, _revs)
def test_time_order_is_version_order(t: datetime, rev: str) -> None:
    later = t.replace(year=min(t.year + 1, 9999)) if t.month != 2 or t.day != 29 else t
    a = pseudo.pseudo_version("v1", "v1.2.3", t, rev)
    b = pseudo.pseudo_version("v1", "v1.2.3", later, rev)
    assert semver.compare(a, b) == (0 if later == t else -1)
