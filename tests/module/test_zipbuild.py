"""Building module zips (modvault.module.zipbuild): file selection rule by rule, against x/mod, and
against the real go command building zips from local git repositories."""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import stat
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from modvault.module.dirhash import hash_gomod, hash_zip
from modvault.module.errors import ZipError
from modvault.module.modfile import parse_module_path, synthesize_gomod
from modvault.module.zipbuild import (
    FileEntry,
    FileKind,
    check_files,
    create_zip,
    entries_from_archive,
    entries_from_dir,
    select_files,
    write_zip,
)
from modvault.module.zipcheck import MAX_GO_MOD, MAX_LICENSE, ZipReader, check_zip
from tests.module.test_modfile import XMod, b64, xmod_oracle

GO = shutil.which("go")
requires_go = pytest.mark.skipif(GO is None, reason="go toolchain not on PATH")

GO121 = b"module example.com/m\n\ngo 1.21\n"
GO124 = b"module example.com/m\n\ngo 1.24\n"


@pytest.fixture(scope="session")
def xmod(tmp_path_factory: pytest.TempPathFactory) -> XMod:
    return xmod_oracle(tmp_path_factory)


def f(path: str, data: bytes = b"x") -> FileEntry:
    return FileEntry.from_bytes(path, data)


def kept(entries: list[FileEntry], **kwargs: object) -> list[str]:
    return [e.path for e in select_files(entries, **kwargs).kept]  # type: ignore[arg-type]


def excluded(entries: list[FileEntry], **kwargs: object) -> dict[str, str]:
    return dict(select_files(entries, **kwargs).excluded)  # type: ignore[arg-type]


# --- selection rules --------------------------------------------------------------------------


def test_plain_module() -> None:
    entries = [f("go.mod", GO121), f("a.go"), f("sub/b.go"), f("LICENSE")]
    assert kept(entries) == ["go.mod", "a.go", "sub/b.go", "LICENSE"]


@pytest.mark.parametrize(
    ("gomod", "path", "vendored"),
    [
        (GO121, "vendor/modules.txt", False),  # kept before go 1.24
        (GO124, "vendor/modules.txt", True),
        (GO121, "vendor/a.go", False),  # files directly in vendor/ are not in a package
        (GO124, "vendor/a.go", False),
        (GO121, "vendor/example.com/x/x.go", True),
        (GO121, "vendor/x/x.go", True),
        (GO121, "sub/vendor/x/x.go", True),
        (GO124, "sub/vendor/x/x.go", True),
        (GO121, "pkg/vendor/vendor.go", True),  # golang.org/issue/37397, kept for old modules
        (GO124, "pkg/vendor/vendor.go", False),  # fixed from go 1.24
        (GO121, "vendorx/a/b.go", False),
        (GO121, "Vendor/a/b.go", False),
        (b"module m\ngo 1.24.3\n", "vendor/modules.txt", True),
        (b"module m\ngo 1.25rc1\n", "vendor/modules.txt", True),
        (b"module m\ngo 2.0\n", "vendor/modules.txt", True),
        (b"module m\ngo 2\n", "vendor/modules.txt", False),  # not a valid go directive
        (b"module m\ngo 1.23.9\n", "vendor/modules.txt", False),
        (b"module m\n", "vendor/modules.txt", False),  # no go directive: old rules
        (b"module m\ngo 1.24\nrequire x latest\n", "vendor/modules.txt", False),  # bad go.mod
    ],
)
def test_vendor_rule(gomod: bytes, path: str, vendored: bool) -> None:
    out = excluded([f("go.mod", gomod), f(path)])
    assert (out.get(path) == "file is in vendor directory") is vendored


def test_nested_modules_are_omitted() -> None:
    entries = [f("go.mod", GO121), f("a.go"), f("sub/go.mod", b"module x\n"), f("sub/x.go"),
               f("sub/deep/y.go"), f("other/GO.MOD", b"module y\n"), f("other/z.go"),
               FileEntry.special("link/go.mod", FileKind.SYMLINK),
               f("link/w.go")]
    sel = select_files(entries)
    assert [e.path for e in sel.kept] == ["go.mod", "a.go", "link/w.go"]
    assert dict(sel.excluded) == {
        "sub/go.mod": "file is in another module",
        "sub/x.go": "file is in another module",
        "sub/deep/y.go": "file is in another module",
        "other/GO.MOD": "file is in another module",
        "other/z.go": "file is in another module",
        "link/go.mod": "file is a symbolic link",  # a symlinked go.mod does not make a module
    }


