"""modvault.module.path against golang.org/x/mod/module behaviour."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from modvault.module import path as mp
from modvault.module.errors import InvalidPath, InvalidVersion, ModuleError


def _ok(fn: object, arg: str) -> bool:
    assert callable(fn)
    try:
        fn(arg)
    except InvalidPath:
        return False
    return True


# (path, valid module path, valid import path, valid file path), after x/mod's checkPathTests
# (current rules: "+" only in import paths, leading dots/dashes allowed where x/mod allows them).
CHECK_PATH = [
    ("x.y/z", True, True, True),
    ("x.y", True, True, True),
    ("", False, False, False),
    ("x.y/\udcffz", False, False, False),  # not valid UTF-8
    ("/x.y/z", False, False, False),
    ("x./z", False, False, False),
    (".x/z", False, True, True),
    ("-x/z", False, False, True),
    ("x..y/z", True, True, True),
    ("x.y/z/../../w", False, False, False),
    ("x.y//z", False, False, False),
    ("x.y/z//w", False, False, False),
    ("x.y/z/", False, False, False),
    ("x.y/z/v0", False, True, True),
    ("x.y/z/v1", False, True, True),
    ("x.y/z/v2", True, True, True),
    ("x.y/z/v2.0", False, True, True),
    ("X.y/z", False, True, True),
    ("!x.y/z", False, False, True),
    ("_x.y/z", False, True, True),
    ("x.y!/z", False, False, True),
    ('x.y"/z', False, False, False),
    ("x.y#/z", False, False, True),
    ("x.y$/z", False, False, True),
    ("x.y%/z", False, False, True),
    ("x.y&/z", False, False, True),
    ("x.y'/z", False, False, False),
    ("x.y(/z", False, False, True),
    ("x.y)/z", False, False, True),
    ("x.y*/z", False, False, False),
    ("x.y+/z", False, True, True),
    ("x.y,/z", False, False, True),
    ("x.y-/z", True, True, True),
    ("x.y./zt", False, False, False),
    ("x.y:/z", False, False, False),
    ("x.y;/z", False, False, False),
    ("x.y</z", False, False, False),
    ("x.y=/z", False, False, True),
    ("x.y>/z", False, False, False),
    ("x.y?/z", False, False, False),
    ("x.y@/z", False, False, True),
    ("x.y[/z", False, False, True),
    ("x.y\\/z", False, False, False),
    ("x.y]/z", False, False, True),
    ("x.y^/z", False, False, True),
    ("x.y_/z", False, True, True),
    ("x.y`/z", False, False, False),
    ("x.y{/z", False, False, True),
    ("x.y}/z", False, False, True),
    ("x.y~/z", False, True, True),
    ("x.y/z!", False, False, True),
    ('x.y/z"', False, False, False),
    ("x.y/z#", False, False, True),
    ("x.y/z$", False, False, True),
    ("x.y/z%", False, False, True),
    ("x.y/z&", False, False, True),
    ("x.y/z'", False, False, False),
    ("x.y/z(", False, False, True),
    ("x.y/z)", False, False, True),
    ("x.y/z*", False, False, False),
    ("x.y/z+", False, True, True),
    ("x.y/z++", False, True, True),
    ("x.y/z,", False, False, True),
    ("x.y/z-", True, True, True),
    ("x.y/z.t", True, True, True),
    ("x.y/z/t", True, True, True),
    ("x.y/z:", False, False, False),
    ("x.y/z;", False, False, False),
    ("x.y/z<", False, False, False),
    ("x.y/z=", False, False, True),
    ("x.y/z>", False, False, False),
    ("x.y/z?", False, False, False),
    ("x.y/z@", False, False, True),
    ("x.y/z[", False, False, True),
    ("x.y/z\\", False, False, False),
    ("x.y/z]", False, False, True),
    ("x.y/z^", False, False, True),
    ("x.y/z_", True, True, True),
    ("x.y/z`", False, False, False),
    ("x.y/z{", False, False, True),
    ("x.y/z}", False, False, True),
    ("x.y/z~", True, True, True),
    ("x.y/x.foo", True, True, True),
    ("x.y/aux.foo", False, False, False),
    ("x.y/prn", False, False, False),
    ("x.y/prn2", True, True, True),
    ("x.y/com", True, True, True),
    ("x.y/com1", False, False, False),
    ("x.y/com1.txt", False, False, False),
    ("x.y/calm1", True, True, True),
    ("x.y/NuL", False, False, False),
    ("x.y/Lpt9.a.b", False, False, False),
    ("x.y/com0", True, True, True),
    ("x.y/z~0", False, False, True),
    ("x.y/z~09", False, False, True),
    ("x.y/z09", True, True, True),
    ("x.y/z09~", True, True, True),
    ("x.y/z09~09z", True, True, True),
    ("x.y/z09~09z~09", False, False, True),
    ("x.y/progra~1.x", False, False, True),  # the tilde rule looks before the first dot
    ("x.y/z~1a", True, True, True),
    ("github.com/!123/logrus", False, False, True),
    ("github.com/user/unicode/испытание", False, False, True),
    ("../x", False, False, False),
    ("./y", False, False, False),
    ("x:y", False, False, False),
    ("\\temp\\foo", False, False, False),
    (".gitignore", False, True, True),
    (".github/ISSUE_TEMPLATE", False, True, True),
    ("x☺y", False, False, False),
    ("x.y/a b", False, False, True),
    ("-x.y", False, False, True),
    ("x.y/-z", True, True, True),
    ("x.y/...", False, False, False),
    ("gopkg.in/yaml.v2", True, True, True),
    ("gopkg.in/yaml", False, True, True),
    ("gopkg.in/yaml.v0", True, True, True),
    ("gopkg.in/yaml.v01", False, True, True),
    ("gopkg.in/yaml.v2-unstable", True, True, True),
    ("example.com/x/v02", False, True, True),
    ("example.com/x/v10", True, True, True),
    ("example.com/v2", True, True, True),
    ("x.y/v", True, True, True),
    ("exa_mple.com/x", False, True, True),
    ("Example.com/x", False, True, True),
    ("example.com:8080/x", False, False, False),
    ("localhost/x", False, True, True),
]


@pytest.mark.parametrize(("p", "ok", "import_ok", "file_ok"), CHECK_PATH)
def test_check_path_kinds(p: str, ok: bool, import_ok: bool, file_ok: bool) -> None:
    assert _ok(mp.check_path, p) == ok
    assert _ok(mp.check_import_path, p) == import_ok
    assert _ok(mp.check_file_path, p) == file_ok


@pytest.mark.parametrize(
    ("fn", "p", "message"),
    [
        (mp.check_path, "", 'malformed module path "": empty string'),
        (mp.check_path, "x.y/z/", 'malformed module path "x.y/z/": trailing slash'),
        (mp.check_path, "x.y//z", 'malformed module path "x.y//z": double slash'),
        (mp.check_path, "-x/z", 'malformed module path "-x/z": leading dash'),
        (mp.check_path, "x.y/.z", 'malformed module path "x.y/.z": leading dot in path element'),
        (mp.check_path, "x./z", 'malformed module path "x./z": trailing dot in path element'),
        (mp.check_path, "x.y/..", 'malformed module path "x.y/..": invalid path element ".."'),
        (mp.check_path, "x.y/z+", "malformed module path \"x.y/z+\": invalid char '+'"),
        (mp.check_path, "x.y/z'", "malformed module path \"x.y/z'\": invalid char '\\''"),
        (mp.check_path, 'x.y/z"', "malformed module path \"x.y/z\\\"\": invalid char '\"'"),
        (mp.check_path, "x.y/\tz", "malformed module path \"x.y/\\tz\": invalid char '\\t'"),
        (mp.check_path, "x.y/é", "malformed module path \"x.y/é\": invalid char 'é'"),
        (mp.check_path, "rsc/io", 'malformed module path "rsc/io": missing dot in first path element'),
        (
            mp.check_path,
            "Rsc.io/x",
            "malformed module path \"Rsc.io/x\": invalid char 'R' in first path element",
        ),
        (mp.check_path, "x.y/v1", 'malformed module path "x.y/v1": invalid version'),
        (
            mp.check_path,
            "x.y/COM1.txt",
            'malformed module path "x.y/COM1.txt": "COM1" disallowed as path element component'
            " on Windows",
        ),
        (
            mp.check_path,
            "x.y/z~1",
            'malformed module path "x.y/z~1": trailing tilde and digits in path element',
        ),
        (mp.check_path, "x.y/\udcff", 'malformed module path "x.y/\\udcff": invalid UTF-8'),
        (mp.check_import_path, "x.y/z*", "malformed import path \"x.y/z*\": invalid char '*'"),
        (mp.check_file_path, "a/b:c", "malformed file path \"a/b:c\": invalid char ':'"),
        (mp.check_file_path, "a/", 'malformed file path "a/": trailing slash'),
    ],
)
def test_check_path_messages(fn: object, p: str, message: str) -> None:
    assert callable(fn)
    with pytest.raises(InvalidPath) as e:
        fn(p)
    assert str(e.value) == message
    assert isinstance(e.value, ModuleError)
    assert isinstance(e.value, ValueError)


# --- split_path_version / path majors ---------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "major"),
    [
        ("x.y/z", ""),
        ("x.y/z", "/v2"),
        ("x.y/z", "/v3"),
        ("x.y/z", "/v10"),
        ("x.y/v", ""),
        ("gopkg.in/yaml", ".v0"),
        ("gopkg.in/yaml", ".v1"),
        ("gopkg.in/yaml", ".v2"),
        ("gopkg.in/yaml", ".v3"),
        ("gopkg.in/yaml", ".v2-unstable"),
        ("gopkg.in/user/pkg", ".v3"),
        ("x.y/v2x", ""),
        ("x.y/z.v2", ""),
        ("v2", ""),
    ],
)
def test_split_path_version(prefix: str, major: str) -> None:
    assert mp.split_path_version(prefix + major) == (prefix, major, True)


@pytest.mark.parametrize(
    "p",
    [
        "x.y/z/v0",
        "x.y/z/v1",
        "x.y/z/v01",
        "x.y/z/v2.0",
        "x.y/z/v1.2",
        "gopkg.in/yaml",
        "gopkg.in/yaml.v",
        "gopkg.in/yaml.v01",
        "gopkg.in/yaml/v2",
        "gopkg.in/",
    ],
)
def test_split_path_version_not_ok(p: str) -> None:
    prefix, major, ok = mp.split_path_version(p)
    assert (prefix, major, ok) == (p, "", False)


@pytest.mark.parametrize(("p", "_ok1", "_ok2", "_ok3"), CHECK_PATH)
def test_split_path_version_adds_up(p: str, _ok1: bool, _ok2: bool, _ok3: bool) -> None:
    prefix, major, _ = mp.split_path_version(p)
    assert prefix + major == p


MATCH_PATH_MAJOR = [
    ("v0.0.0", "", True),
    ("v0.0.0", "/v2", False),
    ("v0.0.0", ".v0", True),
    ("v0.0.0-20190510104115-cbcb75029529", ".v1", True),
    ("v1.0.0", "/v2", False),
    ("v1.0.0", ".v1", True),
    ("v1.0.0", ".v1-unstable", True),
    ("v2.0.0+incompatible", "", True),
    ("v2.0.0", "", False),
    ("v2.0.0", "/v2", True),
    ("v2.0.0", ".v2", True),
    ("v2.0.0+incompatible", "/v2", True),  # x/mod: the major agrees, the suffix is not examined
    ("v3.1.0", "/v2", False),
    ("v1.5.0", "", True),
    ("bad", "", False),
]


@pytest.mark.parametrize(("v", "path_major", "want"), MATCH_PATH_MAJOR)
def test_match_and_check_path_major(v: str, path_major: str, want: bool) -> None:
    assert mp.match_path_major(v, path_major) == want
    if want:
        mp.check_path_major(v, path_major)
    else:
        with pytest.raises(InvalidVersion):
            mp.check_path_major(v, path_major)


@pytest.mark.parametrize(
    ("v", "path_major", "message"),
    [
        ("v2.0.0", "", 'version "v2.0.0" invalid: should be v0 or v1, not v2'),
        ("v1.0.0", "/v2", 'version "v1.0.0" invalid: should be v2, not v1'),
        ("v0.1.0", ".v1-unstable", 'version "v0.1.0" invalid: should be v1, not v0'),
        ("junk", "/v3", 'version "junk" invalid: should be v3, not '),
    ],
)
def test_check_path_major_messages(v: str, path_major: str, message: str) -> None:
    with pytest.raises(InvalidVersion) as e:
        mp.check_path_major(v, path_major)
    assert str(e.value) == message


@pytest.mark.parametrize(
    ("v", "want"),
    [
        ("v1.2", "v1.2.0"),
        ("v1.2.3+meta", "v1.2.3"),
        ("v2.0+incompatible", ""),  # invalid: shorthands take no suffix
        ("v2.0.0+incompatible", "v2.0.0+incompatible"),
        ("bad", ""),
    ],
)
def test_canonical_version(v: str, want: str) -> None:
    assert mp.canonical_version(v) == want


# --- check ------------------------------------------------------------------------------------

# After x/mod's checkTests (all canonical versions, so the stricter rules do not interfere).
CHECK = [
    ("rsc.io/quote", "0.1.0", False),
    ("rsc io/quote", "v1.0.0", False),
    ("github.com/go-yaml/yaml", "v0.8.0", True),
    ("github.com/go-yaml/yaml", "v1.0.0", True),
    ("github.com/go-yaml/yaml", "v2.0.0", False),
    ("github.com/go-yaml/yaml", "v2.1.5", False),
    ("github.com/go-yaml/yaml", "v3.0.0", False),
    ("github.com/go-yaml/yaml/v2", "v1.0.0", False),
    ("github.com/go-yaml/yaml/v2", "v2.0.0", True),
    ("github.com/go-yaml/yaml/v2", "v2.1.5", True),
    ("github.com/go-yaml/yaml/v2", "v3.0.0", False),
    ("gopkg.in/yaml.v0", "v0.8.0", True),
    ("gopkg.in/yaml.v0", "v1.0.0", False),
    ("gopkg.in/yaml.v0", "v2.0.0", False),
    ("gopkg.in/yaml.v0", "v2.1.5", False),
    ("gopkg.in/yaml.v0", "v3.0.0", False),
    ("gopkg.in/yaml.v1", "v0.8.0", False),
    ("gopkg.in/yaml.v1", "v1.0.0", True),
    ("gopkg.in/yaml.v1", "v2.0.0", False),
    ("gopkg.in/yaml.v1", "v2.1.5", False),
    ("gopkg.in/yaml.v1", "v3.0.0", False),
    ("gopkg.in/check.v1", "v0.0.0", False),
    ("gopkg.in/check.v1", "v0.0.0-20160102150405-abcdef123456", True),
    ("gopkg.in/yaml.v2", "v1.0.0", False),
    ("gopkg.in/yaml.v2", "v2.0.0", True),
    ("gopkg.in/yaml.v2", "v2.1.5", True),
    ("gopkg.in/yaml.v2", "v3.0.0", False),
    ("rsc.io/quote", "v17.0.0", False),
    ("rsc.io/quote", "v17.0.0+incompatible", True),
    # Stricter than module.Check (see check's docstring):
    ("rsc.io/quote", "v1.2", False),  # not canonical
    ("rsc.io/quote", "v1.2.0+meta", False),  # not canonical
    ("rsc.io/quote", "v1.5.2+incompatible", False),  # v1 is compatible
    ("rsc.io/quote", "v0.1.0+incompatible", False),
    ("rsc.io/quote/v2", "v2.0.0+incompatible", False),  # suffix and +incompatible exclude
    ("gopkg.in/yaml.v2", "v2.0.0+incompatible", False),
    ("rsc.io/quote", "v2.0.0-pre+incompatible", True),
    ("rsc.io/quote/v3", "v3.0.0-20180101000000-abcdefabcdef", True),
    ("rsc.io/quote/v3", "v3.0.1-0.20180101000000-abcdefabcdef", True),
]


@pytest.mark.parametrize(("p", "v", "ok"), CHECK)
def test_check(p: str, v: str, ok: bool) -> None:
    if ok:
        mp.check(p, v)
    else:
        with pytest.raises(ModuleError):
            mp.check(p, v)


@pytest.mark.parametrize(
    ("p", "v", "exc", "message"),
    [
        ("rsc io/quote", "v1.0.0", InvalidPath, "malformed module path \"rsc io/quote\": "),
        ("rsc.io/quote", "0.1.0", InvalidVersion, "rsc.io/quote@0.1.0: invalid version: not a"),
        ("rsc.io/quote", "v1.2", InvalidVersion, "rsc.io/quote@v1.2: invalid version: not a can"),
        (
            "rsc.io/quote",
            "v2.0.0",
            InvalidVersion,
            "rsc.io/quote@v2.0.0: invalid version: should be v0 or v1, not v2",
        ),
        (
            "rsc.io/quote",
            "v1.0.0+incompatible",
            InvalidVersion,
            "rsc.io/quote@v1.0.0+incompatible: invalid version: +incompatible suffix not allowed",
        ),
        ("gopkg.in/yaml.v1", "v2.0.0", InvalidVersion, "gopkg.in/yaml.v1@v2.0.0: invalid vers"),
    ],
)
def test_check_messages(p: str, v: str, exc: type[ModuleError], message: str) -> None:
    with pytest.raises(exc) as e:
        mp.check(p, v)
    assert str(e.value).startswith(message)
    assert "\n" not in str(e.value)


# --- escaping ---------------------------------------------------------------------------------

ESCAPES = [
    ("ascii.com/abcdefghijklmnopqrstuvwxyz.-/~_0123456789", None),
    ("github.com/GoogleCloudPlatform/omega", "github.com/!google!cloud!platform/omega"),
    ("github.com/Azure/azure-sdk-for-go", "github.com/!azure/azure-sdk-for-go"),
    ("github.com/Sirupsen/logrus", "github.com/!sirupsen/logrus"),
    ("example.com/ABC/v2", "example.com/!a!b!c/v2"),
]


@pytest.mark.parametrize(("p", "esc"), ESCAPES)
def test_escape_unescape_path(p: str, esc: str | None) -> None:
    want = p if esc is None else esc
    assert mp.escape_path(p) == want
    assert mp.unescape_path(want) == p


@pytest.mark.parametrize(("p", "ok", "_i", "_f"), CHECK_PATH)
def test_escape_and_unescape_refuse_invalid_paths(p: str, ok: bool, _i: bool, _f: bool) -> None:
    if ok:
        assert mp.unescape_path(mp.escape_path(p)) == p
        return
    with pytest.raises(InvalidPath):
        mp.escape_path(p)
    with pytest.raises(InvalidPath):
        mp.unescape_path(p)


@pytest.mark.parametrize(
    "bad",
    [
        "github.com/GoogleCloudPlatform/omega",  # upper case is never produced
        "github.com/!google!cloud!platform!/omega",  # "!" before "/"
        "github.com/!0google!cloud!platform/omega",  # "!" before a digit
        "github.com/!_google!cloud!platform/omega",
        "github.com/!!google!cloud!platform/omega",
        "github.com/!Google/omega",
        "github.com/google!",  # dangling "!"
        "github.com/gööle",
        "",
        "!github.com/x",  # the first element must be lower case once unescaped
    ],
)
def test_unescape_path_rejects(bad: str) -> None:
    with pytest.raises(InvalidPath) as e:
        mp.unescape_path(bad)
    assert str(e.value).startswith("invalid escaped module path ")


def test_unescape_path_message_wraps_check_path() -> None:
    with pytest.raises(InvalidPath) as e:
        mp.unescape_path("x.y/v1")
    assert str(e.value) == (
        'invalid escaped module path "x.y/v1": malformed module path "x.y/v1": invalid version'
    )


@pytest.mark.parametrize(
    ("v", "esc"),
    [
        ("v1.2.3", "v1.2.3"),
        ("v1.2.3-RC1", "v1.2.3-!r!c1"),
        ("master", "master"),
        ("Feature_Branch", "!feature_!branch"),
        ("v2.0.0+incompatible", "v2.0.0+incompatible"),
        ("latest", "latest"),
        (".hidden", ".hidden"),  # file-name rules: a leading dot is allowed
        ("a b", "a b"),
    ],
)
def test_escape_unescape_version(v: str, esc: str) -> None:
    assert mp.escape_version(v) == esc
    assert mp.unescape_version(esc) == v


@pytest.mark.parametrize(
    "v",
    ["", "v1!", "a/b", "..", "v1.", "c:x", "con", "LPT1.x", "a*b", 'a"b', "\\x", "é-but-ok-no"],
)
def test_escape_version_rejects(v: str) -> None:
    with pytest.raises(InvalidVersion):
        mp.escape_version(v)


@pytest.mark.parametrize(
    "esc",
    ["V1.0.0", "v1!", "!1", "!!a", "v1.2.3-!R", "", "a/b", "v1.", "con", "ü", "aux.txt"],
)
def test_unescape_version_rejects(esc: str) -> None:
    with pytest.raises(InvalidVersion):
        mp.unescape_version(esc)


def test_escape_version_message() -> None:
    with pytest.raises(InvalidVersion) as e:
        mp.escape_version("v1!")
    assert str(e.value) == 'version "v1!" invalid: disallowed version string'


@pytest.mark.parametrize(
    ("s", "want"),
    [
        ("abc", '"abc"'),
        ('a"b', '"a\\"b"'),
        ("a\\b", '"a\\\\b"'),
        ("a\nb\x00\x7f", '"a\\nb\\x00\\x7f"'),
        ("é☺", '"é☺"'),
        ("\u00a0", '"\\u00a0"'),
        ("\U000e0001", '"\\U000e0001"'),
    ],
)
def test_go_quote(s: str, want: str) -> None:
    assert mp.go_quote(s) == want


# --- properties -------------------------------------------------------------------------------

_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?", fullmatch=True)
_host = st.lists(_label, min_size=2, max_size=4).map(".".join)
_elem = st.from_regex(r"[A-Za-z0-9_~]([A-Za-z0-9._~-]{0,8}[A-Za-z0-9_~-])?", fullmatch=True)


@st.composite
def module_paths(draw: st.DrawFn) -> str:
    p = "/".join([draw(_host), *draw(st.lists(_elem, max_size=4))])
    if draw(st.booleans()):
        p += f"/v{draw(st.integers(min_value=2, max_value=300))}"
    return p


@given(module_paths())
def test_escape_round_trip(p: str) -> None:
    reason_free = _ok(mp.check_path, p)
    assume(reason_free)  # a few draws hit the Windows-name or tilde rules
    esc = mp.escape_path(p)
    assert not any("A" <= c <= "Z" for c in esc)
    assert esc.lower() == esc
    assert mp.unescape_path(esc) == p
    assert esc.replace("!", "") == p.lower()


@given(module_paths(), st.data())
def test_unescape_rejects_upper_case(p: str, data: st.DataObject) -> None:
    assume(_ok(mp.check_path, p))
    esc = mp.escape_path(p)
    i = data.draw(st.integers(min_value=0, max_value=len(esc)))
    letter = data.draw(st.sampled_from("ABCXYZ"))
    with pytest.raises(InvalidPath):
        mp.unescape_path(esc[:i] + letter + esc[i:])


@given(st.text(alphabet="abcXYZ09!.-_~/+", max_size=20))
def test_unescape_inverts_escape_on_any_text(s: str) -> None:
    try:
        p = mp.unescape_path(s)
    except InvalidPath:
        return
    assert mp.escape_path(p) == s


@given(st.text(alphabet="abcXYZ09!.-_~+ ", min_size=1, max_size=12))
def test_version_escape_round_trip(v: str) -> None:
    try:
        esc = mp.escape_version(v)
    except InvalidVersion:
        return
    assert mp.unescape_version(esc) == v
    assert not any("A" <= c <= "Z" for c in esc)


# -- the whole-element fast path (path._ASCII_OK) agrees with the per-character rules ---------------


def _slow_reason(elem: str, kind: str) -> str | None:
    """_check_elem's character verdict with the fast path taken away: the per-character test only."""
    for c in elem:
        if not mp._CHAR_OK[kind](c):
            return f"invalid char {mp._quote_rune(c)}"
    return None


