"""Air-gapped sites: export a bundle from an online modvault that verifies against a checksum database,
import it into an --offline one (verified against that database's signed tree head from the bundle's
tiles), and build a program there with the go command. Tampered bundles are refused."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest

from modvault.module.dirhash import hash_zip
from tests.conftest import ModvaultFactory
from tests.e2e.test_ops_store import modvault_cli
from tests.e2e.test_sumdb_e2e import init_db
from tests.ops.depgraph import DepGraph
from tests.support.gitrepos import go_env, run_go
from tests.support.upstream_server import TestUpstreamServer

pytestmark = pytest.mark.e2e

NAME = "sum.acme.test"
GRAPH = ["github.com/acme/app@v1.0.0", "github.com/acme/base@v1.0.0", "github.com/acme/base@v1.1.0",
         "github.com/acme/lib@v1.0.0"]


def _rewrite(bundle: Path, out: Path, edit: dict[str, bytes | None]) -> None:
    """Copy a bundle, replacing (bytes) or dropping (None) the named members."""
    with tarfile.open(bundle) as src, tarfile.open(out, "w") as dst:
        for m in src:
            data = src.extractfile(m).read() if m.isfile() else b""  # type: ignore[union-attr]
            if m.name in edit:
                if edit[m.name] is None:
                    continue
                data = edit[m.name]  # type: ignore[assignment]
            m.size = len(data)
            dst.addfile(m, io.BytesIO(data))


def _tampered_zip(data: bytes, prefix: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as zin, zipfile.ZipFile(buf, "w") as zout:
        for item in zin.infolist():
            zout.writestr(item, zin.read(item))
        zout.writestr(f"{prefix}/evil.go", "package lib\n")
    return buf.getvalue()


def test_bundle_moves_to_an_offline_site_and_builds(depgraph: DepGraph,
                                                    dep_upstream: TestUpstreamServer,
                                                    modvault: ModvaultFactory, tmp_path: Path,
                                                    gohome: Path) -> None:
    # The checksum database: a modvault hosting a private one that records every acme version.
    vkey = init_db(tmp_path / "db")
    db = modvault(dep_upstream.url, "--nosumdb", "github.com/acme", data_dir=tmp_path / "db")
    sumdb = f"{vkey} {db.url}/sumdb/{NAME}"
    online = modvault(dep_upstream.url, "--sumdb", sumdb, "--sumdb-verify",
                      data_dir=tmp_path / "online")
    bundle = tmp_path / "acme.tar.gz"
    out = modvault_cli("export", "github.com/acme/app@v1.0.0", "--server", online.url, "--output",
                       str(bundle), "--data-dir", str(online.data_dir), "--json",
                       env={"MODVAULT_SUMDB": sumdb})
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert sorted(f"{i['Path']}@{i['Version']}" for i in doc["Items"]) == GRAPH
    assert doc["Sumdb"] == NAME and doc["SumdbFiles"] > 4
    for item in doc["Items"]:
        assert item["Zip"] == depgraph.sums[f"{item['Path']}@{item['Version']}"]
    online.stop()
    db.stop()

    # The air-gapped side trusts only the database's key; nothing is reachable from here.
    site = tmp_path / "site"
    out = modvault_cli("import", str(bundle), "--data-dir", str(site), "--sumdb", vkey, "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    rep = json.loads(out.stdout)
    assert sorted(rep["Added"]) == GRAPH and rep["Refused"] == []
    assert rep["VerifiedBy"].startswith(NAME)
    for key, h1 in depgraph.sums.items():
        module, version = key.split("@")
        assert hash_zip(site / module / "@v" / f"{version}.zip") == h1
    again = modvault_cli("import", str(bundle), "--data-dir", str(site), "--sumdb", vkey, "--json")
    assert again.returncode == 0 and sorted(json.loads(again.stdout)["AlreadyPresent"]) == GRAPH

    offline = modvault("off", "--offline", data_dir=site)
    consumer = depgraph.consumer(tmp_path / "consumer")
    env = go_env(gohome, GOPROXY=offline.url, GOFLAGS="-mod=mod")
    run_go(["build", "-o", str(tmp_path / "consumer-bin"), "."], cwd=consumer, env=env)
    import subprocess

    ran = subprocess.run([str(tmp_path / "consumer-bin")], capture_output=True, text=True, timeout=30)
    assert ran.stdout.strip() == "hello from app, lib on base v1.1.0"

    # A zip changed in the bundle, with the manifest rewritten to match: the database refuses it.
    lib_zip = "github.com/acme/lib/@v/v1.0.0.zip"
    with tarfile.open(bundle) as tar:
        manifest = json.loads(tar.extractfile("modvault-bundle.json").read())  # type: ignore[union-attr]
        good = tar.extractfile(lib_zip).read()  # type: ignore[union-attr]
    evil = _tampered_zip(good, "github.com/acme/lib@v1.0.0")
    evil_path = tmp_path / "evil.zip"
    evil_path.write_bytes(evil)
    for item in manifest["Modules"]:
        if item["Path"] == "github.com/acme/lib":
            item["Zip"] = hash_zip(evil_path)
    forged = tmp_path / "forged.tar"
    _rewrite(bundle, forged, {lib_zip: evil, "modvault-bundle.json": json.dumps(manifest).encode()})
    site2 = tmp_path / "site2"
    out = modvault_cli("import", str(forged), "--data-dir", str(site2), "--sumdb", vkey, "--json")
    assert out.returncode == 1
    rep = json.loads(out.stdout)
    assert len(rep["Refused"]) == 1 and rep["Refused"][0].startswith("github.com/acme/lib@v1.0.0: ")
    assert "SECURITY ERROR" in rep["Refused"][0]
    assert not (site2 / lib_zip).exists() and (site2 / "github.com/acme/app/@v/v1.0.0.zip").exists()

    # The same zip without touching the manifest: the bundle's own hashes refuse it.
    lying = tmp_path / "lying.tar"
    _rewrite(bundle, lying, {lib_zip: evil})
    out = modvault_cli("import", str(lying), "--data-dir", str(tmp_path / "site3"), "--sumdb", vkey)
    assert out.returncode == 1 and "differs from the bundle's" in out.stdout

    # A key the site does not trust: nothing verifies.
    other = init_db(tmp_path / "otherdb")
    out = modvault_cli("import", str(bundle), "--data-dir", str(tmp_path / "site4"), "--sumdb", other,
                       "--json")
    assert out.returncode == 1 and json.loads(out.stdout)["Added"] == []
    # No database configured for the bundle's records: refused unless asked not to check.
    out = modvault_cli("import", str(bundle), "--data-dir", str(tmp_path / "site5"),
                       env={"MODVAULT_SUMDB_VERIFY": "false", "MODVAULT_SUMDB": ""})
    assert out.returncode == 1 and "no checksum-database record" in out.stdout

    # A $GOMODCACHE/cache/download tree (what the go command just downloaded), hashes only.
    cache = gohome / "gopath" / "pkg" / "mod" / "cache" / "download"
    site6 = tmp_path / "site6"
    out = modvault_cli("import", str(cache), "--data-dir", str(site6), "--no-sumdb-check", "--json",
                       env={"MODVAULT_SUMDB_VERIFY": "false"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert {"github.com/acme/app@v1.0.0", "github.com/acme/base@v1.1.0"} <= set(
        json.loads(out.stdout)["Added"])


def test_import_refuses_unsafe_bundles(tmp_path: Path) -> None:
    for name in ("../escape.zip", "/abs/x.mod", ".modvault/access/compact.log"):
        bad = tmp_path / "bad.tar"
        with tarfile.open(bad, "w") as tar:
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
        out = modvault_cli("import", str(bad), "--data-dir", str(tmp_path / "site"))
        assert out.returncode == 1 and "refusing entry" in out.stderr, (name, out.stderr)
    link = tmp_path / "link.tar"
    with tarfile.open(link, "w") as tar:
        info = tarfile.TarInfo("example.com/a/@v/v1.0.0.zip")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    out = modvault_cli("import", str(link), "--data-dir", str(tmp_path / "site"))
    assert out.returncode == 1 and "not a regular file" in out.stderr
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all")
    out = modvault_cli("import", str(tmp_path / "junk.tar"), "--data-dir", str(tmp_path / "site"))
    assert out.returncode == 1 and "not a readable tar" in out.stderr
    out = modvault_cli("export", "github.com/acme/none@v1.0.0", "-o", str(tmp_path / "x.tar"),
                       "--data-dir", str(tmp_path / "site"))
    assert out.returncode == 1 and "not in the store" in out.stderr
