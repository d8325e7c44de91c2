"""go.mod reading (modvault.module.modfile), cross-checked against the real golang.org/x/mod.

This file also holds the x/mod oracle shared by the module tests: a small Go program, built at test
time against the x/mod copy vendored in GOROOT, that answers the same questions with the real code.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import shutil
import subprocess
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modvault.module.errors import ModFileError
from modvault.module.modfile import (
    GoMod,
    Retraction,
    auto_quote,
    must_quote,
    parse_deprecation,
    parse_go_version,
    parse_lax,
    parse_module_path,
    parse_retractions,
    synthesize_gomod,
)
from tests.support.gitrepos import shared_gocache

GO = shutil.which("go")

# --- the x/mod oracle -------------------------------------------------------------------------

ORACLE_MAIN = r"""
// Command xmodoracle answers questions with the real golang.org/x/mod (the copy vendored in
// GOROOT), so modvault's Python port can be cross-checked. Input: a JSON array of requests on
// stdin; output: a JSON array of answers. Byte strings travel base64-encoded.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/dirhash"
	modzip "golang.org/x/mod/zip"
)

type file struct {
	Path string `json:"path"`
	Kind string `json:"kind"`
	Size int64  `json:"size"`
	Data string `json:"data"`
}

type request struct {
	Op      string `json:"op"`
	Data    string `json:"data"`
	S       string `json:"s"`
	Files   []file `json:"files"`
	Path    string `json:"path"`
	Module  string `json:"module"`
	Version string `json:"version"`
	From    int    `json:"from"`
	To      int    `json:"to"`
}

type answer map[string]any

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func unb64(s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

type fakeInfo struct {
	name string
	size int64
	mode fs.FileMode
}

func (f fakeInfo) Name() string       { return f.name }
func (f fakeInfo) Size() int64        { return f.size }
func (f fakeInfo) Mode() fs.FileMode  { return f.mode }
func (f fakeInfo) ModTime() time.Time { return time.Time{} }
func (f fakeInfo) IsDir() bool        { return f.mode.IsDir() }
func (f fakeInfo) Sys() any           { return nil }

type fakeFile struct{ f file }

func (f fakeFile) Path() string { return f.f.Path }
func (f fakeFile) Lstat() (fs.FileInfo, error) {
	mode := fs.FileMode(0o644)
	switch f.f.Kind {
	case "symlink":
		mode = fs.ModeSymlink | 0o777
	case "other":
		mode = fs.ModeNamedPipe | 0o644
	}
	return fakeInfo{name: filepath.Base(f.f.Path), size: f.f.Size, mode: mode}, nil
}
func (f fakeFile) Open() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(unb64(f.f.Data))), nil
}

func errText(err error) any {
	if err == nil {
		return nil
	}
	return err.Error()
}

func rel(p, dir string) string {
	if dir == "" {
		return p
	}
	r, err := filepath.Rel(dir, p)
	if err != nil {
		return p
	}
	return filepath.ToSlash(r)
}

func checked(cf modzip.CheckedFiles, dir string) answer {
	valid := []string{}
	for _, p := range cf.Valid {
		valid = append(valid, rel(p, dir))
	}
	errs := func(list []modzip.FileError) [][2]string {
		out := [][2]string{}
		for _, fe := range list {
			out = append(out, [2]string{rel(fe.Path, dir), fe.Err.Error()})
		}
		return out
	}
	return answer{
		"valid":     valid,
		"omitted":   errs(cf.Omitted),
		"invalid":   errs(cf.Invalid),
		"sizeError": errText(cf.SizeError),
	}
}

// fold is x/mod zip's strToFold for one rune.
func fold(r rune) rune {
	for {
		r0 := r
		r = unicode.SimpleFold(r0)
		if r <= r0 {
			break
		}
	}
	if 'A' <= r && r <= 'Z' {
		r += 'a' - 'A'
	}
	return r
}