def test_irregular_files_are_omitted() -> None:
    entries = [f("a.go"), FileEntry.special("l.go", FileKind.SYMLINK),
               FileEntry.special("fifo", FileKind.OTHER), FileEntry.special("d", FileKind.DIRECTORY),
               f(".hg_archival.txt"), f("sub/.hg_archival.txt")]
    sel = select_files(entries)
    assert [e.path for e in sel.kept] == ["a.go", "sub/.hg_archival.txt"]
    assert dict(sel.excluded) == {
        "l.go": "file is a symbolic link",
        "fifo": "not a regular file",
        ".hg_archival.txt": "file is inserted by 'hg archive' and is always omitted",
    }


@pytest.mark.parametrize(
    ("paths", "message"),
    [
        (["a/../b.go"], "a/../b.go: file path is not clean"),
        (["./a.go"], "file path is not clean"),
        (["a/"], "file path is not clean"),
        (["/a.go"], "/a.go: file path is not relative"),
        (["../a.go"], 'malformed file path "../a.go": invalid path element ".."'),
        (["a\\b.go"], "invalid char"),
        (["aux.go"], '"aux" disallowed as path element component on Windows'),
        (["a?.go"], "invalid char '?'"),
        ([""], 'file path is not clean'),
        (["GO.MOD"], "GO.MOD: go.mod files must have lowercase names"),
        (["a.go", "A.go"], 'A.go: case-insensitive file name collision: "a.go" and "A.go"'),
        (["x/a.go", "X/b.go"], 'case-insensitive file name collision: "x" and "X"'),
        (["a", "a/b"], 'entry "a" is both a file and a directory'),
        (["a.go", "a.go"], 'multiple entries for file "a.go"'),
        (["a.go", "b.go", "c*"], "c*: malformed"),
    ],
)
def test_invalid_files(paths: list[str], message: str) -> None:
    with pytest.raises(ZipError) as e:
        select_files([f(p) for p in paths])
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_invalid_files_are_reported_with_check_files() -> None:
    checked = check_files([f("a.go"), f("A.go"), f("b*"), f("vendor/x/y.go")])
    assert [e.path for e in checked.kept] == ["a.go"]
    assert [p for p, _ in checked.invalid] == ["A.go", "b*"]
    assert checked.excluded == [("vendor/x/y.go", "file is in vendor directory")]
    err = checked.error()
    assert err is not None
    assert str(err).endswith("(and 1 more)")


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([FileEntry("go.mod", FileKind.REGULAR, MAX_GO_MOD + 1, io.BytesIO)],
         "go.mod file too large"),
        ([FileEntry("LICENSE", FileKind.REGULAR, MAX_LICENSE + 1, io.BytesIO)],
         "LICENSE file too large"),
        ([FileEntry(f"f{i}", FileKind.REGULAR, 200 << 20, io.BytesIO) for i in range(3)],
         "module source tree too large (max size is 524288000 bytes)"),
    ],
)
def test_size_limits(entries: list[FileEntry], message: str) -> None:
    with pytest.raises(ZipError, match=message.replace("(", r"\(").replace(")", r"\)")):
        select_files(entries)


def test_sizes_at_the_limits_are_fine() -> None:
    entries = [FileEntry("go.mod", FileKind.REGULAR, MAX_GO_MOD, lambda: io.BytesIO(GO121)),
               FileEntry("LICENSE", FileKind.REGULAR, MAX_LICENSE, io.BytesIO),
               FileEntry("big", FileKind.REGULAR, (500 << 20) - MAX_GO_MOD - MAX_LICENSE,
                         io.BytesIO)]
    assert len(select_files(entries).kept) == 3


def test_root_license_is_added_when_missing() -> None:
    root_license = f("LICENSE", b"root license")
    sel = select_files([f("go.mod", GO121), f("a.go")], root_license=root_license)
    assert [e.path for e in sel.kept] == ["go.mod", "a.go", "LICENSE"]
    with sel.kept[-1].open() as fp:
        assert fp.read() == b"root license"


