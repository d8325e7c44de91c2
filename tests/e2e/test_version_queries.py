"""A canonical version wrong for the module path (``M@v2.0.0`` for a path without ``/v2``) is a query
for ``.info``: the real go command, through modvault, gets what it gets from ``GOPROXY=direct`` (direct
mode) and from ``GOPROXY=file://`` of the same upstream directory (proxy mode).

Two repositories: ``breaker`` has no go.mod, so its v2.0.0 tag is ``v2.0.0+incompatible``;
``pinned`` has a go.mod without ``/v2`` and a v2.0.0 tag, which the go command refuses in direct
mode, and which an upstream proxy may resolve to a pseudo-version (the tree below answers so).
"""

from __future__ import annotations

import base64
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import ModvaultFactory
from tests.support.gitrepos import GO, Repo, download_json, export_proxy, go_env, rmtree, run_go
from tests.support.upstream_server import Behaviour, TestUpstreamServer

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(GO is None, reason="go toolchain not on PATH")]

BREAKER = "github.com/acme/breaker"
PINNED = "github.com/acme/pinned"
QUERIES = [f"{BREAKER}@v2.0.0", f"{PINNED}@v2.0.0"]


@dataclass
class World:
    root: Path
    tree: Path  # the upstream GOPROXY directory, with the query answers a proxy would give
    pseudo: str  # what the tree answers for pinned@v2.0.0
    direct: dict[str, dict[str, object]]  # GOPROXY=direct go mod download -json, per query


def _download(home: Path, proxy: str, targets: list[str], repos: Path | None = None
              ) -> dict[str, dict[str, object]]:
    """`go mod download -json` in a fresh module cache: one document per target, in order."""
    rmtree(home / "gopath")
    env = go_env(home, repos, GOPROXY=proxy)
    proc = run_go(["mod", "download", "-json", *targets], cwd=home, env=env, check=False)
    docs = download_json(proc.stdout)
    assert len(docs) == len(targets), (proc.stdout, proc.stderr)
    out: dict[str, dict[str, object]] = {}
    for target, doc in zip(targets, docs, strict=True):
        if isinstance(doc.get("Info"), str):
            doc["InfoBytes"] = Path(str(doc["Info"])).read_text()
        out[target] = doc
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("queries")
    breaker = Repo(root, BREAKER)
    breaker.write({"breaker.go": "package breaker\n\nconst Major = 1\n"})
    breaker.commit("v1", ["v1.0.0"])
    breaker.write({"breaker.go": "package breaker\n\nconst Major = 2\n"})
    breaker.commit("v2", ["v2.0.0"])
    pinned = Repo(root, PINNED)
    pinned.write({"go.mod": f"module {PINNED}\n\ngo 1.21\n", "p.go": "package pinned\n"})
    pinned.commit("v1", ["v1.0.0"])
    pinned.write({"p.go": "package pinned\n\nconst V = 2\n"})
    v2 = pinned.commit("v2", ["v2.0.0"])

    home = root / "direct"
    home.mkdir()
    direct = _download(home, "direct", QUERIES, root / "repos")
    # The upstream tree: what the go command fetched, plus the query answers a proxy gives.
    built = _download(home, "direct", [f"{BREAKER}@v1.0.0", f"{BREAKER}@v2.0.0+incompatible",
                                       f"{PINNED}@v1.0.0", f"{PINNED}@{v2}"], root / "repos")
    pseudo = str(built[f"{PINNED}@{v2}"]["Version"])
    assert pseudo.startswith("v1.0.1-0.") and pseudo.endswith(v2[:12]), pseudo
    tree = root / "tree"
    export_proxy(home / "gopath" / "pkg" / "mod", tree)
    rmtree(home / "gopath")
    (tree / BREAKER / "@v" / "v2.0.0.info").write_bytes(
        (tree / BREAKER / "@v" / "v2.0.0+incompatible.info").read_bytes())
    (tree / PINNED / "@v" / "v2.0.0.info").write_bytes(
        (tree / PINNED / "@v" / f"{pseudo}.info").read_bytes())
    return World(root, tree, pseudo, direct)


def _git_env(world: World, name: str) -> dict[str, str]:
    cfg = world.root / f"{name}-gitconfig"
    cfg.write_text(f'[url "{world.root / "repos" / "github.com"}/"]\n\tinsteadOf = https://github.com/\n')
    return {"GIT_CONFIG_GLOBAL": str(cfg), "GIT_CONFIG_NOSYSTEM": "1"}


def _same(got: dict[str, object], want: dict[str, object]) -> None:
    for field in ("Version", "Sum", "GoModSum", "InfoBytes"):
        assert got.get(field) == want.get(field), (field, got, want)
    assert bool(got.get("Error")) == bool(want.get("Error")), (got, want)


