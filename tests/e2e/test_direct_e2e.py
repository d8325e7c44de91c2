"""Direct mode end to end: the real go command, GOPROXY=modvault, modules that exist only in git."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from modvault.sumdb.note import generate_key
from tests.conftest import ModvaultFactory
from tests.support.gitrepos import Repo, download_json, git, go_env, run_go
from tests.support.upstream_server import TestUpstreamServer

pytestmark = pytest.mark.e2e


def _repos(root: Path) -> dict[str, str]:
    """Local git repositories; returns a few commit hashes by name."""
    out: dict[str, str] = {}
    only = Repo(root, "github.com/acme/gitonly")
    only.write({"go.mod": "module github.com/acme/gitonly\n\ngo 1.21\n",
                "gitonly.go": 'package gitonly\n\nconst V = "v1.0.0"\n'})
    only.commit("v1", ["v1.0.0"])
    git(only.work, "checkout", "-q", "-b", "dev")
    only.write({"gitonly.go": 'package gitonly\n\nconst V = "dev"\n'})
    out["dev"] = only.commit("dev work")
    git(only.work, "push", "-q", "origin", "dev")
    git(only.work, "checkout", "-q", "main")

    legacy = Repo(root, "github.com/acme/legacy")
    legacy.write({"legacy.go": "package legacy\n\nconst Major = 1\n"})
    legacy.commit("v1", ["v1.0.0"])
    legacy.write({"legacy.go": "package legacy\n\nconst Major = 2\n"})
    legacy.commit("v2", ["v2.1.0"])

    mono = Repo(root, "github.com/acme/mono")
    mono.write({"LICENSE": "MIT-ish\n", "README": "root\n",
                "tools/go.mod": "module github.com/acme/mono/tools\n\ngo 1.21\n",
                "tools/tools.go": 'package tools\n\nconst Name = "tools"\n'})
    mono.commit("tools", ["tools/v0.3.0"])

    secret = Repo(root, "github.com/secret/app")
    secret.write({"go.mod": "module github.com/secret/app\n\ngo 1.21\n",
                  "app.go": "package app\n\nconst Secret = 42\n"})
    secret.commit("v1", ["v1.0.0"])
    return out


def _direct_reference(root: Path, *targets: str) -> dict[str, dict[str, object]]:
    home = root / "ref"
    home.mkdir()
    env = go_env(home, root / "repos", GOPROXY="direct")
    proc = run_go(["mod", "download", "-json", *targets], cwd=home, env=env)
    return {f"{d['Path']}@{d['Version']}": d for d in download_json(proc.stdout)}


def _git_env(root: Path) -> dict[str, str]:
    cfg = root / "modvault-gitconfig"
    cfg.write_text(f'[url "{root / "repos" / "github.com"}/"]\n\tinsteadOf = https://github.com/\n')
    return {"GIT_CONFIG_GLOBAL": str(cfg), "GIT_CONFIG_NOSYSTEM": "1"}


def test_go_gets_modules_that_exist_only_in_git(modvault: ModvaultFactory, tmp_path: Path) -> None:
    hashes = _repos(tmp_path)
    mv = modvault("direct", env=_git_env(tmp_path))
    home = tmp_path / "client"
    home.mkdir()
    env = go_env(home, GOPROXY=mv.url)

    (tmp_path / "refhome").mkdir()
    ref_env = go_env(tmp_path / "refhome", tmp_path / "repos", GOPROXY="direct")
    want = json.loads(run_go(["list", "-m", "-json", "github.com/acme/gitonly@dev"],
                             cwd=tmp_path / "refhome", env=ref_env).stdout)["Version"]
    assert want.startswith("v1.0.1-0.") and want.endswith(hashes["dev"][:12])

    got = json.loads(run_go(["list", "-m", "-json", "github.com/acme/gitonly@dev"], cwd=home,
                            env=env).stdout)
    assert got["Version"] == want
    got = json.loads(run_go(["list", "-m", "-json", f"github.com/acme/gitonly@{hashes['dev'][:8]}"],
                            cwd=home, env=env).stdout)
    assert got["Version"] == want
    versions = run_go(["list", "-m", "-versions", "github.com/acme/legacy"], cwd=home, env=env).stdout
    assert versions.split() == ["github.com/acme/legacy", "v1.0.0", "v2.1.0+incompatible"]

    targets = [f"github.com/acme/gitonly@{want}", "github.com/acme/gitonly@v1.0.0",
               "github.com/acme/legacy@v2.1.0+incompatible", "github.com/acme/mono/tools@v0.3.0"]
    reference = _direct_reference(tmp_path, *targets)
    proc = run_go(["mod", "download", "-json", *targets], cwd=home, env=env)
    for doc in download_json(proc.stdout):
        key = f"{doc['Path']}@{doc['Version']}"
        assert not doc.get("Error"), doc
        assert doc["Sum"] == reference[key]["Sum"], key
        assert doc["GoModSum"] == reference[key]["GoModSum"], key
        info = Path(str(doc["Info"])).read_bytes()
        assert info == Path(str(reference[key]["Info"])).read_bytes(), key

    app = home / "app"
    app.mkdir()
    (app / "go.mod").write_text("module example.com/app\n\ngo 1.21\n")
    (app / "main.go").write_text(
        'package main\n\nimport (\n\t"fmt"\n\n\t"github.com/acme/gitonly"\n'
        '\t"github.com/acme/legacy"\n\t"github.com/acme/mono/tools"\n)\n\n'
        "func main() { fmt.Println(gitonly.V, legacy.Major, tools.Name) }\n")
    run_go(["get", "github.com/acme/gitonly@dev", "github.com/acme/legacy@v2.1.0+incompatible",
            "github.com/acme/mono/tools@v0.3.0"], cwd=app, env=env)
    assert f"github.com/acme/gitonly {want}" in (app / "go.mod").read_text()
    run_go(["build", "-o", "app", "."], cwd=app, env=env)
    out = subprocess.run([str(app / "app")], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "dev 2 tools"
    # The artifacts are stored like any other: a second, cold client is served from the store.
    assert (mv.data_dir / "github.com/acme/mono/tools/@v/v0.3.0.zip").is_file()


def test_private_modules_never_reach_the_public_chain(modvault: ModvaultFactory,
                                                      tmp_path: Path) -> None:
    _repos(tmp_path)
    empty = tmp_path / "empty-proxy"
    empty.mkdir()
    recorder = TestUpstreamServer(empty).start()
    try:
        _, vkey = generate_key("sum.recorder.test")
        mv = modvault(f"{recorder.url},direct", "--private", "github.com/secret",
                      "--sumdb", f"{vkey} {recorder.url}/sumdb-recorder", "--sumdb-verify",
                      env=_git_env(tmp_path))
        home = tmp_path / "client"
        home.mkdir()
        env = go_env(home, GOPROXY=mv.url)
        proc = run_go(["mod", "download", "-json", "github.com/secret/app@v1.0.0"], cwd=home, env=env)
        assert download_json(proc.stdout)[0]["Version"] == "v1.0.0"
        for typo in ("github.com/secret/ap@v1.0.0", "github.com/secret/app/v2@v2.0.0",
                     "github.com/secret/app@v1.0.1"):
            proc = run_go(["mod", "download", "-json", typo], cwd=home, env=env, check=False)
            assert proc.returncode != 0
        for path in ("/github.com/secret/typo/@v/list", "/github.com/secret/app/@latest",
                     "/github.com/secret/app/@v/master.info"):
            assert httpx.get(mv.url + path, timeout=30).status_code in (200, 404)
        # A public module goes through the chain, so the recorder does see traffic.
        httpx.get(mv.url + "/github.com/acme/gitonly/@v/list", timeout=30)
        seen = list(recorder.requests)
        assert any("gitonly" in p for p in seen), seen
        assert not [p for p in seen if "secret" in p], seen
    finally:
        recorder.stop()
