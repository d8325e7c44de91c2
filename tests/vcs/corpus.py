"""The parity corpus: local git repositories that exercise the go command's direct-mode rules.

Every repository is built with fixed author/committer dates (tests/support/gitrepos.py), pushed to a
bare repository under ``<root>/repos/github.com/acme/<name>``, and reached by both the go command and
GitSource through ``https://github.com/acme/<name>`` via a git ``insteadOf`` rewrite.

``Corpus.downloads`` lists the module@version pairs to fetch (tags, and pseudo-versions learned from
the go command's answers to ``queries``), ``queries`` the revision queries to resolve, ``modules``
the module paths whose version lists and @latest are compared.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.gitrepos import Repo, git

A = "github.com/acme"


@dataclass
class Corpus:
    root: Path
    repos: Path
    gitconfig: Path
    modules: list[str] = field(default_factory=list)  # list/latest comparisons
    downloads: list[str] = field(default_factory=list)  # "module@version" (tags and bad versions)
    queries: list[str] = field(default_factory=list)  # "module@query"
    hashes: dict[str, str] = field(default_factory=dict)  # "repo:label" -> commit


class _R(Repo):
    """Repo plus branches, annotated tags, symbolic links and raw tree tricks."""

    def tag(self, name: str, annotated: bool = False, rev: str = "HEAD") -> None:
        if annotated:
            git(self.work, "tag", "-a", "-m", f"release {name}", name, rev, when=self.clock)
        else:
            git(self.work, "tag", name, rev, when=self.clock)
        git(self.work, "push", "-q", "origin", f"refs/tags/{name}", when=self.clock)

    def branch_commit(self, branch: str, files: Mapping[str, str | bytes], base: str = "main") -> str:
        git(self.work, "checkout", "-q", "-B", branch, base)
        self.write(files)
        self.clock += 3600
        git(self.work, "add", "-A", when=self.clock)
        git(self.work, "commit", "-q", "-m", f"on {branch}", when=self.clock)
        git(self.work, "push", "-q", "origin", branch, when=self.clock)
        h = git(self.work, "rev-parse", "HEAD").strip()
        git(self.work, "checkout", "-q", "main")
        return h

    def symlink(self, name: str, target: str) -> None:
        p = self.work / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.is_symlink() or p.exists():
            p.unlink()
        os.symlink(target, p)

    def gitlink(self, path: str, commit: str) -> None:
        git(self.work, "update-index", "--add", "--cacheinfo", f"160000,{commit},{path}")


def _stamp(r: Repo, rev: str) -> str:
    """The commit time of ``rev`` as a pseudo-version timestamp."""
    return git(r.work, "log", "-1", "--date=format-local:%Y%m%d%H%M%S", "--format=%cd", rev,
               env={**os.environ, "TZ": "UTC"}).strip()


def _mod(path: str, go: str = "1.21", extra: str = "") -> str:
    return f"module {path}\n\ngo {go}\n{extra}"


def build(root: Path) -> Corpus:
    repos = root / "repos"
    gitconfig = root / "gitconfig"
    gitconfig.write_text(
        '[protocol "file"]\n\tallow = always\n'
        f'[url "{repos / "github.com"}/"]\n\tinsteadOf = https://github.com/\n'
        f'[url "{repos / "vcs.example.test"}/"]\n\tinsteadOf = https://vcs.example.test/\n')
    c = Corpus(root, repos, gitconfig)

    def new(name: str) -> _R:
        return _R(root, f"github.com/acme/{name}")

    # A: tags v0/v1, annotated tag, pre-release, incomplete and +meta tags, branches.
    r = new("basic")
    M = f"{A}/basic"
    r.write({"go.mod": _mod(M), "basic.go": "package basic\n"})
    r.commit("c1", ["v0.1.0"])
    r.write({"basic.go": "package basic\n\nconst V = 1\n"})
    c.hashes["basic:v1.0.0"] = r.commit("c2")
    r.tag("v1.0.0", annotated=True)
    r.write({"basic.go": "package basic\n\nconst V = 2\n"})
    r.commit("c3", ["v1.1.0-rc.1"])
    r.write({"basic.go": "package basic\n\nconst V = 3\n"})
    c.hashes["basic:v1.1.0"] = r.commit("c4", ["v1.1.0", "v1.2", "release-candidate"])
    c.hashes["basic:dev"] = r.branch_commit("dev", {"dev.go": "package basic\n"})
    r.write({"basic.go": "package basic\n\nconst V = 4\n"})
    c.hashes["basic:meta"] = r.commit("c5", ["v1.3.0+meta"])
    r.write({"basic.go": "package basic\n\nconst V = 5\n"})
    c.hashes["basic:head"] = r.commit("c6")
    c.modules.append(M)
    c.downloads += [f"{M}@{v}" for v in ("v0.1.0", "v1.0.0", "v1.1.0-rc.1", "v1.1.0")]
    c.downloads += [f"{M}@v1.3.0", f"{M}@v1.1.0+incompatible"]  # not tags / not allowed
    # Pseudo-versions the go command refuses (codeRepo.validatePseudoVersion).
    head, dev, v110 = c.hashes["basic:head"], c.hashes["basic:dev"], c.hashes["basic:v1.1.0"]
    c.downloads += [
        f"{M}@v0.0.0-20200101000000-{head[:12]}",  # wrong time
        f"{M}@v1.3.1-0.{_stamp(r, head)}-{head[:7]}",  # short hash too short
        f"{M}@v1.3.1-0.{_stamp(r, dev)}-{dev[:12]}",  # base v1.3.0 is not an ancestor
        f"{M}@v1.1.1-0.{_stamp(r, v110)}-{v110[:12]}",  # the commit is tagged v1.1.0 itself
        f"{M}@v1.0.1-0.{_stamp(r, head)}-{head[:12]}",  # an older base: still accepted
        f"{M}@v1.0.0-20231115000000-{head[:12]}",  # v1 without a preceding tag
    ]
    c.queries += [f"{M}@{q}" for q in (
        "v1.0.0", "v1.1.0-rc.1", "main", "dev", "v1.3.0+meta", "release-candidate",
        c.hashes["basic:head"][:7], c.hashes["basic:head"], c.hashes["basic:v1.0.0"],
        c.hashes["basic:v1.1.0"][:12], c.hashes["basic:dev"][:9], "nosuchbranch", "v9.9.9")]

    # B: /v2 at the repository root.
    r = new("major")
    M = f"{A}/major"
    r.write({"go.mod": _mod(M), "m.go": "package major\n"})
    r.commit("c1", ["v1.0.0"])
    r.write({"go.mod": _mod(M + "/v2"), "m.go": "package major\n\nconst V = 2\n"})
    r.commit("c2", ["v2.0.0"])
    r.write({"m2.go": "package major\n"})
    c.hashes["major:head"] = r.commit("c3")
    c.modules += [M, M + "/v2"]
    c.downloads += [f"{M}@v1.0.0", f"{M}/v2@v2.0.0", f"{M}/v2@v1.0.0", f"{M}@v2.0.0+incompatible"]
    c.queries += [f"{M}/v2@main", f"{M}@main", f"{M}/v2@v2.0.0", f"{M}@v1.0.0"]

    # C: /v2 in a v2/ subdirectory.
    r = new("multi")
    M = f"{A}/multi"
    r.write({"go.mod": _mod(M), "a.go": "package multi\n"})
    r.commit("c1", ["v1.0.0"])
    r.write({"v2/go.mod": _mod(M + "/v2"), "v2/a.go": "package multi\n\nconst V = 2\n"})
    r.commit("c2", ["v1.1.0", "v2.0.0"])
    r.write({"v2/b.go": "package multi\n"})
    r.commit("c3")
    c.modules += [M, M + "/v2"]
    c.downloads += [f"{M}@v1.0.0", f"{M}@v1.1.0", f"{M}/v2@v2.0.0", f"{M}@v2.0.0+incompatible"]
    c.queries += [f"{M}/v2@main", f"{M}@main", f"{M}/v2@v2.0.0"]

    # D: no go.mod anywhere: +incompatible majors; a v4/go.mod keeps v4 tags out of pseudo bases.
    r = new("legacy")
    M = f"{A}/legacy"
    r.write({"legacy.go": "package legacy\n"})
    r.commit("c1", ["v1.0.0"])
    r.write({"legacy.go": "package legacy\n\nconst V = 2\n"})
    r.commit("c2", ["v2.0.0"])
    r.write({"legacy.go": "package legacy\n\nconst V = 3\n"})
    r.commit("c3", ["v3.1.0"])
    r.write({"v4/go.mod": _mod(M + "/v4"), "v4/l.go": "package legacy\n"})
    r.commit("c4", ["v4.0.0"])
    r.write({"legacy.go": "package legacy\n\nconst V = 5\n"})
    r.commit("c5")
    c.modules += [M, M + "/v4"]
    c.downloads += [f"{M}@v1.0.0", f"{M}@v2.0.0+incompatible", f"{M}@v3.1.0+incompatible",
                    f"{M}@v4.0.0+incompatible", f"{M}/v4@v4.0.0", f"{M}@v1.0.0+incompatible"]
    c.queries += [f"{M}@main", f"{M}@v2.0.0", f"{M}@v4.0.0", f"{M}@v3.1.0+incompatible",
                  f"{M}/v4@main"]

    # E: a go.mod without /v2 and a v2 tag: no +incompatible.
    r = new("gomodv2")
    M = f"{A}/gomodv2"
    r.write({"go.mod": _mod(M), "g.go": "package gomodv2\n"})
    r.commit("c1", ["v1.0.0"])
    r.write({"g.go": "package gomodv2\n\nconst V = 2\n"})
    r.commit("c2", ["v2.0.0"])
    c.modules.append(M)
    c.downloads += [f"{M}@v1.0.0", f"{M}@v2.0.0+incompatible"]
    c.queries += [f"{M}@main", f"{M}@v2.0.0"]

    # F: modules in subdirectories with prefixed tags; the root LICENSE is copied when absent.
    r = new("mono")
    M = f"{A}/mono"
    r.write({"go.mod": _mod(M), "LICENSE": "root license\n", "root.go": "package mono\n",
             "sub/go.mod": _mod(M + "/sub"), "sub/sub.go": "package sub\n",
             "other/go.mod": _mod(M + "/other"), "other/LICENSE": "other license\n",
             "other/o.go": "package other\n"})
    r.commit("c1", ["v1.0.0", "sub/v1.0.0", "other/v0.1.0"])
    r.write({"sub/sub.go": "package sub\n\nconst V = 2\n"})
    r.commit("c2", ["sub/v1.1.0"])
    r.write({"sub/v2/go.mod": _mod(M + "/sub/v2"), "sub/v2/s.go": "package sub\n"})
    r.commit("c3", ["sub/v2.0.0"])
    r.write({"sub/sub.go": "package sub\n\nconst V = 4\n"})
    c.hashes["mono:head"] = r.commit("c4")
    c.modules += [M, M + "/sub", M + "/sub/v2", M + "/other", M + "/nope"]
    c.downloads += [f"{M}@v1.0.0", f"{M}/sub@v1.0.0", f"{M}/sub@v1.1.0", f"{M}/sub/v2@v2.0.0",
                    f"{M}/other@v0.1.0", f"{M}/sub@v1.2.0"]
    c.queries += [f"{M}/sub@main", f"{M}/sub@v1.0.0", f"{M}/sub@{c.hashes['mono:head'][:8]}",
                  f"{M}/sub/v2@main", f"{M}/other@main", f"{M}@main"]

    # G: no go.mod: a synthesized one.
    r = new("nomod")
    M = f"{A}/nomod"
    r.write({"n.go": "package nomod\n"})
    r.commit("c1", ["v0.9.0"])
    r.write({"n.go": "package nomod\n\nconst V = 1\n"})
    r.commit("c2", ["v1.0.0"])
    c.modules.append(M)
    c.downloads += [f"{M}@v0.9.0", f"{M}@v1.0.0"]

    # H: untagged repositories: pseudo-versions only.
    r = new("untagged")
    M = f"{A}/untagged"
    r.write({"go.mod": _mod(M), "u.go": "package untagged\n"})
    c.hashes["untagged:first"] = r.commit("c1")
    r.write({"u.go": "package untagged\n\nconst V = 2\n"})
    r.commit("c2")
    c.modules.append(M)
    c.queries += [f"{M}@main", f"{M}@{c.hashes['untagged:first']}"]
    r = new("untagged2")
    M = f"{A}/untagged2/v2"
    r.write({"go.mod": _mod(M), "u.go": "package untagged\n"})
    r.commit("c1")
    c.modules.append(M)
    c.queries += [f"{M}@main"]

    # I: pre-releases only, then an untagged commit.
    r = new("prerel")
    M = f"{A}/prerel"
    r.write({"go.mod": _mod(M), "p.go": "package prerel\n"})
    r.commit("c1", ["v0.1.0-alpha"])
    r.write({"p.go": "package prerel\n\nconst V = 2\n"})
    r.commit("c2", ["v0.1.0-beta.2"])
    r.write({"p.go": "package prerel\n\nconst V = 3\n"})
    r.commit("c3")
    c.modules.append(M)
    c.downloads += [f"{M}@v0.1.0-alpha", f"{M}@v0.1.0-beta.2"]
    c.queries += [f"{M}@main"]

    # J: what the zip keeps and leaves out.
    r = new("tree")
    M = f"{A}/tree"
    sub = new("treesubmodule")
    sub.write({"x": "x"})
    sub_commit = sub.commit("c1")
    files: dict[str, str | bytes] = {
        "a.go": "package tree\n",
        "dir with space/x.go": "package x\n",
        "ünïcödé.go": "package tree\n",
        "vendor/modules.txt": "# vendor\n",
        "vendor/ex.com/p/p.go": "package p\n",
        "vendor/top.go": "package vendor\n",
        "sub/vendor/x/y.go": "package y\n",
        "sub/vendor/z.go": "package vendor\n",
        "nested/go.mod": _mod(M + "/nested"),
        "nested/n.go": "package nested\n",
        "nested2/deeper/go.mod": _mod(M + "/nested2/deeper"),
        "nested2/deeper/d.go": "package deeper\n",
        "nested2/keep.go": "package nested2\n",
        "dir/f.go": "package dir\n",
        ".hg_archival.txt": "repo: x\n",
        ".gitattributes": "ignored.go export-ignore\nsubst.go export-subst\n*.txt text eol=crlf\n",
        "ignored.go": "package tree\n",
        "subst.go": "package tree\n\n// $Format:%H$\n",
        "crlf.txt": "one\ntwo\n",
        "empty.txt": "",
        "exec.sh": "#!/bin/sh\necho hi\n",
    }
    r.write({"go.mod": _mod(M), **files})
    (r.work / "exec.sh").chmod(0o755)
    r.symlink("link.go", "a.go")
    r.symlink("linkdir", "dir")
    r.symlink("escape.go", "../../../../etc/passwd")
    r.gitlink("gitlink", sub_commit)
    r.commit("c1", ["v1.0.0"])
    r.write({"go.mod": _mod(M, go="1.24")})
    r.commit("c2", ["v1.1.0"])
    c.modules.append(M)
    c.downloads += [f"{M}@v1.0.0", f"{M}@v1.1.0", f"{M}/nested@v1.0.0"]

    # K: case-fold collisions and Windows-reserved names are errors for the zip only.
    r = new("casefold")
    M = f"{A}/casefold"
    r.write({"go.mod": _mod(M), "README": "upper\n", "readme": "lower\n"})
    r.commit("c1", ["v1.0.0"])
    c.downloads.append(f"{M}@v1.0.0")
    r = new("winnames")
    M = f"{A}/winnames"
    r.write({"go.mod": _mod(M), "aux.go": "package winnames\n", "ok.go": "package winnames\n"})
    r.commit("c1", ["v1.0.0"])
    c.downloads.append(f"{M}@v1.0.0")

    # L: an oversized root LICENSE (over 16 MiB), for the module at the root and in a subdirectory.
    r = new("biglicense")
    M = f"{A}/biglicense"
    r.write({"go.mod": _mod(M), "b.go": "package big\n", "LICENSE": b"\0" * ((16 << 20) + 1),
             "sub/go.mod": _mod(M + "/sub"), "sub/s.go": "package sub\n"})
    r.commit("c1", ["v1.0.0", "sub/v1.0.0"])
    c.downloads += [f"{M}@v1.0.0", f"{M}/sub@v1.0.0"]

    # M: symbolic-link tricks: a root LICENSE that is a link; a go.mod that is a link.
    r = new("symlinks")
    M = f"{A}/symlinks"
    r.write({"go.mod": _mod(M), "s.go": "package symlinks\n",
             "sub/go.mod": _mod(M + "/sub"), "sub/s.go": "package sub\n",
             "bad/b.go": "package bad\n"})
    r.symlink("LICENSE", "/etc/passwd")
    r.symlink("bad/go.mod", "../go.mod")
    r.commit("c1", ["v1.0.0", "sub/v1.0.0", "bad/v1.0.0"])
    c.modules += [M + "/bad"]
    c.downloads += [f"{M}@v1.0.0", f"{M}/sub@v1.0.0", f"{M}/bad@v1.0.0"]

    # N: retractions: retracted tags are skipped by @latest and as pseudo-version bases.
    r = new("retract")
    M = f"{A}/retract"
    r.write({"go.mod": _mod(M), "r.go": "package retract\n"})
    r.commit("c1", ["v1.0.0"])
    r.write({"r.go": "package retract\n\nconst V = 2\n"})
    r.commit("c2", ["v1.1.0"])
    r.write({"go.mod": _mod(M, extra="\nretract (\n\tv1.1.0 // broken\n\t[v1.2.0, v1.2.0]\n)\n")})
    r.commit("c3", ["v1.2.0"])
    r.write({"r.go": "package retract\n\nconst V = 4\n"})
    r.commit("c4")
    c.modules.append(M)
    c.downloads += [f"{M}@v1.0.0", f"{M}@v1.1.0", f"{M}@v1.2.0"]
    c.queries += [f"{M}@main"]

    # O: a go.mod whose module line names another path (the go command still serves it).
    r = new("mismatch")
    M = f"{A}/mismatch"
    r.write({"go.mod": _mod("example.org/other/thing"), "m.go": "package thing\n"})
    r.commit("c1", ["v1.0.0"])
    c.downloads.append(f"{M}@v1.0.0")

    # P: a path with a .git element on any host: the go command pings https://host/team/lib.
    r = _R(root, "vcs.example.test/team/lib")
    M = "vcs.example.test/team/lib.git"
    r.write({"go.mod": _mod(M), "l.go": "package lib\n", "sub/go.mod": _mod(M + "/sub"),
             "sub/s.go": "package sub\n"})
    r.commit("c1", ["v1.0.0", "sub/v1.0.0"])
    r.write({"l.go": "package lib\n\nconst V = 2\n"})
    r.commit("c2")
    c.modules += [M, M + "/sub"]
    c.downloads += [f"{M}@v1.0.0", f"{M}/sub@v1.0.0"]
    c.queries += [f"{M}@main", f"{M}/sub@main"]

    # An unknown repository, and a module path with no repository behind it.
    c.modules += [f"{A}/doesnotexist"]
    c.downloads += [f"{A}/doesnotexist@v1.0.0"]
    return c