def test_root_license_is_not_added_when_the_module_has_one() -> None:
    root_license = f("LICENSE", b"root license")
    sel = select_files([f("LICENSE", b"own")], root_license=root_license)
    assert len(sel.kept) == 1
    with sel.kept[0].open() as fp:
        assert fp.read() == b"own"
    # Even a symbolic link named LICENSE counts (coderepo looks at names only).
    sel = select_files([FileEntry.special("LICENSE", FileKind.SYMLINK)], root_license=root_license)
    assert sel.kept == []


def test_root_license_is_checked_like_any_file() -> None:
    big = FileEntry("LICENSE", FileKind.SYMLINK, MAX_LICENSE + 1, io.BytesIO)
    with pytest.raises(ZipError, match="LICENSE file too large"):
        select_files([f("a.go")], root_license=big)


def test_directory_rules() -> None:
    entries = [
        f("go.mod", GO121), f("a.go"),
        FileEntry.special(".git", FileKind.DIRECTORY), f(".git/config"),
        f("x/.hg/store"), f("x/y.go"),
        f("sub/go.mod", b"module s\n"), f("sub/s.go"),
        FileEntry.special("lnk/go.mod", FileKind.SYMLINK), f("lnk/l.go"),
        f("vendor/.git/x.go"),  # vendor/.git is not in a vendored package: skipped as VCS
        f("vendor/p/.git/y.go"),  # vendor/p/.git is: the vendor rule comes first
        FileEntry.special("s.go", FileKind.SYMLINK),
        f(".git"),  # a file named .git (a worktree link) is an ordinary file
    ]
    sel = select_files(entries, from_directory=True)
    assert [e.path for e in sel.kept] == ["go.mod", "a.go", "x/y.go", ".git"]
    assert dict(sel.excluded) == {
        ".git": "directory is a version control repository",
        "x/.hg": "directory is a version control repository",
        "sub": "directory is in another module",
        "lnk": "directory is in another module",  # any non-directory go.mod, in a directory walk
        "vendor/.git": "directory is a version control repository",
        "vendor/p/.git": "file is in vendor directory",
        "vendor/p/.git/y.go": "file is in vendor directory",
        "s.go": "not a regular file",
    }
    # Without from_directory the same names are ordinary files, as in a git archive.
    assert "x/.hg/store" in kept([e for e in entries if e.path not in (".git", ".git/config")])


def test_entries_from_dir(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "b.go").write_bytes(b"package a\n")
    (tmp_path / "top.go").write_bytes(b"x")
    (tmp_path / "lnk").symlink_to("top.go")
    (tmp_path / "dirlink").symlink_to("a")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref")
    os.mkfifo(tmp_path / "fifo")
    entries = entries_from_dir(tmp_path)
    assert [(e.path, e.kind, e.size) for e in entries] == [
        (".git", FileKind.DIRECTORY, 0),
        ("a", FileKind.DIRECTORY, 0),
        ("a/b.go", FileKind.REGULAR, 10),
        ("dirlink", FileKind.SYMLINK, 0),
        ("fifo", FileKind.OTHER, 0),
        ("lnk", FileKind.SYMLINK, 0),
        ("top.go", FileKind.REGULAR, 1),
    ]
    with entries[2].open() as fp:
        assert fp.read() == b"package a\n"
    with pytest.raises(ZipError):
        entries[3].open()
    assert [e.path for e in entries_from_dir(tmp_path, skip_vcs_dirs=False)][:2] == [
        ".git", ".git/HEAD"]


# --- writing ----------------------------------------------------------------------------------


def test_write_zip(tmp_path: Path) -> None:
    entries = [f("z.go", b"package z\n"), f("go.mod", GO121), f("a/b.go", b"package a\n" * 100)]
    buf = io.BytesIO()
    write_zip(buf, "example.com/m", "v1.2.3", entries)
    p = tmp_path / "m.zip"
    p.write_bytes(buf.getvalue())
    with zipfile.ZipFile(p) as zf:
        infos = zf.infolist()
        assert [i.filename for i in infos] == [
            "example.com/m@v1.2.3/a/b.go", "example.com/m@v1.2.3/go.mod", "example.com/m@v1.2.3/z.go"]
        assert {i.compress_type for i in infos} == {zipfile.ZIP_DEFLATED}
        assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
        assert zf.read("example.com/m@v1.2.3/go.mod") == GO121
    summary = check_zip(p, "example.com/m", "v1.2.3")
    assert summary.gomod == GO121
    assert summary.file_count == 3
    # Deterministic: the same input gives the same bytes.
    again = io.BytesIO()
    write_zip(again, "example.com/m", "v1.2.3", list(reversed(entries)))
    assert again.getvalue() == buf.getvalue()


