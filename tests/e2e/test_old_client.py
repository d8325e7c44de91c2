"""An old go command (Debian's Go 1.19) against modvault: the protocol has not moved under it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import Corpus, ModvaultFactory
from tests.support.gitrepos import download_json, go_env
from tests.support.upstream_server import TestUpstreamServer

pytestmark = pytest.mark.e2e

GO119 = Path("/usr/lib/go-1.19/bin/go")


@pytest.mark.skipif(not GO119.exists(), reason="Debian golang-1.19-go not installed")
def test_go_1_19_downloads_and_lists(corpus: Corpus, upstream_a: TestUpstreamServer,
                                     modvault: ModvaultFactory, gohome: Path) -> None:
    mv = modvault(upstream_a.url)
    env = go_env(gohome, GOPROXY=mv.url)
    env["PATH"] = f"{GO119.parent}:{env['PATH']}"
    env["GOROOT"] = str(GO119.parent.parent)
    proc = subprocess.run([str(GO119), "version"], env=env, capture_output=True, text=True)
    assert "go1.19" in proc.stdout
    targets = ["github.com/acme/hello@v1.1.0", "github.com/Acme/Upper@v1.0.0",
               "github.com/acme/incompat@v2.0.0+incompatible"]
    proc = subprocess.run([str(GO119), "mod", "download", "-json", *targets], cwd=gohome, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for doc in download_json(proc.stdout):
        key = f"{doc['Path']}@{doc['Version']}"
        assert doc["Sum"] == corpus.reference[key]["Sum"], key
    proc = subprocess.run([str(GO119), "list", "-m", "-versions", "github.com/acme/hello"],
                          cwd=gohome, env=env, capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["github.com/acme/hello", "v1.0.0", "v1.1.0", "v1.2.0-rc.1"]
