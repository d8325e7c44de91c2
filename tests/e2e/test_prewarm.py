"""`modvault prewarm` against a running modvault: the graph is resolved through modvault's .mod files,
every artifact is fetched once, a second run finds everything cached, failures exit non-zero."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ModvaultFactory
from tests.e2e.test_ops_store import modvault_cli
from tests.ops.depgraph import DepGraph
from tests.support.gitrepos import download_json, go_env, run_go
from tests.support.upstream_server import TestUpstreamServer

pytestmark = pytest.mark.e2e

GRAPH = ["github.com/acme/app@v1.0.0", "github.com/acme/base@v1.0.0", "github.com/acme/base@v1.1.0",
         "github.com/acme/lib@v1.0.0"]


def test_prewarm_resolves_graph_then_go_builds_offline(depgraph: DepGraph,
                                                       dep_upstream: TestUpstreamServer,
                                                       modvault: ModvaultFactory,
                                                       tmp_path: Path, gohome: Path) -> None:
    mv = modvault(dep_upstream.url)
    out = modvault_cli("prewarm", "github.com/acme/app@v1.0.0", "--server", mv.url, "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert sorted(f"{i['Path']}@{i['Version']}" for i in doc["Items"]) == GRAPH
    assert doc["Failed"] == 0 and doc["Fetched"] == 12 and doc["Cached"] == 0
    for key in GRAPH:
        assert dep_upstream.count(f"/{key.replace('@', '/@v/')}.zip") == 1
    # Everything landed in the store, byte for byte what the go command builds.
    from modvault.module.dirhash import hash_zip

    for key, h1 in depgraph.sums.items():
        module, version = key.split("@")
        assert hash_zip(mv.data_dir / module / "@v" / f"{version}.zip") == h1

    # A second run (plain lines, not a terminal) finds everything cached; MODVAULT_SERVER works.
    again = modvault_cli("prewarm", "github.com/acme/app@v1.0.0",
                         env={"MODVAULT_SERVER": mv.url})
    assert again.returncode == 0, again.stderr
    assert "0 artifacts fetched, 12 already cached" in again.stdout
    assert "[4/4]" in again.stderr

    # The prewarmed store alone serves what `go mod download all` needs: same data directory,
    # offline, no upstream.
    mv.stop()
    off = modvault("off", "--offline", data_dir=mv.data_dir)
    consumer = depgraph.consumer(tmp_path / "consumer")
    env = go_env(gohome, GOPROXY=off.url)
    proc = run_go(["mod", "download", "-json", "all"], cwd=consumer, env=env)
    docs = download_json(proc.stdout)
    assert {f"{d['Path']}@{d['Version']}" for d in docs} >= {"github.com/acme/app@v1.0.0",
                                                            "github.com/acme/base@v1.1.0"}
    assert all(not d.get("Error") for d in docs), docs


def test_prewarm_inputs_and_failures(depgraph: DepGraph, dep_upstream: TestUpstreamServer,
                                     modvault: ModvaultFactory, tmp_path: Path,
                                     gohome: Path) -> None:
    mv = modvault(dep_upstream.url)
    consumer = depgraph.consumer(tmp_path / "consumer")
    # go.mod: its requirements (and theirs).
    out = modvault_cli("prewarm", str(consumer / "go.mod"), "--server", mv.url, "--json",
                       "--jobs", "2")
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)["Items"]) == 4
    # go.sum as the go command writes it, and a go.work naming the consumer.
    env = go_env(gohome, GOPROXY=mv.url)
    run_go(["mod", "tidy"], cwd=consumer, env=env)
    out = modvault_cli("prewarm", str(consumer / "go.sum"), "--server", mv.url, "--json", "--no-deps")
    assert out.returncode == 0, out.stderr
    got = {f"{i['Path']}@{i['Version']}" for i in json.loads(out.stdout)["Items"]}
    assert "github.com/acme/app@v1.0.0" in got and "github.com/acme/base@v1.1.0" in got
    (tmp_path / "go.work").write_text("go 1.21\n\nuse (\n\t./consumer\n)\n")
    out = modvault_cli("prewarm", str(tmp_path / "go.work"), "--server", mv.url, "--json")
    assert out.returncode == 0 and len(json.loads(out.stdout)["Items"]) == 4
    # A file of lines, stdin, and a query resolved by the server.
    lines = tmp_path / "mods.txt"
    lines.write_text("# wanted\ngithub.com/acme/lib@v1.0.0\n")
    out = modvault_cli("prewarm", str(lines), "github.com/acme/base@latest", "--server", mv.url,
                       "--json", "--no-deps")
    items = json.loads(out.stdout)["Items"]
    assert {f"{i['Path']}@{i['Version']}" for i in items} == {"github.com/acme/lib@v1.0.0",
                                                              "github.com/acme/base@v1.1.0"}
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "modvault", "prewarm", "-", "--server", mv.url,
                           "--no-deps"], input="github.com/acme/base@v1.0.0\n", capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and "1 already cached" not in proc.stderr
    # Failures: named with the server's reason; exit status 1. Bad input: exit status 2.
    bad = modvault_cli("prewarm", "github.com/acme/nothere@v1.0.0", "github.com/acme/lib@v1.0.0",
                       "--server", mv.url)
    assert bad.returncode == 1
    assert "1 failed" in bad.stdout and "github.com/acme/nothere@v1.0.0: v1.0.0.mod: 404" in bad.stdout
    assert modvault_cli("prewarm", "nonsense", "--server", mv.url).returncode == 2
    assert modvault_cli("prewarm", str(tmp_path / "missing.sum"), "--server", mv.url).returncode == 2
    down = modvault_cli("prewarm", "github.com/acme/lib@v1.0.0", "--server", "http://127.0.0.1:9")
    assert down.returncode == 1 and "ConnectError" in down.stdout