def test_write_zip_to_an_unseekable_stream(tmp_path: Path) -> None:
    r, w = os.pipe()
    with os.fdopen(w, "wb") as out:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            os.close(r)
            try:
                write_zip(out, "example.com/m", "v1.0.0", [f("go.mod", GO121), f("a.go")])
                out.flush()
            finally:
                os._exit(0)
    with os.fdopen(r, "rb") as inp:
        data = inp.read()
    os.waitpid(pid, 0)
    p = tmp_path / "m.zip"
    p.write_bytes(data)
    assert check_zip(p, "example.com/m", "v1.0.0").file_count == 2


def test_write_zip_refuses_files_larger_than_declared() -> None:
    liar = FileEntry("a.go", FileKind.REGULAR, 3, lambda: io.BytesIO(b"more than three"))
    with pytest.raises(ZipError, match=r'file "a\.go" is larger than declared size'):
        write_zip(io.BytesIO(), "example.com/m", "v1.0.0", [liar])


def test_write_zip_accepts_files_smaller_than_declared(tmp_path: Path) -> None:
    # As zip.Create does: only growth past the declared size is an error.
    short = FileEntry("a.go", FileKind.REGULAR, 100, lambda: io.BytesIO(b"short"))
    buf = io.BytesIO()
    write_zip(buf, "example.com/m", "v1.0.0", [short])
    p = tmp_path / "m.zip"
    p.write_bytes(buf.getvalue())
    assert check_zip(p, "example.com/m", "v1.0.0").total_size == 5


@pytest.mark.parametrize(("module", "version"), [("example.com/m", "v1.0"),
                                                 ("example.com/m/v2", "v1.0.0"), ("nodot", "v1.0.0")])
def test_write_zip_validates_module_and_version(module: str, version: str) -> None:
    with pytest.raises(ZipError):
        write_zip(io.BytesIO(), module, version, [f("a.go")])


def test_write_zip_refuses_irregular_entries() -> None:
    with pytest.raises(ZipError, match="not a regular file"):
        write_zip(io.BytesIO(), "example.com/m", "v1.0.0",
                  [FileEntry.special("l", FileKind.SYMLINK)])


def test_create_zip(tmp_path: Path) -> None:
    buf = io.BytesIO()
    sel = create_zip(buf, "example.com/m", "v1.0.0",
                     [f("go.mod", GO121), f("vendor/x/y.go"), f("a.go")])
    assert sel.excluded == [("vendor/x/y.go", "file is in vendor directory")]
    p = tmp_path / "m.zip"
    p.write_bytes(buf.getvalue())
    assert check_zip(p, "example.com/m", "v1.0.0").file_count == 2


# --- against the real x/mod -------------------------------------------------------------------

_ELEMS = ["a", "A", "b", "vendor", "Vendor", "go.mod", "GO.MOD", "Go.Mod", "LICENSE", "license",
          ".hg_archival.txt", "modules.txt", "x.go", "con", "aux.txt", "ß", "ẞ", "k", "\u212a", "K",
          ".git", "..", ".", "", "a b", "a*b", "sub", "é", "É", "ΣΑΣ", "σας", "x~1", "-x", "a."]
_GOMODS = [GO121, GO124, b"module m\n\ngo 1.24.0\n", b"module m\ngo 1.23\n", b"module m\n",
           b"garbage (\n", b"module m\ngo 1.25rc1\n", b"module m\ngo 2\n",
           b"module m\ngo 1.24\nrequire x v1\n", b"module m\ngo 1.24\nrequire x/v2 v1.0.0\n"]


