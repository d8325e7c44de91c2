"""Differential: every module version the test repositories and upstream fixtures hold, asked of the
real go command through modvault and through ``GOPROXY=file://`` of the same directory (and, for the
git repositories, through modvault in direct mode and ``GOPROXY=direct``): the same successes, the same
versions, sums and .info bytes, the same failures.

The keys are each tree's versions (every .info/.mod/.zip name), the bare ``vN.x.y`` query of every
``+incompatible`` version, a version that exists nowhere, and (for the git corpus) every download
and revision query of tests/vcs/corpus.py, including the ones the go command refuses.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from modvault.module.path import unescape_path, unescape_version
from tests.conftest import Corpus as UpstreamCorpus
from tests.conftest import ModvaultFactory
from tests.support.gitrepos import GO, download_json, export_proxy, go_env, rmtree, run_go
from tests.support.upstream_server import TestUpstreamServer
from tests.vcs.corpus import Corpus as GitCorpus

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(GO is None, reason="go toolchain not on PATH")]

Doc = dict[str, object]


def tree_keys(tree: Path) -> list[str]:
    """module@version for every version file in a GOPROXY tree, plus the bare query of every
    +incompatible version and one version no tree holds."""
    keys: set[str] = set()
    modules: set[str] = set()
    for f in tree.rglob("*"):
        if f.parent.name != "@v" or f.suffix not in (".info", ".mod", ".zip"):
            continue
        module = unescape_path(str(f.parent.parent.relative_to(tree)))
        version = unescape_version(f.stem)
        modules.add(module)
        keys.add(f"{module}@{version}")
        if version.endswith("+incompatible"):
            keys.add(f"{module}@{version.removesuffix('+incompatible')}")
    keys.update(f"{m}@v1.99.0" for m in modules)
    return sorted(keys)


def go_download(home: Path, proxy: str, keys: list[str], repos: Path | None = None,
                env_extra: dict[str, str] | None = None) -> dict[str, Doc]:
    """`go mod download -json keys` in a fresh module cache: the go command's answer per key, with
    the .info bytes it stored."""
    rmtree(home)
    home.mkdir(parents=True)
    env = go_env(home, repos, GOPROXY=proxy, **(env_extra or {}))
    proc = run_go(["mod", "download", "-json", *keys], cwd=home, env=env, check=False,
                  timeout=600)
    docs = download_json(proc.stdout)
    assert len(docs) == len(keys), (proc.stdout[-2000:], proc.stderr[-2000:])
    out: dict[str, Doc] = {}
    for key, doc in zip(keys, docs, strict=True):
        if isinstance(doc.get("Info"), str):
            doc["InfoBytes"] = Path(str(doc["Info"])).read_text()
        out[key] = doc
    return out


def differences(ours: dict[str, Doc], theirs: dict[str, Doc]) -> list[str]:
    out = []
    for key, want in theirs.items():
        got = ours[key]
        if bool(got.get("Error")) != bool(want.get("Error")):
            out.append(f"{key}: ours {got.get('Error') or got.get('Version')!r}, "
                       f"reference {want.get('Error') or want.get('Version')!r}")
            continue
        for field in ("Version", "Sum", "GoModSum", "InfoBytes"):
            if got.get(field) != want.get(field):
                out.append(f"{key}: {field} ours {got.get(field)!r} reference {want.get(field)!r}")
    return out


def _assert_same(ours: dict[str, Doc], theirs: dict[str, Doc], what: str) -> None:
    diff = differences(ours, theirs)
    assert not diff, f"{len(diff)} of {len(theirs)} {what} differ:\n" + "\n".join(diff)


def test_upstream_fixture_trees(corpus: UpstreamCorpus, modvault: ModvaultFactory,
                                tmp_path: Path) -> None:
    """tests/conftest.py's two upstream trees, chained with ',' both ways."""
    keys = sorted(set(tree_keys(corpus.proxy_a)) | set(tree_keys(corpus.proxy_b)))
    a = TestUpstreamServer(corpus.proxy_a).start()
    b = TestUpstreamServer(corpus.proxy_b).start()
    try:
        mv = modvault(f"{a.url},{b.url}")
        ours = go_download(tmp_path / "ours", mv.url, keys)
        files = go_download(tmp_path / "files", f"file://{corpus.proxy_a},file://{corpus.proxy_b}",
                            keys)
    finally:
        a.stop()
        b.stop()
    _assert_same(ours, files, "module versions")
    ok = [k for k, d in files.items() if not d.get("Error")]
    failed = [k for k, d in files.items() if d.get("Error")]
    # Not vacuous: most versions download, and the bare v2.0.0 of the +incompatible module and the
    # missing version fail (the static trees hold no query answers).
    assert len(ok) >= 7 and "github.com/acme/incompat@v2.0.0" in failed, (ok, failed)


