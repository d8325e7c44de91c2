"""The real go command against a running modvault whose upstreams are static proxies on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Corpus, ModvaultFactory
from tests.support.gitrepos import download_json, go_env, run_go
from tests.support.upstream_server import TestUpstreamServer

pytestmark = pytest.mark.e2e


def _download(gohome: Path, proxy: str, *targets: str) -> dict[str, dict[str, object]]:
    env = go_env(gohome, GOPROXY=proxy)
    proc = run_go(["mod", "download", "-json", *targets], cwd=gohome, env=env)
    docs = download_json(proc.stdout)
    return {f"{d['Path']}@{d['Version']}": d for d in docs}


def test_mod_download_matches_reference(corpus: Corpus, upstream_a: TestUpstreamServer,
                                        upstream_b: TestUpstreamServer,
                                        modvault: ModvaultFactory, gohome: Path) -> None:
    mv = modvault(f"{upstream_a.url},{upstream_b.url}")
    targets = list(corpus.reference)
    got = _download(gohome, mv.url, *targets)
    assert set(got) == set(corpus.reference)
    for key, ref in corpus.reference.items():
        doc = got[key]
        assert not doc.get("Error"), doc
        assert doc["Sum"] == ref["Sum"], key
        assert doc["GoModSum"] == ref["GoModSum"], key
        assert Path(str(doc["Zip"])).is_file()
    # The second module came through the ',' fallback: the first upstream said 404 for it.
    assert upstream_a.count("/github.com/acme/second/@v/v1.0.0.zip") == 1
    assert upstream_b.count("/github.com/acme/second/@v/v1.0.0.zip") == 1
    # Stored in the GOPROXY layout: the data directory is itself a file:// proxy.
    gohome2 = gohome.parent / "gohome2"
    gohome2.mkdir()
    again = _download(gohome2, f"file://{mv.data_dir}", "github.com/Acme/Upper@v1.0.0")
    assert again["github.com/Acme/Upper@v1.0.0"]["Sum"] == \
        corpus.reference["github.com/Acme/Upper@v1.0.0"]["Sum"]


def test_second_fetch_is_served_from_cache(corpus: Corpus, upstream_a: TestUpstreamServer,
                                           modvault: ModvaultFactory, gohome: Path) -> None:
    mv = modvault(upstream_a.url)
    _download(gohome, mv.url, "github.com/acme/hello@v1.0.0")
    first = len(upstream_a.requests)
    gohome2 = gohome.parent / "gohome2"
    gohome2.mkdir()
    got = _download(gohome2, mv.url, "github.com/acme/hello@v1.0.0")
    assert got["github.com/acme/hello@v1.0.0"]["Sum"] == \
        corpus.reference["github.com/acme/hello@v1.0.0"]["Sum"]
    assert len(upstream_a.requests) == first, upstream_a.requests[first:]


def test_list_versions_and_latest(upstream_a: TestUpstreamServer, modvault: ModvaultFactory,
                                  gohome: Path) -> None:
    mv = modvault(upstream_a.url)
    env = go_env(gohome, GOPROXY=mv.url)
    proc = run_go(["list", "-m", "-versions", "github.com/acme/hello"], cwd=gohome, env=env)
    assert proc.stdout.split() == ["github.com/acme/hello", "v1.0.0", "v1.1.0", "v1.2.0-rc.1"]
    proc = run_go(["list", "-m", "-versions", "github.com/acme/incompat"], cwd=gohome, env=env)
    assert proc.stdout.split() == ["github.com/acme/incompat", "v1.0.0", "v2.0.0+incompatible"]
    proc = run_go(["list", "-m", "-json", "github.com/acme/hello@latest"], cwd=gohome, env=env)
    assert json.loads(proc.stdout)["Version"] == "v1.1.0"


def _program(workdir: Path) -> None:
    workdir.mkdir()
    (workdir / "go.mod").write_text("module example.com/app\n\ngo 1.21\n")
    (workdir / "main.go").write_text(
        "package main\n\nimport (\n\t\"fmt\"\n\n\t\"github.com/Acme/Upper\"\n"
        "\t\"github.com/acme/hello\"\n\t\"github.com/acme/incompat\"\n"
        "\t\"github.com/acme/second\"\n)\n\n"
        "func main() { fmt.Println(hello.Greet(), upper.Name, incompat.Major, second.Where) }\n")


def test_get_and_build(upstream_a: TestUpstreamServer, upstream_b: TestUpstreamServer,
                       modvault: ModvaultFactory, gohome: Path) -> None:
    mv = modvault(f"{upstream_a.url},{upstream_b.url}")
    env = go_env(gohome, GOPROXY=mv.url)
    app = gohome / "app"
    _program(app)
    run_go(["get", "github.com/acme/hello@latest"], cwd=app, env=env)
    assert "github.com/acme/hello v1.1.0" in (app / "go.mod").read_text()
    run_go(["get", "github.com/acme/hello@v1.0.0"], cwd=app, env=env)
    assert "github.com/acme/hello v1.0.0" in (app / "go.mod").read_text()
    run_go(["get", "github.com/acme/incompat@v2.0.0+incompatible", "github.com/Acme/Upper",
            "github.com/acme/second"], cwd=app, env=env)
    gomod = (app / "go.mod").read_text()
    assert "github.com/acme/incompat v2.0.0+incompatible" in gomod
    assert "github.com/Acme/Upper v1.0.0" in gomod
    run_go(["build", "-o", "app", "."], cwd=app, env=env)
    import subprocess

    out = subprocess.run([str(app / "app")], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "hello v1.0.0 Upper 2 second upstream"