def _random_files(rng: random.Random) -> list[dict[str, object]]:
    files: list[dict[str, object]] = []
    for _ in range(rng.randint(0, 12)):
        p = "/".join(rng.choice(_ELEMS) for _ in range(rng.randint(1, 4)))
        if rng.random() < 0.05:
            p = "/" + p
        if rng.random() < 0.03:
            p += "/"
        kind = rng.choice(["regular"] * 8 + ["symlink", "other"])
        size = rng.choice([0, 1, 10, 16 << 20, (16 << 20) + 1, 300 << 20])
        data = b""
        if p == "go.mod" and kind == "regular":
            data = rng.choice(_GOMODS)
            size = len(data) if rng.random() < 0.9 else (16 << 20) + 1
        files.append({"path": p, "kind": kind, "size": size, "data": b64(data)})
    if rng.random() < 0.5:
        data = rng.choice(_GOMODS)
        files.insert(0, {"path": "go.mod", "kind": "regular", "size": len(data), "data": b64(data)})
    return files


def _entry(spec: dict[str, object]) -> FileEntry:
    import base64

    kind = FileKind(spec["kind"])
    path = str(spec["path"])
    if kind is not FileKind.REGULAR:
        return FileEntry.special(path, kind)
    data = base64.b64decode(str(spec["data"]))
    return FileEntry(path, kind, int(spec["size"]), lambda: io.BytesIO(data))  # type: ignore[call-overload]


def test_check_files_agrees_with_xmod(xmod: XMod) -> None:
    rng = random.Random(99)
    cases = [_random_files(rng) for _ in range(3000)]
    answers = xmod.ask([{"op": "checkfiles", "files": c} for c in cases])
    mismatches = []
    for case, answer in zip(cases, answers, strict=True):
        checked = check_files([_entry(s) for s in case])
        ours = {"valid": [e.path for e in checked.kept],
                "omitted": [list(x) for x in checked.excluded],
                "invalid": [list(x) for x in checked.invalid],
                "sizeError": checked.size_error}
        theirs = {k: answer[k] for k in ours}
        if ours != theirs:
            mismatches.append((case, theirs, ours))
    assert mismatches == []


def _random_tree(rng: random.Random, root: Path) -> None:
    elems = ["a", "b", "vendor", "go.mod", "GO.MOD", "LICENSE", ".hg_archival.txt", "modules.txt",
             "x.go", ".git", ".hg", "sub", "é", "con"]
    root.mkdir()
    for _ in range(rng.randint(0, 10)):
        parts = [rng.choice(elems) for _ in range(rng.randint(1, 4))]
        p = root.joinpath(*parts)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            if p.exists() or p.is_symlink():
                continue
            r = rng.random()
            if r < 0.1:
                p.symlink_to("x.go")
            elif r < 0.15:
                p.mkdir()
            elif r < 0.17 and parts[-1] != "go.mod":  # Go would block reading a fifo go.mod
                os.mkfifo(p)
            elif parts[-1] == "go.mod":
                p.write_bytes(rng.choice([GO124, GO121, b"hello", b""]))
            else:
                p.write_bytes(rng.randbytes(rng.randint(0, 50)))
        except OSError:
            pass  # a file is in the way of a directory


def test_directory_mode_agrees_with_xmod(tmp_path: Path, xmod: XMod) -> None:
    rng = random.Random(5)
    roots = []
    for i in range(250):
        roots.append(tmp_path / f"t{i}")
        _random_tree(rng, roots[-1])
    answers = xmod.ask(
        [{"op": "checkdir", "path": str(r)} for r in roots]
        + [{"op": "createfromdir", "path": str(r), "module": "example.com/m", "version": "v1.0.0"}
           for r in roots])
    checks, creates = answers[: len(roots)], answers[len(roots):]
    mismatches = []
    for root, check, create in zip(roots, checks, creates, strict=True):
        checked = check_files(entries_from_dir(root), from_directory=True)
        ours = {"valid": sorted(e.path for e in checked.kept),
                "omitted": sorted(list(x) for x in checked.excluded),
                "invalid": sorted(list(x) for x in checked.invalid),
                "sizeError": checked.size_error}
        theirs = {k: sorted(check[k]) if isinstance(check[k], list) else check[k] for k in ours}
        if ours != theirs:
            mismatches.append((root.name, theirs, ours))
        err = checked.error()
        if (err is None) != (create["err"] is None):
            mismatches.append((root.name, create, str(err)))
        elif err is None:
            z = root.with_suffix(".zip")
            with open(z, "wb") as out:
                write_zip(out, "example.com/m", "v1.0.0", checked.kept)
            if hash_zip(z) != create["hash"]:
                mismatches.append((root.name, "hash"))
    assert mismatches == []


# --- against the real go command --------------------------------------------------------------