def _download_both(tmp_path: Path, proxy: str, tree: Path
                   ) -> tuple[dict[str, dict[str, object]], dict[str, dict[str, object]]]:
    """QUERIES through ``proxy`` and through ``file://tree`` (the reference), asserted alike;
    returns (ours, files)."""
    (tmp_path / "a").mkdir()
    (tmp_path / "f").mkdir()
    ours = _download(tmp_path / "a", proxy, QUERIES)
    files = _download(tmp_path / "f", f"file://{tree}", QUERIES)
    for q in QUERIES:
        _same(ours[q], files[q])
    return ours, files


def _go_get(world: World, home: Path, proxy: str, *targets: str) -> tuple[int, str, str]:
    """`go get targets` in a new module: (exit status, go.mod, stderr)."""
    rmtree(home / "gopath")
    app = home / "app"
    rmtree(app)
    app.mkdir(parents=True)
    (app / "go.mod").write_text("module example.com/app\n\ngo 1.21\n")
    env = go_env(home, GOPROXY=proxy)
    proc = run_go(["get", *targets], cwd=app, env=env, check=False)
    return proc.returncode, (app / "go.mod").read_text(), proc.stderr


def test_direct_reference_is_what_the_issue_describes(world: World) -> None:
    breaker = world.direct[f"{BREAKER}@v2.0.0"]
    assert breaker["Version"] == "v2.0.0+incompatible" and not breaker.get("Error")
    pinned = world.direct[f"{PINNED}@v2.0.0"]
    assert "module contains a go.mod file, so module path must match major version" in \
        str(pinned["Error"])


def test_proxy_mode_matches_file_proxy(world: World, modvault: ModvaultFactory,
                                       tmp_path: Path) -> None:
    upstream = TestUpstreamServer(world.tree).start()
    try:
        mv = modvault(upstream.url)
        ours, files = _download_both(tmp_path, mv.url, world.tree)
        assert ours[f"{BREAKER}@v2.0.0"]["Version"] == "v2.0.0+incompatible"
        _same(ours[f"{BREAKER}@v2.0.0"], world.direct[f"{BREAKER}@v2.0.0"])
        assert ours[f"{PINNED}@v2.0.0"]["Version"] == world.pseudo
        # modvault asked its upstream (no 404 of its own), and keeps the answer as a query: a
        # second client within the TTL is served without asking again.
        info = f"/{BREAKER}/@v/v2.0.0.info"
        assert upstream.count(info) == 1
        (tmp_path / "b").mkdir()
        again = _download(tmp_path / "b", mv.url, QUERIES)
        for q in QUERIES:
            _same(again[q], files[q])
        assert upstream.count(info) == 1
        assert not (mv.data_dir / BREAKER / "@v" / "v2.0.0.info").exists()  # not an artifact
        # .mod and .zip stay strict.
        for ext in ("mod", "zip"):
            r = httpx.get(f"{mv.url}/{BREAKER}/@v/v2.0.0.{ext}", timeout=30)
            assert r.status_code == 404, (ext, r.text)
            assert "should be v0 or v1, not v2" in r.text

        home = tmp_path / "get"
        code, gomod, err = _go_get(world, home, mv.url, *QUERIES)
        ref_code, ref_gomod, ref_err = _go_get(world, home, f"file://{world.tree}", *QUERIES)
        assert (code, ref_code) == (0, 0), (err, ref_err)
        assert gomod == ref_gomod
        assert f"{BREAKER} v2.0.0+incompatible" in gomod and f"{PINNED} {world.pseudo}" in gomod
    finally:
        upstream.stop()


def test_plain_tree_without_query_answers_fails_like_file_proxy(
        world: World, modvault: ModvaultFactory, tmp_path: Path) -> None:
    """A static tree that holds only v2.0.0+incompatible: file:// fails the query, so must we."""
    plain = tmp_path / "plain"
    shutil.copytree(world.tree, plain)
    for q in QUERIES:
        (plain / q.split("@")[0] / "@v" / "v2.0.0.info").unlink()
    upstream = TestUpstreamServer(plain).start()
    try:
        mv = modvault(upstream.url)
        ours, _ = _download_both(tmp_path, mv.url, plain)
        for q in QUERIES:
            assert ours[q].get("Error")
        assert upstream.count(f"/{BREAKER}/@v/v2.0.0.info") == 1
    finally:
        upstream.stop()


