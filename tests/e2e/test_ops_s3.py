"""Operator commands against the S3 store (a real SeaweedFS) while a replica serves from it:
``ls`` lists what the go command fetched, ``rm`` deletes it from the bucket and the running replica
forgets it at once, ``import`` loads a GOMODCACHE tree into the bucket, ``gc`` refuses
clearly, ``export`` writes a bundle from the bucket; the go command then downloads the imported
version through the replica."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import Corpus, ModvaultFactory
from tests.support.gitrepos import download_json, go_env, run_go
from tests.support.seaweed import SeaweedS3
from tests.support.upstream_server import TestUpstreamServer

pytestmark = pytest.mark.e2e
HELLO = "github.com/acme/hello"


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("MODVAULT_")}
    e.update(env)
    return subprocess.run([sys.executable, "-m", "modvault", *args], capture_output=True, text=True,
                          env=e, timeout=120)


def _download(home: Path, proxy: str, *targets: str) -> dict[str, dict[str, object]]:
    home.mkdir(exist_ok=True)
    proc = run_go(["mod", "download", "-json", *targets], cwd=home, env=go_env(home, GOPROXY=proxy))
    return {f"{d['Path']}@{d['Version']}": d for d in download_json(proc.stdout)}


def test_ls_rm_import_on_the_bucket(corpus: Corpus, upstream_a: TestUpstreamServer,
                                    modvault: ModvaultFactory, tmp_path: Path) -> None:
    seaweed = SeaweedS3(tmp_path / "seaweed")
    try:
        env = {**seaweed.env(prefix=f"ops-{uuid.uuid4().hex[:8]}"), "MODVAULT_SUMDB_VERIFY": "false"}
        mv = modvault(upstream_a.url, env=env)
        data = str(mv.data_dir)
        got = _download(tmp_path / "g1", mv.url, f"{HELLO}@v1.0.0", f"{HELLO}@v1.1.0")
        assert len(got) == 2

        ls = cli("ls", "--json", "--data-dir", data, env=env)
        assert ls.returncode == 0, ls.stderr
        doc = json.loads(ls.stdout)
        items = {(i["Path"], i["Version"]): i for i in doc["Items"]}
        assert set(items) == {(HELLO, "v1.0.0"), (HELLO, "v1.1.0")}
        zip_size = Path(str(got[f"{HELLO}@v1.0.0"]["Zip"])).stat().st_size
        assert items[(HELLO, "v1.0.0")]["Files"]["zip"] == zip_size
        assert not list(mv.data_dir.rglob("*.zip"))  # it all came from the bucket

        # rm deletes from the bucket; the replica (same data directory: mapped token) forgets its
        # memory copy at once, so the next request goes upstream again.
        info = f"/{HELLO}/@v/v1.0.0.info"
        assert httpx.get(mv.url + info).status_code == 200
        asked = upstream_a.count(info)
        rm = cli("rm", f"{HELLO}@v1.0.0", "--json", "--data-dir", data, env=env)
        assert rm.returncode == 0, rm.stderr
        removed = json.loads(rm.stdout)
        assert removed["Versions"] == ["v1.0.0"] and removed["Files"] == 3
        ls2 = json.loads(cli("ls", "--json", "--data-dir", data, env=env).stdout)
        assert [i["Version"] for i in ls2["Items"]] == ["v1.1.0"]
        assert httpx.get(mv.url + info).status_code == 200
        assert upstream_a.count(info) == asked + 1
        assert "not in the store" in cli("rm", "example.com/none", "--data-dir", data, env=env).stderr

        # gc and export say plainly that they need the filesystem store.
        gc = cli("gc", "--max-bytes", "1", "--data-dir", data, env=env)
        assert gc.returncode == 1 and "filesystem store only" in gc.stderr

        # import: the go command's own cache (another version, fetched straight from upstream),
        # into the bucket; the replica then serves it without asking upstream.
        version = "v1.2.0-rc.1"
        other = tmp_path / "g2"
        _download(other, upstream_a.url, f"{HELLO}@{version}")
        cache = next(p for p in other.rglob("download") if p.parent.name == "cache")
        imp = cli("import", str(cache), "--json", "--no-sumdb-check", "--data-dir", data, env=env)
        assert imp.returncode == 0, imp.stderr
        assert f"{HELLO}@{version}" in json.loads(imp.stdout)["Added"]
        ls3 = json.loads(cli("ls", "--json", "--data-dir", data, env=env).stdout)
        assert version in [i["Version"] for i in ls3["Items"]]
        zip_path = f"/{HELLO}/@v/{version}.zip"
        before = upstream_a.count(zip_path)
        got3 = _download(tmp_path / "g3", mv.url, f"{HELLO}@{version}")
        assert got3[f"{HELLO}@{version}"]["Sum"] == corpus.reference[f"{HELLO}@{version}"]["Sum"]
        assert upstream_a.count(zip_path) == before  # served from the imported copy

        # export from the bucket, then import the bundle into a fresh filesystem store.
        bundle = tmp_path / "hello.tar"
        exp = cli("export", f"{HELLO}@v1.1.0", "-o", str(bundle), "--json", "--data-dir", data, env=env)
        assert exp.returncode == 0, exp.stderr
        assert [i["Version"] for i in json.loads(exp.stdout)["Items"]] == ["v1.1.0"]
        site = tmp_path / "site"
        back = cli("import", str(bundle), "--json", "--no-sumdb-check", "--data-dir", str(site),
                   env={"MODVAULT_SUMDB_VERIFY": "false"})
        assert back.returncode == 0, back.stderr
        assert json.loads(back.stdout)["Added"] == [f"{HELLO}@v1.1.0"]
        zip_in_site = site / HELLO / "@v" / "v1.1.0.zip"
        assert zip_in_site.read_bytes() == Path(str(got[f"{HELLO}@v1.1.0"]["Zip"])).read_bytes()
        assert not list((mv.data_dir / ".modvault").rglob("export-*"))  # staging cleaned up
    finally:
        seaweed.stop()