GIT_DATE = "2024-01-02T03:04:05Z"


def _git(cwd: Path, *args: str) -> str:
    env = {
        "PATH": os.environ["PATH"], "HOME": str(cwd), "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
        "GIT_AUTHOR_DATE": GIT_DATE, "GIT_COMMITTER_DATE": GIT_DATE,
    }
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          check=True)
    return proc.stdout


class Repo:
    """A git repository at ``<root>/repos/<module path>``, which the go command clones for
    ``https://<module path>`` through the sandbox's git ``insteadOf`` rule."""

    def __init__(self, root: Path, path: str) -> None:
        self.dir = root / "repos" / path
        self.dir.mkdir(parents=True)
        _git(self.dir, "init", "-q", "-b", "main")

    def write(self, files: dict[str, str | bytes]) -> None:
        for name, content in files.items():
            p = self.dir / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(content.encode() if isinstance(content, str) else content)

    def commit(self, tags: list[str]) -> None:
        _git(self.dir, "add", "-A")
        _git(self.dir, "commit", "-q", "-m", "commit")
        for tag in tags:
            _git(self.dir, "tag", tag)


def _make_writable(root: Path) -> None:
    for dirpath, dirnames, _ in os.walk(root):
        for name in dirnames:
            p = Path(dirpath) / name
            if not p.is_symlink():
                p.chmod(p.stat().st_mode | stat.S_IWUSR)


@pytest.fixture
def goroot(tmp_path: Path) -> Iterator[Path]:
    """A sandbox for the go command: its own GOPATH, caches, HOME and git configuration."""
    yield tmp_path
    _make_writable(tmp_path)  # the module cache is read-only


def _download(root: Path, target: str) -> dict[str, object]:
    """``go mod download -json target`` in direct mode against the sandbox's repositories."""
    gitconfig = root / "gitconfig"
    gitconfig.write_text(f'[url "file://{root}/repos/github.com/"]\n'
                         "\tinsteadOf = https://github.com/\n"
                         '[protocol "file"]\n\tallow = always\n')
    (root / "home").mkdir(exist_ok=True)
    (root / "cwd").mkdir(exist_ok=True)
    env = {
        "PATH": os.environ["PATH"], "HOME": str(root / "home"),
        "GIT_CONFIG_GLOBAL": str(gitconfig), "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0",
        "GOPROXY": "direct", "GOSUMDB": "off", "GONOSUMDB": "*", "GOFLAGS": "-mod=mod",
        "GOTOOLCHAIN": "local", "GOENV": "off", "GOPATH": str(root / "gopath"),
        "GOMODCACHE": str(root / "gopath" / "pkg" / "mod"), "GOCACHE": str(root / "gocache"),
        "CGO_ENABLED": "0",
    }
    assert GO is not None
    proc = subprocess.run([GO, "mod", "download", "-json", target], cwd=root / "cwd", env=env,
                          capture_output=True, text=True, timeout=240, check=False)
    doc: dict[str, object] = json.loads(proc.stdout)
    return doc


def _clone(repo: Repo, rev: str, dest: Path) -> Path:
    _git(repo.dir.parent, "clone", "-q", str(repo.dir), str(dest))
    _git(dest, "-c", "advice.detachedHead=false", "checkout", "-q", rev)
    return dest


def _git_archive(repo: Repo, rev: str, dest: Path) -> Path:
    # What cmd/go's codehost runs (export-ignore/export-subst are disabled there; none used here).
    _git(repo.dir, "-c", "core.autocrlf=input", "-c", "core.eol=lf", "archive", "--format=zip",
         "--prefix=prefix/", "-o", str(dest), rev)
    return dest


def _our_zip_hash(tmp: Path, module: str, version: str, entries: list[FileEntry],
                  **kwargs: object) -> str:
    z = tmp / f"ours-{len(list(tmp.iterdir()))}.zip"
    with open(z, "wb") as out:
        create_zip(out, module, version, entries, **kwargs)  # type: ignore[arg-type]
    h1 = hash_zip(z)
    assert check_zip(z, module, version).h1 == h1
    return h1