func handle(r request) answer {
	switch r.Op {
	case "parselax":
		f, err := modfile.ParseLax("go.mod", unb64(r.Data), nil)
		if err != nil {
			return answer{"err": err.Error()}
		}
		a := answer{"err": nil, "module": nil, "deprecated": "", "go": nil}
		if f.Module != nil {
			a["module"] = b64(f.Module.Mod.Path)
			a["deprecated"] = b64(f.Module.Deprecated)
		}
		if f.Go != nil {
			a["go"] = f.Go.Version
		}
		retract := [][3]string{}
		for _, rt := range f.Retract {
			retract = append(retract, [3]string{b64(rt.Low), b64(rt.High), b64(rt.Rationale)})
		}
		a["retract"] = retract
		return a
	case "quote":
		return answer{"auto": modfile.AutoQuote(r.S), "must": modfile.MustQuote(r.S)}
	case "fold":
		folds := map[string]int{}
		for c := rune(r.From); c < rune(r.To); c++ {
			if f := fold(c); f != c {
				folds[string(rune(c))] = int(f)
			}
		}
		return answer{"folds": folds}
	case "checkfiles":
		var files []modzip.File
		for _, f := range r.Files {
			files = append(files, fakeFile{f})
		}
		cf, _ := modzip.CheckFiles(files)
		return checked(cf, "")
	case "checkdir":
		cf, _ := modzip.CheckDir(r.Path)
		return checked(cf, r.Path)
	case "createfromdir":
		tmp, err := os.CreateTemp("", "xmodoracle-*.zip")
		if err != nil {
			panic(err)
		}
		defer os.Remove(tmp.Name())
		err = modzip.CreateFromDir(tmp, module.Version{Path: r.Module, Version: r.Version}, r.Path)
		tmp.Close()
		if err != nil {
			return answer{"err": err.Error()}
		}
		h, err := dirhash.HashZip(tmp.Name(), dirhash.Hash1)
		return answer{"err": errText(err), "hash": h}
	case "hashzip":
		h, err := dirhash.HashZip(r.Path, dirhash.Hash1)
		return answer{"err": errText(err), "hash": h}
	case "checkzip":
		// What the go command does with a downloaded zip: HashZip, then Unzip (CheckZip and
		// extraction with the declared sizes enforced).
		m := module.Version{Path: r.Module, Version: r.Version}
		if _, err := dirhash.HashZip(r.Path, dirhash.Hash1); err != nil {
			return answer{"err": "hash: " + err.Error()}
		}
		if _, err := modzip.CheckZip(m, r.Path); err != nil {
			return answer{"err": "check: " + err.Error()}
		}
		dir, err := os.MkdirTemp("", "xmodoracle-unzip-")
		if err != nil {
			panic(err)
		}
		defer os.RemoveAll(dir)
		if err := modzip.Unzip(filepath.Join(dir, "x"), m, r.Path); err != nil {
			return answer{"err": "unzip: " + err.Error()}
		}
		return answer{"err": nil}
	}
	panic("unknown op " + r.Op + strings.Repeat("", 0))
}

