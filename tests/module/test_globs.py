"""modvault.module.globs: Go's path.Match and x/mod's MatchPrefixPatterns.

The path.Match port is also cross-checked against the real Go standard library (tests/module/gocheck)
when a ``go`` toolchain is on PATH.
"""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modvault.module.errors import ModuleError
from modvault.module.globs import match_prefix_patterns, path_match
from tests.support.gitrepos import GO, build_go_program

BAD = None  # path.ErrBadPattern

# (pattern, name, matched or BAD), after the cases Go's path package tests Match with.
PATH_MATCH = [
    ("abc", "abc", True),
    ("*", "abc", True),
    ("*c", "abc", True),
    ("a*", "a", True),
    ("a*", "abc", True),
    ("a*", "ab/c", False),
    ("a*/b", "abc/b", True),
    ("a*/b", "a/c/b", False),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True),
    ("a*b?c*x", "abxbbxdbxebxczzy", False),
    ("ab[c]", "abc", True),
    ("ab[b-d]", "abc", True),
    ("ab[e-g]", "abc", False),
    ("ab[^c]", "abc", False),
    ("ab[^b-d]", "abc", False),
    ("ab[^e-g]", "abc", True),
    ("a\\*b", "a*b", True),
    ("a\\*b", "ab", False),
    ("a?b", "a☺b", True),
    ("a[^a]b", "a☺b", True),
    ("a???b", "a☺b", False),
    ("a[^a][^a][^a]b", "a☺b", False),
    ("[a-ζ]*", "α", True),
    ("*[a-ζ]", "A", False),
    ("a?b", "a/b", False),
    ("a*b", "a/b", False),
    ("[\\]a]", "]", True),
    ("[\\-]", "-", True),
    ("[x\\-]", "x", True),
    ("[x\\-]", "-", True),
    ("[x\\-]", "z", False),
    ("[\\-x]", "x", True),
    ("[\\-x]", "-", True),
    ("[\\-x]", "a", False),
    ("[]a]", "]", BAD),
    ("[-]", "-", BAD),
    ("[x-]", "x", BAD),
    ("[x-]", "-", BAD),
    ("[x-]", "z", BAD),
    ("[-x]", "x", BAD),
    ("[-x]", "-", BAD),
    ("[-x]", "a", BAD),
    ("\\", "a", BAD),
    ("[a-b-c]", "a", BAD),
    ("[", "a", BAD),
    ("[^", "a", BAD),
    ("[^bc", "a", BAD),
    ("a[", "a", BAD),
    ("a[", "ab", BAD),
    ("a[", "x", BAD),
    ("a/b[", "x", BAD),
    ("*x", "xxx", True),
    # More corners.
    ("", "", True),
    ("", "a", False),
    ("*", "", True),
    ("*", "a/b", False),
    ("**", "ab", True),
    ("*/*", "a/b", True),
    ("[^a]", "/", True),  # a class may match "/" in path.Match; only * and ? may not
    ("?", "/", False),
    ("a\\", "a", BAD),
    ("x*[", "y", BAD),  # the rest of a failed pattern is still checked
    ("x*\\", "xy", BAD),
    ("*??", "€", True),  # byte-wise: the star may stop inside a multi-byte character
    ("[*]", "*", True),
    ("[a*]", "b", False),
    ("\\[", "[", True),
    ("[\\\\]", "\\", True),
    ("a*", "a\u00e9", True),
    ("[é-ê]", "é", True),
    ("[^é]", "e", True),
]


def _go_style(pattern: str, name: str) -> bool | None:
    try:
        return path_match(pattern, name)
    except ModuleError:
        return BAD


@pytest.mark.parametrize(("pattern", "name", "want"), PATH_MATCH)
def test_path_match(pattern: str, name: str, want: bool | None) -> None:
    assert _go_style(pattern, name) == want


def test_bad_pattern_message() -> None:
    with pytest.raises(ModuleError, match=r"^syntax error in pattern\Z"):
        path_match("[", "a")


