"""ModulePolicy: GOPRIVATE / GONOPROXY / GONOSUMDB with the go command's semantics
(go.dev/ref/mod#private-modules; cmd/go/internal/cfg EnvOrAndChanged; module.MatchPrefixPatterns)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modvault.module.globs import match_prefix_patterns
from modvault.policy import ModulePolicy

MATCH_TABLE = [
    # (patterns, module, matches)
    ("corp.example.com/*", "corp.example.com/x", True),
    ("corp.example.com/*", "corp.example.com/x/y/z", True),  # the first two elements match
    ("corp.example.com/*", "corp.example.com", False),  # too few elements
    ("corp.example.com/*", "corp.example.comx/y", False),
    ("corp.example.com/*", "other.example.com/corp.example.com/x", False),
    ("*.corp.example.com", "git.corp.example.com/team/lib", True),
    ("*.corp.example.com", "corp.example.com/team/lib", False),
    ("rsc.io/private", "rsc.io/private", True),
    ("rsc.io/private", "rsc.io/private/quux", True),
    ("rsc.io/private", "rsc.io/privateer", False),
    ("rsc.io/private", "rsc.io/priv", False),
    ("rsc.io/private/", "rsc.io/private/x", True),  # one trailing slash is ignored
    ("github.com/acme/*,rsc.io/private", "rsc.io/private/x", True),
    ("github.com/acme/*,rsc.io/private", "github.com/acme/tool/v2", True),
    ("github.com/acme/*,rsc.io/private", "github.com/other/tool", False),
    (",,github.com/acme,,", "github.com/acme/x", True),  # empty entries are skipped
    ("", "github.com/acme/x", False),
    ("github.com/[a-c]*", "github.com/bcme/x", True),
    ("github.com/[a-c]*", "github.com/dcme/x", False),
    ("github.com/[", "github.com/[", False),  # a malformed glob never matches
    ("none", "github.com/acme/x", False),
]


@pytest.mark.parametrize(("patterns", "module", "want"), MATCH_TABLE)
def test_private_patterns(patterns: str, module: str, want: bool) -> None:
    p = ModulePolicy(private=patterns)
    assert p.is_private(module) is want
    # GOPRIVATE is the default of both GONOPROXY and GONOSUMDB.
    assert p.is_noproxy(module) is want
    assert p.is_nosumdb(module) is want
    # The same patterns given to each setting directly behave the same.
    assert ModulePolicy(noproxy=patterns).is_noproxy(module) is want
    assert ModulePolicy(nosumdb=patterns).is_nosumdb(module) is want


def test_explicit_settings_override_private() -> None:
    p = ModulePolicy(private="corp.example.com", noproxy="none", nosumdb="sumless.example.com")
    # GONOPROXY=none: everything goes through the proxy list, private or not.
    assert not p.is_noproxy("corp.example.com/lib")
    assert p.effective_noproxy == "none"
    # GONOSUMDB set: GOPRIVATE no longer says anything about checksums.
    assert not p.is_nosumdb("corp.example.com/lib")
    assert p.is_nosumdb("sumless.example.com/lib")
    assert p.is_private("corp.example.com/lib")


def test_empty_settings_fall_back_to_private() -> None:
    p = ModulePolicy(private="corp.example.com", noproxy="", nosumdb="")
    assert p.effective_noproxy == p.effective_nosumdb == "corp.example.com"
    q = ModulePolicy()
    assert not q.is_noproxy("corp.example.com/lib") and not q.is_nosumdb("corp.example.com/lib")


def test_only_noproxy() -> None:
    p = ModulePolicy(noproxy="corp.example.com")
    assert p.is_noproxy("corp.example.com/lib")
    assert not p.is_nosumdb("corp.example.com/lib")  # GONOSUMDB does not default to GONOPROXY
    assert not p.is_private("corp.example.com/lib")


# --- properties ---------------------------------------------------------------------------

_label = st.from_regex(r"[a-z0-9]([a-z0-9\-]{0,6}[a-z0-9])?", fullmatch=True)
_host = st.builds(lambda a, b: f"{a}.{b}", _label, st.sampled_from(["com", "org", "io", "dev"]))
_elem = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,8}", fullmatch=True).filter(
    lambda e: not e.endswith("."))
_module = st.builds(lambda h, rest: "/".join([h, *rest]), _host, st.lists(_elem, max_size=4))
_pattern_list = st.lists(st.one_of(_module, _host.map(lambda h: "*." + h.split(".", 1)[1]),
                                   _host.map(lambda h: h + "/*"), st.just("none"), st.just("")),
                         max_size=4).map(",".join)


@given(_pattern_list, _module)
def test_private_is_only_a_default(patterns: str, module: str) -> None:
    direct = match_prefix_patterns(patterns, module)
    assert ModulePolicy(private=patterns).is_noproxy(module) is direct
    assert ModulePolicy(private=patterns).is_nosumdb(module) is direct
    assert ModulePolicy(private="zzz.example/*", noproxy=patterns).is_noproxy(module) is (
        direct if patterns != "" else match_prefix_patterns("zzz.example/*", module))


@given(_module, st.integers(min_value=1, max_value=5))
def test_leading_elements_match(module: str, k: int) -> None:
    parts = module.split("/")
    prefix = "/".join(parts[:k])
    assert ModulePolicy(private=prefix).is_private(module)
    # A pattern with more elements than the module never matches it.
    assert not ModulePolicy(private=module + "/extra").is_private(module)


@given(_module, st.from_regex(r"[a-z0-9]{1,4}", fullmatch=True))
def test_no_partial_element_match(module: str, suffix: str) -> None:
    # "rsc.io/private" must not match "rsc.io/privateer".
    assert not ModulePolicy(private=module).is_private(module + suffix)
    assert ModulePolicy(private=module).is_private(module + "/" + suffix)


@given(_module)
def test_none_matches_no_module(module: str) -> None:
    p = ModulePolicy(private=module, noproxy="none", nosumdb="none")
    assert not p.is_noproxy(module) and not p.is_nosumdb(module)
    assert p.is_private(module)


@given(_host, st.lists(_elem, min_size=1, max_size=4))
def test_star_matches_one_element(host: str, rest: list[str]) -> None:
    module = "/".join([host, *rest])
    assert ModulePolicy(private=f"{host}/*").is_private(module)
    assert not ModulePolicy(private=f"{host}/*").is_private(host)
    assert ModulePolicy(private=f"{host}/*/*").is_private(module) is (len(rest) >= 2)