func main() {
	var reqs []request
	if err := json.NewDecoder(os.Stdin).Decode(&reqs); err != nil {
		panic(err)
	}
	out := make([]answer, len(reqs))
	for i, r := range reqs {
		out[i] = handle(r)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		panic(err)
	}
}
"""

_ORACLE_PACKAGES = [
    "golang.org/x/mod/internal/lazyregexp",
    "golang.org/x/mod/modfile",
    "golang.org/x/mod/module",
    "golang.org/x/mod/semver",
    "golang.org/x/mod/sumdb/dirhash",
    "golang.org/x/mod/zip",
]


class XMod:
    """The built oracle: ``ask`` sends a batch of requests and returns the answers."""

    def __init__(self, exe: Path) -> None:
        self.exe = exe

    def ask(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        proc = subprocess.run(
            [str(self.exe)], input=json.dumps(requests), capture_output=True, text=True,
            timeout=240, check=False,
        )
        assert proc.returncode == 0, proc.stderr
        answers: list[dict[str, Any]] = json.loads(proc.stdout)
        return answers


_ORACLE: dict[str, XMod] = {}


def _oracle_env(home: Path) -> dict[str, str]:
    # A build cache that outlives the test run: a cold build of x/mod takes ~20 s.
    cache = shared_gocache()
    return {
        "PATH": os.environ["PATH"], "HOME": str(home), "GOCACHE": str(cache),
        "GOPATH": str(home / "gopath"), "GOENV": "off", "GOTOOLCHAIN": "local",
        "GOFLAGS": "-mod=vendor", "GOPROXY": "off", "CGO_ENABLED": "0",
    }


def xmod_oracle(tmp_path_factory: pytest.TempPathFactory) -> XMod:
    """Build (once per session) the x/mod oracle, or skip if there is no usable Go toolchain."""
    if "oracle" in _ORACLE:
        return _ORACLE["oracle"]
    if GO is None:
        pytest.skip("go toolchain not on PATH")
    goroot = subprocess.run([GO, "env", "GOROOT"], capture_output=True, text=True,
                            check=True, env={**os.environ, "GOTOOLCHAIN": "local"}).stdout.strip()
    vendor = Path(goroot) / "src" / "cmd" / "vendor"
    xmod = vendor / "golang.org" / "x" / "mod"
    lines = (vendor / "modules.txt").read_text().splitlines() if vendor.is_dir() else []
    at = next((i for i, line in enumerate(lines) if line.startswith("# golang.org/x/mod ")), None)
    if not xmod.is_dir() or at is None:
        pytest.skip("GOROOT has no vendored golang.org/x/mod")
    version = lines[at].split()[2]
    explicit = lines[at + 1]  # "## explicit; go 1.25.0": the go version x/mod needs
    go_version = explicit.rsplit(" ", 1)[-1] if "; go " in explicit else "1.23"
    work = tmp_path_factory.mktemp("xmodoracle")
    shutil.copytree(xmod, work / "vendor" / "golang.org" / "x" / "mod")
    (work / "vendor" / "modules.txt").write_text(
        f"# golang.org/x/mod {version}\n## explicit; go {go_version}\n"
        + "".join(p + "\n" for p in _ORACLE_PACKAGES))
    (work / "go.mod").write_text(
        f"module xmodoracle\n\ngo {go_version}\n\nrequire golang.org/x/mod {version}\n")
    (work / "main.go").write_text(ORACLE_MAIN)
    exe = work / "xmodoracle"
    proc = subprocess.run([GO, "build", "-o", str(exe), "."], cwd=work, env=_oracle_env(work),
                          capture_output=True, text=True, timeout=280, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"building the x/mod oracle failed:\n{proc.stderr}")
    _ORACLE["oracle"] = XMod(exe)
    return _ORACLE["oracle"]


@pytest.fixture(scope="session")
def xmod(tmp_path_factory: pytest.TempPathFactory) -> XMod:
    return xmod_oracle(tmp_path_factory)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- module path ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("module example.com/m\n", "example.com/m"),
        ("module example.com/m", "example.com/m"),  # no final newline
        ("module example.com/m // a comment\n", "example.com/m"),
        ("module example.com/m//a comment\n", "example.com/m"),
        ('module "example.com/m"\n', "example.com/m"),
        ('module "example.com/a b"\n', "example.com/a b"),
        ('module "example.com/\\u00e9"\n', "example.com/é"),
        ("\n\n  module\texample.com/m  \r\n", "example.com/m"),
        ("// header\nmodule example.com/m\n\ngo 1.21\n", "example.com/m"),
        ("go 1.21\nrequire example.com/dep v1.2.3\nmodule example.com/m\n", "example.com/m"),
        ("module (\n\texample.com/m\n)\n", "example.com/m"),
        ("module (\n\t// c\n\texample.com/m // d\n\n)\n", "example.com/m"),
        ("module example.com/m\nunknown directive here\nreplace x => y\n", "example.com/m"),
        ("module example.com/m\ntoolchain whatever\nexclude !! @@\n", "example.com/m"),
        ("module example.com/m\nfoo (\n bar\n)\n", "example.com/m"),
        ("module example.com/m\nretract [nonsense\n", "example.com/m"),  # lax: skipped
        ("module )\n", ")"),  # x/mod accepts any unquoted token
        ("module x\ufffdy\n", "x\ufffdy"),
    ],
)
def test_parse_module_path(text: str, want: str) -> None:
    assert parse_module_path(text.encode()) == want


@pytest.mark.parametrize(
    "text",
    [
        "",  # no module directive
        "go 1.21\n",
        "module\n",  # usage: module module/path
        "module a b\n",
        "module example.com/m\nmodule example.com/n\n",  # repeated module statement
        "module `example.com/m`\n",  # backquotes are reserved
        "module 'example.com/m'\n",
        'module exa"mple\n',
        'module "example.com/m\n',  # unterminated string
        'module "a\\qb"\n',  # invalid escape
        'module "a\\\'b"\n',  # \' is not valid in a double-quoted string
        "module /* c */ example.com/m\n",
        "module example.com/m /* c */\n",
        "module (\n\texample.com/m\n",  # unterminated block
        "module (\n\texample.com/m\n) x\n",  # token after the closing paren
        "module example.com/m\x00\n",
        "module example.com/m\ngo 1.21 1.22\n",  # errors in interpreted directives count
        "module example.com/m\ngo banana\n",
        "module example.com/m\nrequire example.com/d\n",
        "module example.com/m\nrequire example.com/d latest\n",
        "module example.com/m\nrequire example.com/d/v2 v1.0.0\n",
        "module example.com/m\nrequire example.com/d/v1 v1.0.0\n",
        "module example.com/m\nignore a b\n",
        "module (\n)\n",  # an empty block declares nothing
        "module ()\n",
        "\ufeffmodule example.com/m\n",  # a BOM is not an identifier character
    ],
)
def test_parse_module_path_errors(text: str) -> None:
    with pytest.raises(ModFileError):
        parse_module_path(text.encode())


def test_invalid_utf8_is_kept_as_surrogates() -> None:
    assert parse_module_path(b"module ex\xffample.com/m\n") == "ex\udcffample.com/m"
    # Inside quotes an undecodable byte becomes U+FFFD, as strconv.Unquote does.
    assert parse_module_path(b'module "ex\xffample.com/m"\n') == "ex\ufffdample.com/m"
    # \x escapes can produce any byte.
    assert parse_module_path(b'module "a\\xffb"\n') == "a\udcffb"


def test_error_messages_are_one_line_with_position() -> None:
    with pytest.raises(ModFileError) as e:
        parse_module_path(b"module example.com/m\nmodule example.com/n\ngo x y\n")
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("go.mod:2: repeated module statement")
    assert msg.endswith("(and 1 more)")
    with pytest.raises(ModFileError, match=r"^go\.mod:1:8: mod files must use // comments"):
        parse_module_path(b"module /* x */\n")


# --- deprecation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("// Deprecated: use example.com/n instead.\nmodule example.com/m\n",
         "use example.com/n instead."),
        ("module example.com/m // Deprecated: gone\n", "gone"),
        ("// Deprecated:    spaced   \nmodule example.com/m\n", "spaced"),
        ("// Deprecated: a\n// b\nmodule example.com/m\n", "a\nb"),
        ("// Intro.\n//\n// Deprecated: para\n//\n// Later.\nmodule example.com/m\n", "para"),
        ("// Deprecated: first\n//\n// Deprecated: second\nmodule example.com/m\n", "first"),
        ("// Deprecated: a\n//\nmodule example.com/m\n", "a\n"),
        ("// Deprecated: above\nmodule example.com/m // Deprecated: suffix\n", "above\nDeprecated: suffix"),
        ("//Deprecated: tight\nmodule example.com/m\n", "tight"),
        ("// Deprecated: in block\nmodule (\n\texample.com/m\n)\n", "in block"),
        ("module (\n\t// Deprecated: line\n\texample.com/m\n)\n", "line"),
        ("// Deprecated: block\nmodule (\n\t// Deprecated: line\n\texample.com/m\n)\n", "line"),
        ("// Deprecated: block\nmodule (\n\texample.com/m // Deprecated: suffix\n)\n", "suffix"),
        ("module (\n\texample.com/m\n) // Deprecated: after paren\n", None),
        ("// Deprecated: separated\n\nmodule example.com/m\n", None),  # not adjacent
        ("// deprecated: lower case\nmodule example.com/m\n", None),
        ("// Not Deprecated: mid-line\nmodule example.com/m\n", None),
        ("// Deprecated:\nmodule example.com/m\n", None),  # empty message: not deprecated
        ("module example.com/m\n// Deprecated: below\n", None),
        ("go 1.21\n", None),  # no module directive
    ],
)
def test_parse_deprecation(text: str, want: str | None) -> None:
    assert parse_deprecation(text.encode()) == want


def test_parse_deprecation_raises_on_bad_file() -> None:
    with pytest.raises(ModFileError):
        parse_deprecation(b"// Deprecated: x\nmodule (\n")


# --- retractions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("module m\nretract v1.0.0\n", [Retraction("v1.0.0", "v1.0.0", "")]),
        ("module m\nretract v1.0.0 // oops\n", [Retraction("v1.0.0", "v1.0.0", "oops")]),
        ("module m\n// Published too early.\nretract [v1.0.0, v1.9.9]\n",
         [Retraction("v1.0.0", "v1.9.9", "Published too early.")]),
        ("module m\nretract [v1.0.0,v1.1.0] // r\n", [Retraction("v1.0.0", "v1.1.0", "r")]),
        ('module m\nretract "v1.0.0"\n', [Retraction("v1.0.0", "v1.0.0", "")]),
        ("module m\nretract (\n\tv1.0.0 // one\n\t[v1.1.0, v1.2.0] // range\n)\n",
         [Retraction("v1.0.0", "v1.0.0", "one"), Retraction("v1.1.0", "v1.2.0", "range")]),
        ("module m\n// block comment\nretract (\n\tv1.0.0\n\t// own\n\tv1.1.0\n)\n",
         [Retraction("v1.0.0", "v1.0.0", "block comment"), Retraction("v1.1.0", "v1.1.0", "own")]),
        ("module m\nretract v1.0 // versions are kept as written\n",
         [Retraction("v1.0", "v1.0", "versions are kept as written")]),
        ("module m\nretract v1.0.0 extra tokens are ignored\n", [Retraction("v1.0.0", "v1.0.0", "")]),
        ("module m\nretract [v1.0.0]\nretract [v1.0.0,\nretract\nretract `v1`\n", []),  # skipped
        ("retract v1.0.0\n", [Retraction("v1.0.0", "v1.0.0", "")]),  # no module: still read
        ("module m\n", []),
    ],
)
def test_parse_retractions(text: str, want: list[Retraction]) -> None:
    assert parse_retractions(text.encode()) == want


def test_parse_lax_collects_everything() -> None:
    data = (b"// Deprecated: old\nmodule example.com/m\n\ngo 1.22rc1-x\n\n"
            b"require example.com/d v1.2\n\nretract v0.1.0 // bad\n")
    assert parse_lax(data) == GoMod(
        module="example.com/m", deprecated="old", go="1.22",
        retractions=(Retraction("v0.1.0", "v0.1.0", "bad"),),
        requires=(("example.com/d", "v1.2.0"),),  # canonicalized, as x/mod parseVersion does
    )


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("module m\ngo 1.21\n", "1.21"),
        ("module m\ngo 1.21.3\n", "1.21.3"),
        ("module m\ngo 1.21rc1\n", "1.21rc1"),
        ("module m\ngo v1.21.x\n", "1.21"),  # lax mode fixes it
        ("module m\n", None),
        ("module m\ngo 1.21\ngo 1.22\n", None),  # repeated: ParseLax fails
        ("module m\ngo 1.024\n", None),
        ("module m\ngo (\n1.21\n)\n", None),  # a go block is ignored
    ],
)
def test_parse_go_version(text: str, want: str | None) -> None:
    assert parse_go_version(text.encode()) == want


# --- quoting and synthesized go.mod files -----------------------------------------------------


@pytest.mark.parametrize(
    ("path", "want"),
    [
        ("example.com/m", b"module example.com/m\n"),
        ("github.com/Acme/Thing", b"module github.com/Acme/Thing\n"),
        ("gopkg.in/yaml.v2", b"module gopkg.in/yaml.v2\n"),
        ("", b'module ""\n'),
        ("a b", b'module "a b"\n'),
        ("a//b", b'module "a//b"\n'),
        ("a/*b", b'module "a/*b"\n'),
        ("a(b", b'module "a(b"\n'),
        (",", b"module ,\n"),  # a single punctuation character is left alone
        ('a"b', b'module "a\\"b"\n'),
        ("a\\b", b"module a\\b\n"),
        ("a\tb", b'module "a\\tb"\n'),
        ("a\x7fb", b'module "a\\x7fb"\n'),
        ("a\u2028b", b'module "a\\u2028b"\n'),
        ("é", "module é\n".encode()),
    ],
)
def test_synthesize_gomod(path: str, want: bytes) -> None:
    assert synthesize_gomod(path) == want
    if path != "(":
        assert parse_module_path(want) == path


def test_known_go_sum_hashes_of_synthesized_go_mods() -> None:
    # go.sum lines of real modules that have no go.mod file (checked against public go.sum files).
    from modvault.module.dirhash import hash_gomod

    assert hash_gomod(synthesize_gomod("golang.org/x/text")) == (
        "h1:NqM8EUOU14njkJ3fqMW+pc6Ldnwhi/IjpwHt7yyuwOQ=")  # v0.3.0/go.mod
    assert hash_gomod(synthesize_gomod("github.com/davecgh/go-spew")) == (
        "h1:J7Y8YcW2NihsgmVo/mv3lAwl/skON4iLHjSsI+c5H38=")  # v1.1.1/go.mod
    assert hash_gomod(synthesize_gomod("github.com/pmezard/go-difflib")) == (
        "h1:iKH77koFhYxTK1pcRnkKkqfTogsbg7gZNVY4sRDYZ/4=")  # v1.0.0/go.mod


def test_must_quote() -> None:
    assert not must_quote("example.com/m")
    assert must_quote("")
    assert must_quote("a'b")
    assert must_quote("a`b")
    assert must_quote("[x")
    assert not must_quote("[")
    assert auto_quote("x") == "x"


# --- properties -------------------------------------------------------------------------------

FRAGMENTS = [
    "module", "go", "retract", "require", "ignore", "toolchain", "replace", "exclude", "tool",
    " ", "\t", "\n", "\n", "\r\n", "\r", "(", ")", "[", "]", ",", "{", "}", "//", "// Deprecated: x",
    "Deprecated:", '"', "`", "'", "\\", '"a b"', '"x\\ty"', '"\\u00e9"', '"\\xff"', '"\\400"',
    "example.com/m", "example.com/m/v2", "v1.0.0", "v1.2", "v1.0.0+incompatible", "1.21", "1.24.1",
    "v1.21rc1", "1.21.0beta1", "x", "/*", "é", "\u00a0", "\x00", "\udcff", "=>", "\u2028", "\x0b",
    "\ufeff", "\U0001f600",
]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=30).map("".join))
def test_parser_only_raises_modfile_error_on_fragments(text: str) -> None:
    data = text.encode("utf-8", "surrogateescape")
    for fn in (parse_lax, parse_module_path, parse_deprecation, parse_retractions):
        try:
            fn(data)  # type: ignore[operator]
        except ModFileError as e:
            assert "\n" not in str(e)
    parse_go_version(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_parser_only_raises_modfile_error_on_bytes(data: bytes) -> None:
    with contextlib.suppress(ModFileError):
        parse_lax(data)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_parser_only_raises_modfile_error_on_text(text: str) -> None:
    with contextlib.suppress(ModFileError):
        parse_lax(text.encode())


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=30).filter(lambda s: s != "("))
def test_synthesize_then_parse_round_trips(path: str) -> None:
    # AutoQuote("(") writes "module (", which starts a block: the only string the go command
    # itself cannot round-trip.
    assert parse_module_path(synthesize_gomod(path)) == path


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=30))
def test_synthesize_then_parse_round_trips_raw_bytes(raw: bytes) -> None:
    path = raw.decode("utf-8", "surrogateescape")
    if path == "(":
        return
    assert parse_module_path(synthesize_gomod(path)) == path


# --- cross-checks with the real x/mod ---------------------------------------------------------


def _structured_gomod(rng: random.Random) -> str:
    lines: list[str] = []
    for _ in range(rng.randint(0, 8)):
        k = rng.random()
        if k < 0.2:
            lines.append("// " + rng.choice(
                ["Deprecated: use y", "hello", "", "Deprecated:", "x\n//\n// Deprecated: z"]))
        elif k < 0.3:
            lines.append("")
        elif k < 0.5:
            verb = rng.choice(["module", "retract", "require", "go", "ignore"])
            lines.append(verb + " (")
            for _ in range(rng.randint(0, 3)):
                lines.append("\t" + rng.choice(
                    ["x", '"q"', "v1.0.0", "[v1.0.0, v1.1.0]", "example.com/a v1.0.0", "// c", "",
                     "1.21"]) + rng.choice(["", " // why", " // Deprecated: b"]))
            lines.append(")" + rng.choice(["", " // after"]))
        else:
            verb = rng.choice(["module", "retract", "require", "go", "ignore", "exclude"])
            args = rng.choice(
                ["example.com/m", '"example.com/m"', "v1.0.0", "[v1.0.0, v1.2.0]",
                 "[v1.0.0,v1.2.0] extra", "example.com/a v1.2", "example.com/a/v2 v1.0.0", "1.22",
                 "1.22.0", "v1.21x", "", "a b", "`x`", '"a\\x41\\101\\u00e9"'])
            lines.append(f"{verb} {args}" + rng.choice(["", " // why", " // Deprecated: c"]))
    return "\n".join(lines) + rng.choice(["", "\n", "\r\n"])


def _as_oracle_answer(data: bytes) -> dict[str, Any]:
    try:
        m = parse_lax(data)
    except ModFileError:
        return {"err": True}

    def enc(s: str) -> str:
        return b64(s.encode("utf-8", "surrogateescape"))

    return {
        "err": False,
        "module": None if m.module is None else enc(m.module),
        "deprecated": enc(m.deprecated) if m.deprecated else "",
        "go": m.go,
        "retract": [[enc(r.low), enc(r.high), enc(r.rationale)] for r in m.retractions],
    }


def _normalize_oracle(a: dict[str, Any]) -> dict[str, Any]:
    if a["err"] is not None:
        return {"err": True}
    deprecated = a["deprecated"]
    if deprecated and base64.b64decode(deprecated) == b"":
        deprecated = ""
    return {"err": False, "module": a["module"], "deprecated": deprecated, "go": a["go"],
            "retract": a["retract"]}


def test_parse_lax_agrees_with_xmod(xmod: XMod) -> None:
    rng = random.Random(20240601)
    texts: list[bytes] = []
    for _ in range(4000):
        if rng.random() < 0.5:
            frag = "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(0, 25)))
            texts.append(frag.encode("utf-8", "surrogateescape"))
        else:
            texts.append(_structured_gomod(rng).encode())
    answers = xmod.ask([{"op": "parselax", "data": b64(t)} for t in texts])
    mismatches = [
        (t, _normalize_oracle(a), _as_oracle_answer(t))
        for t, a in zip(texts, answers, strict=True)
        if _normalize_oracle(a) != _as_oracle_answer(t)
    ]
    assert mismatches == []
    # The corpus exercises the interesting outcomes, not only errors.
    ok = [a for a in answers if a["err"] is None]
    assert sum(1 for a in ok if a["module"]) > 50
    assert sum(1 for a in ok if a["deprecated"]) > 10
    assert sum(1 for a in ok if a["retract"]) > 50


def _assigned(s: str) -> bool:
    # Characters Python's Unicode database (14.0) does not know may be assigned in Go's (17.0).
    return all(unicodedata.category(c) != "Cn" for c in s)


def test_auto_quote_agrees_with_xmod(xmod: XMod) -> None:
    rng = random.Random(7)
    alphabet = ["a", "/", " ", "(", ")", ",", "[", '"', "'", "`", "\\", "\n", "\t", "\x00", "\x7f",
                "é", "\u00a0", "\u2028", "\U0001f600", "\u0300", "/*", "//", "\ufeff", "\U000e0001"]
    strings = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 4))) for _ in range(2000)]
    strings += [chr(c) for c in range(0x3000) if not 0xD800 <= c <= 0xDFFF]
    strings = [s for s in strings if _assigned(s)]
    answers = xmod.ask([{"op": "quote", "s": s} for s in strings])
    mismatches = [(s, a) for s, a in zip(strings, answers, strict=True)
                  if (a["auto"], a["must"]) != (auto_quote(s), must_quote(s))]
    assert mismatches == []
    # And what we write, x/mod reads back.
    gomods = [synthesize_gomod(s) for s in strings if s != "("]
    read = xmod.ask([{"op": "parselax", "data": b64(g)} for g in gomods])
    assert [base64.b64decode(a["module"]).decode() for a in read] == [
        s for s in strings if s != "("]