def test_direct_mode_matches_go_direct(world: World, modvault: ModvaultFactory,
                                       tmp_path: Path) -> None:
    mv = modvault("direct", env=_git_env(world, "mv"))
    (tmp_path / "a").mkdir()
    ours = _download(tmp_path / "a", mv.url, QUERIES)
    for q in QUERIES:
        _same(ours[q], world.direct[q])
    # The go command's own reason travels through modvault's answer.
    reason = "module contains a go.mod file, so module path must match major version"
    assert reason in str(ours[f"{PINNED}@v2.0.0"]["Error"])
    r = httpx.get(f"{mv.url}/{BREAKER}/@v/v2.0.0.info", timeout=60)
    assert r.status_code == 200 and r.json()["Version"] == "v2.0.0+incompatible"
    r = httpx.get(f"{mv.url}/{PINNED}/@v/v2.0.0.info", timeout=60)
    assert r.status_code == 404 and reason in r.text

    home = tmp_path / "get"
    code, gomod, err = _go_get(world, home, mv.url, f"{BREAKER}@v2.0.0")
    assert code == 0, err
    ref_home = tmp_path / "ref"
    rmtree(ref_home / "gopath")
    app = ref_home / "app"
    app.mkdir(parents=True)
    (app / "go.mod").write_text("module example.com/app\n\ngo 1.21\n")
    run_go(["get", f"{BREAKER}@v2.0.0"], cwd=app,
           env=go_env(ref_home, world.root / "repos", GOPROXY="direct"))
    assert gomod == (app / "go.mod").read_text()
    assert f"{BREAKER} v2.0.0+incompatible" in gomod
    code, _, err = _go_get(world, home, mv.url, f"{PINNED}@v2.0.0")
    assert code != 0 and reason in err


def test_upstream_error_bodies_are_cleaned_and_redacted(world: World, modvault: ModvaultFactory,
                                                        tmp_path: Path) -> None:
    upstream = TestUpstreamServer(world.tree).start()
    try:
        password = "s3cret-pa55word"
        basic = base64.b64encode(f"alice:{password}".encode()).decode()
        base = upstream.url.replace("http://", f"http://alice:{password}@")
        mv = modvault(base)
        html = f"/{BREAKER}/@v/v9.0.0.info"
        upstream.behaviours[html] = Behaviour(
            status=404, headers={"Content-Type": "text/html"},
            body=b"<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><title>404</title>")
        echo = f"/{BREAKER}/@v/v8.0.0.info"
        upstream.behaviours[echo] = Behaviour(
            status=404, body=f"no such version; you sent Authorization: Basic {basic}\n".encode())
        url_echo = f"/{BREAKER}/@v/v7.0.0.info"
        upstream.behaviours[url_echo] = Behaviour(
            status=403, body=f"denied for {base}/{BREAKER}/@v/v7.0.0.info\n".encode())

        r = httpx.get(mv.url + html, timeout=30)
        assert r.status_code == 404
        assert "<" not in r.text and "DOCTYPE" not in r.text and "Not Found" in r.text, r.text
        r = httpx.get(mv.url + echo, timeout=30)
        assert r.status_code == 404 and "no such version" in r.text
        assert basic not in r.text and password not in r.text, r.text
        r = httpx.get(mv.url + url_echo, timeout=30)
        assert r.status_code >= 400 and "denied for" in r.text
        assert password not in r.text and "alice" not in r.text, r.text
        # The go command sees the clean line too, and nothing of the credential.
        (tmp_path / "g").mkdir()
        env = go_env(tmp_path / "g", GOPROXY=mv.url)
        proc = run_go(["mod", "download", "-json", f"{BREAKER}@v9.0.0", f"{BREAKER}@v8.0.0"],
                      cwd=tmp_path / "g", env=env, check=False)
        assert proc.returncode != 0
        assert "DOCTYPE" not in proc.stdout + proc.stderr
        assert basic not in proc.stdout + proc.stderr
        # The upstream really received the credential (so it had something to echo).
        assert upstream.count(echo) >= 1
        assert password not in mv.output() and basic not in mv.output()
    finally:
        upstream.stop()


def test_query_answers_are_validated(world: World, modvault: ModvaultFactory) -> None:
    """An upstream answering the v2.0.0 query with a version the path cannot hold is refused."""
    upstream = TestUpstreamServer(world.tree).start()
    try:
        mv = modvault(upstream.url, env={"MODVAULT_NEGATIVE_TTL": "0"})
        path = f"/{BREAKER}/@v/v2.0.0.info"
        for bad in ('{"Version":"v2.0.0","Time":"2023-11-14T23:13:20Z"}',  # needs +incompatible
                    '{"Version":"v2.0","Time":"2023-11-14T23:13:20Z"}',  # not canonical
                    '{"Version":"v1.0.0+incompatible"}'):  # +incompatible of v1
            upstream.behaviours[path] = Behaviour(body=bad.encode())
            r = httpx.get(mv.url + path, timeout=30)
            assert r.status_code == 502, (bad, r.status_code, r.text)
        # An exact request must get exactly its version back, as before.
        upstream.behaviours[f"/{BREAKER}/@v/v1.0.0.info"] = Behaviour(
            body=json.dumps({"Version": "v2.0.0+incompatible"}).encode())
        r = httpx.get(f"{mv.url}/{BREAKER}/@v/v1.0.0.info", timeout=30)
        assert r.status_code == 502 and "does not match requested" in r.text
    finally:
        upstream.stop()