@requires_go
def test_go_command_zip_of_a_module_with_vendor_nested_module_and_symlink(goroot: Path) -> None:
    repo = Repo(goroot, "github.com/acme/thing")
    repo.write({
        "go.mod": "module github.com/acme/thing\n\ngo 1.21\n",
        "thing.go": "package thing\n",
        "LICENSE": "MIT License\n",
        "README.md": "# thing\n",
        "sub/inner/i.go": "package inner\n",
        "vendor/modules.txt": "# github.com/x/y v1.0.0\n",
        "vendor/v.go": "package vendor\n",
        "vendor/github.com/x/y/y.go": "package y\n",
        "pkg/vendor/vendor.go": "package vendor\n",
        "nested/go.mod": "module github.com/acme/thing/nested\n",
        "nested/n.go": "package nested\n",
        ".hg_archival.txt": "repo: x\n",
        ".hg/keep": "a committed directory named .hg is kept by the go command\n",
        "bin/data.bin": bytes(range(256)) * 64,
    })
    (repo.dir / "link.go").symlink_to("thing.go")
    repo.commit(["v1.0.0"])
    doc = _download(goroot, "github.com/acme/thing@v1.0.0")
    assert not doc.get("Error"), doc
    zip_path, mod_path = Path(str(doc["Zip"])), Path(str(doc["GoMod"]))

    # The go command's own zip: same hash, valid for check_zip.
    assert hash_zip(zip_path) == doc["Sum"]
    summary = check_zip(zip_path, "github.com/acme/thing", "v1.0.0")
    assert summary.h1 == doc["Sum"]
    assert summary.gomod == mod_path.read_bytes()
    assert hash_gomod(mod_path.read_bytes()) == doc["GoModSum"]
    with zipfile.ZipFile(zip_path) as zf:
        names = sorted(n.split("/", 3)[-1] for n in zf.namelist())
    assert names == sorted(["go.mod", "thing.go", "LICENSE", "README.md", "sub/inner/i.go",
                            "vendor/modules.txt", "vendor/v.go", ".hg/keep", "bin/data.bin"])

    # Ours, from `git archive` (the go command's own input): the same hash.
    tmp = goroot / "ours"
    tmp.mkdir()
    module, version = "github.com/acme/thing", "v1.0.0"
    archive = _git_archive(repo, "v1.0.0", goroot / "archive.zip")
    with open(archive, "rb") as fp:
        entries = entries_from_archive(ZipReader(fp))
        assert _our_zip_hash(tmp, module, version, entries) == doc["Sum"]
        without_hg = _our_zip_hash(tmp, module, version,
                                   [e for e in entries if not e.path.startswith(".hg/")])

    # Ours, from a checked-out work tree: a directory walk skips the .git directory and also
    # directories named .hg (as zip.CreateFromDir does); otherwise the same files.
    tree = _clone(repo, "v1.0.0", goroot / "checkout")
    sel = select_files(entries_from_dir(tree), from_directory=True)
    assert (".git", "directory is a version control repository") in sel.excluded
    assert (".hg", "directory is a version control repository") in sel.excluded
    assert _our_zip_hash(tmp, module, version, entries_from_dir(tree),
                         from_directory=True) == without_hg


@requires_go
def test_go_command_zip_with_go_1_24_vendor_rules(goroot: Path) -> None:
    repo = Repo(goroot, "github.com/acme/modern")
    repo.write({
        "go.mod": "module github.com/acme/modern\n\ngo 1.24\n",
        "m.go": "package modern\n",
        "vendor/modules.txt": "# nothing\n",
        "vendor/v.go": "package vendor\n",
        "pkg/vendor/vendor.go": "package vendor\n",
        "pkg/vendor/deep/d.go": "package deep\n",
    })
    repo.commit(["v1.0.0"])
    doc = _download(goroot, "github.com/acme/modern@v1.0.0")
    assert not doc.get("Error"), doc
    with zipfile.ZipFile(str(doc["Zip"])) as zf:
        names = sorted(n.split("/", 3)[-1] for n in zf.namelist())
    assert names == ["go.mod", "m.go", "pkg/vendor/vendor.go", "vendor/v.go"]
    tree = _clone(repo, "v1.0.0", goroot / "checkout")
    tmp = goroot / "ours"
    tmp.mkdir()
    assert _our_zip_hash(tmp, "github.com/acme/modern", "v1.0.0", entries_from_dir(tree),
                         from_directory=True) == doc["Sum"]


