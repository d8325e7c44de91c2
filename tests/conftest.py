"""Shared fixtures: a corpus of real modules built by the real go command from local git repos, a
static upstream proxy serving them, and modvault server processes."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.ops.depgraph import DepGraph, build_depgraph
from tests.support.gitrepos import (
    GO,
    Repo,
    download_json,
    export_proxy,
    go_env,
    rmtree,
    run_go,
)
from tests.support.modvault_proc import ModvaultProcess
from tests.support.upstream_server import TestUpstreamServer, serve_tree
from tests.vcs.corpus import Corpus as GitCorpus
from tests.vcs.corpus import build as build_git_corpus

# The Python processes tests start (modvault servers and their workers, CLI runs: hundreds a run) keep
# their bytecode under one temp directory. Where PYTHONDONTWRITEBYTECODE is set, as on these machines,
# each of them would otherwise compile modvault's sources again (~0.13 s of CPU an import of the CLI).
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
os.environ.setdefault("PYTHONPYCACHEPREFIX",
                      str(Path(tempfile.gettempdir()) / f"modvault-test-pycache-{os.getuid()}"))

requires_go = pytest.mark.skipif(GO is None, reason="go toolchain not on PATH")


def _hello(version: str) -> dict[str, str]:
    return {
        "go.mod": "module github.com/acme/hello\n\ngo 1.21\n",
        "hello.go": f'package hello\n\nfunc Greet() string {{ return "hello {version}" }}\n',
    }


@dataclass
class Corpus:
    root: Path
    proxy_a: Path  # static GOPROXY tree served as the first upstream
    proxy_b: Path  # second upstream: holds only github.com/acme/second
    reference: dict[str, dict[str, object]]  # "module@version" -> go mod download -json (direct)

    def env(self, base: Path, **extra: str) -> dict[str, str]:
        return go_env(base, **extra)


REFERENCE_DOWNLOADS = [
    "github.com/acme/hello@v1.0.0",
    "github.com/acme/hello@v1.1.0",
    "github.com/acme/hello@v1.2.0-rc.1",
    "github.com/Acme/Upper@v1.0.0",
    "github.com/acme/incompat@v1.0.0",
    "github.com/acme/incompat@v2.0.0+incompatible",
    "github.com/acme/second@v1.0.0",
]


def build_corpus(root: Path) -> Corpus:
    hello = Repo(root, "github.com/acme/hello")
    hello.write(_hello("v1.0.0"))
    hello.commit("v1.0.0", ["v1.0.0"])
    hello.write(_hello("v1.1.0"))
    hello.commit("v1.1.0", ["v1.1.0"])
    hello.write(_hello("v1.2.0-rc.1"))
    hello.commit("v1.2.0-rc.1", ["v1.2.0-rc.1"])

    upper = Repo(root, "github.com/Acme/Upper")
    upper.write({"go.mod": "module github.com/Acme/Upper\n\ngo 1.21\n",
                 "upper.go": 'package upper\n\nconst Name = "Upper"\n'})
    upper.commit("v1.0.0", ["v1.0.0"])

    incompat = Repo(root, "github.com/acme/incompat")
    incompat.write({"incompat.go": "package incompat\n\nconst Major = 1\n"})
    incompat.commit("v1", ["v1.0.0"])
    incompat.write({"incompat.go": "package incompat\n\nconst Major = 2\n"})
    incompat.commit("v2", ["v2.0.0"])

    second = Repo(root, "github.com/acme/second")
    second.write({"go.mod": "module github.com/acme/second\n\ngo 1.21\n",
                  "second.go": 'package second\n\nconst Where = "second upstream"\n'})
    second.commit("v1.0.0", ["v1.0.0"])

    gohome = root / "ref"
    gohome.mkdir()
    env = go_env(gohome, root / "repos", GOPROXY="direct")
    proc = run_go(["mod", "download", "-json", *REFERENCE_DOWNLOADS], cwd=gohome, env=env)
    reference = {f"{d['Path']}@{d['Version']}": d for d in download_json(proc.stdout)}
    for key, doc in reference.items():
        assert not doc.get("Error"), (key, doc)
    cache = gohome / "gopath" / "pkg" / "mod"
    full = root / "proxy-full"
    export_proxy(cache, full)
    proxy_a, proxy_b = root / "proxy-a", root / "proxy-b"
    shutil.copytree(full, proxy_a)
    (proxy_b / "github.com" / "acme").mkdir(parents=True)
    shutil.move(str(proxy_a / "github.com" / "acme" / "second"),
                str(proxy_b / "github.com" / "acme" / "second"))
    rmtree(cache)
    return Corpus(root, proxy_a, proxy_b, reference)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    if GO is None:
        pytest.skip("go toolchain not on PATH")
    return build_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture
def upstream_a(corpus: Corpus) -> Iterator[TestUpstreamServer]:
    yield from serve_tree(corpus.proxy_a)


@pytest.fixture
def upstream_b(corpus: Corpus) -> Iterator[TestUpstreamServer]:
    yield from serve_tree(corpus.proxy_b)


@pytest.fixture(scope="session")
def depgraph(tmp_path_factory: pytest.TempPathFactory) -> DepGraph:
    """The small requirement graph of tests/ops/depgraph.py, built once (tests only read it)."""
    if GO is None:
        pytest.skip("go toolchain not on PATH")
    return build_depgraph(tmp_path_factory.mktemp("depgraph"))


@pytest.fixture(scope="session")
def git_corpus(tmp_path_factory: pytest.TempPathFactory) -> GitCorpus:
    """tests/vcs/corpus.py's git repositories, built once (tests only read them)."""
    if shutil.which("git") is None:
        pytest.skip("git not on PATH")
    return build_git_corpus(tmp_path_factory.mktemp("vcs-corpus"))


@pytest.fixture
def dep_upstream(depgraph: DepGraph) -> Iterator[TestUpstreamServer]:
    yield from serve_tree(depgraph.proxy)


class ModvaultFactory:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.procs: list[ModvaultProcess] = []
        self.n = 0

    def __call__(self, upstream: str, *args: str, data_dir: Path | None = None,
                 **kwargs: object) -> ModvaultProcess:
        self.n += 1
        if data_dir is None:
            data_dir = self.base / f"data{self.n}"
        proc = ModvaultProcess(data_dir, upstream, *args, **kwargs)  # type: ignore[arg-type]
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for p in self.procs:
            p.stop()


@pytest.fixture
def modvault(tmp_path: Path) -> Iterator[ModvaultFactory]:
    factory = ModvaultFactory(tmp_path)
    yield factory
    factory.close()


@pytest.fixture
def gohome(tmp_path: Path) -> Iterator[Path]:
    """A fresh GOPATH/GOMODCACHE per test, so the go command always asks the proxy."""
    home = tmp_path / "gohome"
    home.mkdir()
    yield home
    rmtree(home / "gopath")


@pytest.fixture
def gitenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated git configuration whose insteadOf points github.com at local repositories
    (``<tmp_path>/repos``, where tests.support.gitrepos.Repo puts them); tmp_path is returned."""
    cfg = tmp_path / "gitconfig"
    repos = tmp_path / "repos"
    cfg.write_text('[protocol "file"]\n\tallow = always\n'
                   f'[url "{repos / "github.com"}/"]\n\tinsteadOf = https://github.com/\n')
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(cfg))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    return tmp_path