# (globs, target, matched), after x/mod's MatchPrefixPatterns tests.
PREFIX = [
    ("", "rsc.io/quote", False),
    ("/", "rsc.io/quote", False),
    ("*/quote", "rsc.io/quote", True),
    ("*/quo", "rsc.io/quote", False),
    ("*/quo??", "rsc.io/quote", True),
    ("*/quo*", "rsc.io/quote", True),
    ("*quo*", "rsc.io/quote", False),
    ("rsc.io", "rsc.io/quote", True),
    ("*.io", "rsc.io/quote", True),
    ("rsc.io/", "rsc.io/quote", True),
    ("rsc", "rsc.io/quote", False),
    ("rsc*", "rsc.io/quote", True),
    ("rsc.io", "rsc.io/quote/v3", True),
    ("*/quote", "rsc.io/quote/v3", True),
    ("*/quote/", "rsc.io/quote/v3", True),
    ("*/quote/*", "rsc.io/quote/v3", True),
    ("*/quote/*/", "rsc.io/quote/v3", True),
    ("*/v3", "rsc.io/quote/v3", False),
    ("*/*/v3", "rsc.io/quote/v3", True),
    ("*/*/*", "rsc.io/quote/v3", True),
    ("*/*/*/", "rsc.io/quote/v3", True),
    ("*/*/*", "rsc.io/quote", False),
    ("*/*/*/", "rsc.io/quote", False),
    ("*/*/*,,", "rsc.io/quote", False),
    ("*/*/*,,*/quote", "rsc.io/quote", True),
    (",,*/quote", "rsc.io/quote", True),
    # GOPRIVATE-style examples.
    ("corp.example.com/*", "corp.example.com/x/y", True),
    ("corp.example.com/*", "corp.example.com", False),
    ("corp.example.com", "corp.example.com", True),
    ("rsc.io/private", "rsc.io/private/x", True),
    ("rsc.io/private", "rsc.io/private", True),
    ("rsc.io/private", "rsc.io/privateer", False),
    ("*.corp.example.com", "git.corp.example.com/team/repo", True),
    ("*.corp.example.com", "corp.example.com/team/repo", False),
    ("github.com/Acme", "github.com/acme/x", False),  # case matters
    ("[,rsc.io", "rsc.io/quote", True),  # "[" alone is malformed and skipped; "rsc.io" matches
    ("[", "rsc.io/quote", False),
    ("rsc.io//", "rsc.io/quote", False),  # only one trailing slash is dropped
    ("rsc.io/quote/", "rsc.io/quote", True),
    ("a,b,rsc.io", "rsc.io/quote", True),
]


@pytest.mark.parametrize(("globs", "target", "want"), PREFIX)
def test_match_prefix_patterns(globs: str, target: str, want: bool) -> None:
    assert match_prefix_patterns(globs, target) == want


# --- properties -------------------------------------------------------------------------------

_elem = st.from_regex(r"[a-z0-9][a-z0-9.-]{0,6}", fullmatch=True)
_paths = st.lists(_elem, min_size=1, max_size=5).map("/".join)


@given(_paths, st.integers(min_value=1, max_value=5))
def test_literal_prefix_matches(target: str, n: int) -> None:
    elems = target.split("/")
    prefix = "/".join(elems[:n])
    assert match_prefix_patterns(prefix, target)
    assert match_prefix_patterns(f"nope.example,{prefix}/", target)
    assert not match_prefix_patterns(prefix + "x", target)


@given(_paths)
def test_star_per_element(target: str) -> None:
    k = target.count("/") + 1
    assert match_prefix_patterns("/".join(["*"] * k), target)
    assert not match_prefix_patterns("/".join(["*"] * (k + 1)), target)


@given(st.text(alphabet="ab/*?[]^-\\", max_size=8), st.text(alphabet="ab/-]", max_size=6))
def test_path_match_is_deterministic_and_total(pattern: str, name: str) -> None:
    # Either an answer or ModuleError; never any other exception.
    assert _go_style(pattern, name) == _go_style(pattern, name)


# --- cross-check against Go's own path.Match ----------------------------------------------------

GOCHECK = Path(__file__).parent / "gocheck"


@pytest.fixture(scope="module")
def go_path_match(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if GO is None:
        pytest.skip("no go toolchain on PATH")
    out = tmp_path_factory.mktemp("gocheck") / "gocheck"
    proc = build_go_program(GOCHECK, out)
    if proc.returncode != 0:
        pytest.skip(f"cannot build gocheck: {proc.stderr.strip()[:300]}")
    return out


def _ask_go(binary: Path, pairs: list[tuple[str, str]]) -> list[bool | None]:
    proc = subprocess.run(
        [str(binary)],
        input=json.dumps(pairs),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    answers = json.loads(proc.stdout)
    return [BAD if a["bad"] else bool(a["matched"]) for a in answers]


def _corpus() -> list[tuple[str, str]]:
    rng = random.Random(20240611)
    pattern_alphabet = ["a", "b", "/", "*", "?", "[", "]", "^", "-", "\\", "é", "€", "☺", "z"]
    name_alphabet = ["a", "b", "/", "-", "]", "*", "é", "€", "☺", "\\", "["]
    pairs: list[tuple[str, str]] = [(p, n) for p, n, _ in PATH_MATCH]
    for _ in range(30000):
        p = "".join(rng.choice(pattern_alphabet) for _ in range(rng.randint(0, 8)))
        n = "".join(rng.choice(name_alphabet) for _ in range(rng.randint(0, 6)))
        pairs.append((p, n))
    return pairs


def test_path_match_agrees_with_go(go_path_match: Path) -> None:
    pairs = _corpus()
    want = _ask_go(go_path_match, pairs)
    got = [_go_style(p, n) for p, n in pairs]
    mismatches = [(p, n, g, w) for (p, n), g, w in zip(pairs, got, want, strict=True) if g != w]
    assert mismatches == [], mismatches[:20]