@pytest.fixture(scope="module")
def git_world(git_corpus: GitCorpus, tmp_path_factory: pytest.TempPathFactory
              ) -> tuple[GitCorpus, Path, list[str]]:
    """tests/vcs/corpus.py's repositories, and a GOPROXY tree the go command built from them in
    direct mode, holding the query answers a public proxy would give (``v2.0.0.info`` of an
    +incompatible module says ``v2.0.0+incompatible``)."""
    root = tmp_path_factory.mktemp("git-differential")
    c = git_corpus
    incompatible_queries = sorted({k.removesuffix("+incompatible")
                                   for k in c.downloads if k.endswith("+incompatible")})
    keys = sorted(set(c.downloads) | set(c.queries) | set(incompatible_queries))
    home = root / "builder"
    built = go_download(home, "direct", keys, c.repos,
                        {"GIT_CONFIG_GLOBAL": str(c.gitconfig)})
    tree = root / "tree"
    export_proxy(home / "gopath" / "pkg" / "mod", tree)
    for q in incompatible_queries:
        doc = built[q]
        if doc.get("Error"):
            continue
        info = tree / str(doc["Path"]) / "@v" / f"{q.rpartition('@')[2]}.info"
        info.write_text(str(doc["InfoBytes"]))
    rmtree(home)
    return c, tree, sorted(set(keys) | set(tree_keys(tree)))


def test_git_corpus_proxy_mode(git_world: tuple[GitCorpus, Path, list[str]],
                               modvault: ModvaultFactory, tmp_path: Path) -> None:
    _, tree, keys = git_world
    up = TestUpstreamServer(tree).start()
    try:
        mv = modvault(up.url)
        ours = go_download(tmp_path / "ours", mv.url, keys)
    finally:
        up.stop()
    files = go_download(tmp_path / "files", f"file://{tree}", keys)
    _assert_same(ours, files, "module versions")
    ok = [k for k, d in files.items() if not d.get("Error")]
    assert len(ok) >= 40, ok
    # The query answers in the tree were used: v2.0.0 of a module without go.mod.
    assert files["github.com/acme/legacy@v2.0.0"]["Version"] == "v2.0.0+incompatible"


def test_git_corpus_direct_mode(git_world: tuple[GitCorpus, Path, list[str]],
                                modvault: ModvaultFactory, tmp_path: Path) -> None:
    c, _, keys = git_world
    env = {"GIT_CONFIG_GLOBAL": str(c.gitconfig), "GIT_CONFIG_NOSYSTEM": "1"}
    mv = modvault("direct", env=env)
    ours = go_download(tmp_path / "ours", mv.url, keys)
    direct = go_download(tmp_path / "direct", "direct", keys, c.repos,
                         {"GIT_CONFIG_GLOBAL": str(c.gitconfig)})
    _assert_same(ours, direct, "module versions")
    assert direct["github.com/acme/legacy@v2.0.0"]["Version"] == "v2.0.0+incompatible"
    assert direct["github.com/acme/gomodv2@v2.0.0"].get("Error")
    assert shutil.which("git") and os.path.isdir(c.repos)