@requires_go
def test_go_command_zip_of_a_module_in_a_subdirectory(goroot: Path) -> None:
    repo = Repo(goroot, "github.com/acme/mono")
    repo.write({
        "LICENSE": "Root license\n",
        "go.mod": "module github.com/acme/mono\n\ngo 1.21\n",
        "root.go": "package mono\n",
        "sub/go.mod": "module github.com/acme/mono/sub\n\ngo 1.21\n",
        "sub/s.go": "package sub\n",
        "sub/v/vendor/x/x.go": "package x\n",
        "withlicense/go.mod": "module github.com/acme/mono/withlicense\n\ngo 1.21\n",
        "withlicense/LICENSE": "Own license\n",
        "withlicense/w.go": "package withlicense\n",
    })
    repo.commit(["sub/v1.0.0", "withlicense/v1.0.0"])
    tree = _clone(repo, "sub/v1.0.0", goroot / "checkout")
    tmp = goroot / "ours"
    tmp.mkdir()
    root_license = entries_from_dir(tree)
    (license_entry,) = [e for e in root_license if e.path == "LICENSE"]
    for sub, names in [
        ("sub", ["LICENSE", "go.mod", "s.go"]),
        ("withlicense", ["LICENSE", "go.mod", "w.go"]),
    ]:
        module = f"github.com/acme/mono/{sub}"
        doc = _download(goroot, f"{module}@v1.0.0")
        assert not doc.get("Error"), doc
        with zipfile.ZipFile(str(doc["Zip"])) as zf:
            got = sorted(n.split("/", 4)[-1] for n in zf.namelist())
            assert got == names
            if sub == "sub":
                assert zf.read(f"{module}@v1.0.0/LICENSE") == b"Root license\n"
        entries = entries_from_dir(tree / sub)
        assert _our_zip_hash(tmp, module, "v1.0.0", entries, from_directory=True,
                             root_license=license_entry) == doc["Sum"]
        archive = _git_archive(repo, f"{sub}/v1.0.0", goroot / f"{sub}.zip")
        with open(archive, "rb") as fp:
            from_archive = entries_from_archive(ZipReader(fp), subdir=sub)
            assert _our_zip_hash(tmp, module, "v1.0.0", from_archive,
                                 root_license=license_entry) == doc["Sum"]


@requires_go
def test_go_command_synthesizes_go_mod_for_a_module_without_one(goroot: Path) -> None:
    repo = Repo(goroot, "github.com/acme/legacy")
    repo.write({"legacy.go": "package legacy\n"})
    repo.commit(["v1.0.0"])
    doc = _download(goroot, "github.com/acme/legacy@v1.0.0")
    assert not doc.get("Error"), doc
    mod = Path(str(doc["GoMod"])).read_bytes()
    assert mod == synthesize_gomod("github.com/acme/legacy")
    assert parse_module_path(mod) == "github.com/acme/legacy"
    assert hash_gomod(mod) == doc["GoModSum"]
    summary = check_zip(Path(str(doc["Zip"])), "github.com/acme/legacy", "v1.0.0")
    assert (summary.has_gomod, summary.gomod, summary.file_count) == (False, None, 1)
    assert summary.h1 == doc["Sum"] == hash_zip(Path(str(doc["Zip"])))


@requires_go
@pytest.mark.parametrize(
    ("files", "go_says", "we_say"),
    [
        ({"README": "a\n", "readme": "b\n"}, "case-insensitive file name collision",
         "case-insensitive file name collision"),
        ({"con.go": "package x\n"}, "disallowed as path element", "disallowed as path element"),
        ({"a:b.go": "package x\n"}, "invalid char ':'", "invalid char ':'"),
    ],
    ids=["case collision", "windows name", "colon"],
)
def test_go_command_and_we_refuse_the_same_trees(goroot: Path, files: dict[str, str],
                                                 go_says: str, we_say: str) -> None:
    repo = Repo(goroot, "github.com/acme/bad")
    repo.write({"go.mod": "module github.com/acme/bad\n\ngo 1.21\n", **files})
    repo.commit(["v1.0.0"])
    doc = _download(goroot, "github.com/acme/bad@v1.0.0")
    assert go_says in str(doc.get("Error")), doc
    archive = _git_archive(repo, "v1.0.0", goroot / "archive.zip")
    with open(archive, "rb") as fp, pytest.raises(ZipError, match=we_say):
        select_files(entries_from_archive(ZipReader(fp)))