@pytest.mark.parametrize("kind", [mp._MODULE, mp._IMPORT, mp._FILE])
def test_ascii_classes_match_the_character_tests(kind: str) -> None:
    for code in range(128):
        c = chr(code)
        assert (mp._ASCII_OK[kind](c) is not None) == mp._CHAR_OK[kind](c), (kind, c)


@given(st.sampled_from([mp._MODULE, mp._IMPORT, mp._FILE]),
       st.text(alphabet=st.characters(max_codepoint=0x2FF, exclude_categories=("Cs",)),
               min_size=1, max_size=16))
def test_fast_element_check_names_the_same_character(kind: str, elem: str) -> None:
    assume(elem.count(".") != len(elem) and elem[-1] != "." and not elem.startswith("."))
    slow = _slow_reason(elem, kind)
    fast = mp._check_elem(elem, kind)
    if slow is not None:
        assert fast == slow
    else:
        assert fast is None or "invalid char" not in fast


@given(st.lists(st.sampled_from(
    ["a", "Z", "0", ".", "..", "/", "//", "-", "~1", " ", "+", "é", "\u00ff", "!", "?", ":",
     "con", "CoM1", "lpt9", "nul.txt", "aux.", "com10", "prn/", "go.mod", "\t"]), max_size=12)
    .map("".join))
def test_file_path_fast_path_agrees_with_the_element_rules(path: str) -> None:
    """check_file_path settles plain names with two regular expressions (_FILE_PATH_PLAIN,
    _FILE_PATH_DOUBT); its verdict is always the full rules' (_check_path)."""
    assert _ok(mp.check_file_path, path) == (mp._check_path(path, mp._FILE) is None)


@pytest.mark.parametrize("path", ["con", "a/CON.txt", "x/Lpt3", "a./b", "a/..", "./a", "a//b", "/a",
                                  "a/", "...", "b/aux.c/d", "nul"])
def test_file_paths_in_doubt_are_refused_by_the_full_rules(path: str) -> None:
    assert mp._FILE_PATH_PLAIN(path) is None or mp._FILE_PATH_DOUBT(path) is not None
    assert not _ok(mp.check_file_path, path)


@pytest.mark.parametrize("path", ["a/b.go", "console/x", "com10", "LICENSE", ".github/x.yml",
                                  "a/.b", "x/con_test.go", "lpt/y"])
def test_plain_file_paths_are_accepted(path: str) -> None:
    assert _ok(mp.check_file_path, path)
