"""Supply chain end to end: the real go command fetches module graphs through modvault; modvault's
SBOMs list exactly what `go list -m all` lists and validate with the official tools; every zip's
provenance attestation verifies with securesystemslib, and a one-byte change does not."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from securesystemslib.exceptions import VerificationError

from tests.conftest import Corpus, ModvaultFactory
from tests.e2e.supply_graphs import LICENCES, P, build_graphs
from tests.supply.independent import cyclonedx_errors, spdx_errors, verify_dsse
from tests.support.gitrepos import download_json, git, go_env, run_go
from tests.support.modvault_proc import ModvaultProcess
from tests.support.upstream_server import TestUpstreamServer

pytestmark = pytest.mark.e2e


def _git_env(root: Path) -> dict[str, str]:
    cfg = root / "modvault-gitconfig"
    cfg.write_text(f'[url "{root / "repos" / "github.com"}/"]\n\tinsteadOf = https://github.com/\n')
    return {"GIT_CONFIG_GLOBAL": str(cfg), "GIT_CONFIG_NOSYSTEM": "1"}


def client_env(home: Path, **extra: str) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    return go_env(home, **extra)


def attest_init(data_dir: Path) -> bytes:
    proc = subprocess.run([sys.executable, "-m", "modvault", "attest", "init", "--data-dir",
                           str(data_dir)], capture_output=True, check=True)
    assert proc.stdout.startswith(b"-----BEGIN PUBLIC KEY-----")
    return proc.stdout


def sbom_cli(server: str, target: str, fmt: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "modvault", "sbom", target, "--format", fmt,
                           "--server", server], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc


def go_list_all(workdir: Path, env: dict[str, str]) -> dict[str, str]:
    """`go list -m all`: path -> "version" or "version => replacement"."""
    out = run_go(["list", "-m", "all"], cwd=workdir, env=env).stdout
    mods = {}
    for line in out.splitlines():
        path, _, rest = line.partition(" ")
        mods[path] = rest
    return mods


def spdx_modules(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in doc["packages"]}


def cdx_modules(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    mods = {c["name"]: c for c in doc["components"]}
    root = doc["metadata"]["component"]
    mods[root["name"]] = root
    return mods


def osv_dir(root: Path) -> Path:
    """A small OSV export: one advisory on github.com/sb/c before v1.3.0."""
    d = root / "osv"
    d.mkdir()
    (d / "GO-2099-0001.json").write_text(json.dumps({
        "schema_version": "1.6.0", "id": "GO-2099-0001", "summary": "c leaks secrets",
        "affected": [{"package": {"ecosystem": "Go", "name": f"{P}/c"},
                      "ranges": [{"type": "SEMVER",
                                  "events": [{"introduced": "0"}, {"fixed": "1.3.0"}]}]}]}))
    return d


@pytest.fixture
def graph_server(tmp_path: Path, modvault: ModvaultFactory) -> tuple[Any, ModvaultProcess, bytes]:
    graphs = build_graphs(tmp_path)
    data = tmp_path / "data"
    pem = attest_init(data)
    env = _git_env(tmp_path) | {"MODVAULT_OSV_DIR": str(osv_dir(tmp_path))}
    mv = modvault("direct", data_dir=data, env=env)
    return graphs, mv, pem


def test_sbom_module_set_equals_go_list_m_all(graph_server: tuple[Any, ModvaultProcess, bytes],
                                              tmp_path: Path) -> None:
    graphs, mv, _ = graph_server
    seen_licences: dict[str, str] = {}
    for scenario, gomod in graphs.mains.items():
        work = tmp_path / "mains" / scenario
        work.mkdir(parents=True)
        (work / "go.mod").write_text(gomod)
        env = client_env(tmp_path / "client" / scenario, GOPROXY=mv.url)
        want = go_list_all(work, env)
        assert want.pop("example.com/app") == ""
        # Each scenario exercises its rule (as the go command applied it).
        expect = {"diamond": {f"{P}/c": "v1.3.0", f"{P}/d": "v0.1.0"},
                  "exclude": {f"{P}/c": "v1.2.0", f"{P}/e": "v1.0.0"},
                  "replace": {f"{P}/a": f"v1.0.0 => {P}/fork v1.5.0", f"{P}/e": "v1.0.0"},
                  "incompatible": {f"{P}/inc": "v2.0.0+incompatible"},
                  "pruned": {f"{P}/q": "v1.0.0"}}[scenario]
        assert {k: want.get(k) for k in expect} == expect, (scenario, want)
        assert f"{P}/z" not in want and (scenario != "exclude" or f"{P}/d" not in want)

        spdx = sbom_cli(mv.url, str(work / "go.mod"), "spdx-json")
        assert spdx_errors(spdx, tmp_path) == [], scenario
        cdx = sbom_cli(mv.url, str(work / "go.mod"), "cyclonedx-json")
        assert cyclonedx_errors(cdx) == [], scenario

        # The imported advisory shows where the affected version is in the graph.
        vulns = [(v["id"], [a["ref"] for a in v["affects"]]) for v in cdx.get("vulnerabilities", [])]
        if want.get(f"{P}/c", "v1.3.0") != "v1.3.0":
            assert vulns == [("GO-2099-0001", [f"pkg:golang/{P}/c@{want[f'{P}/c']}"])], scenario
        else:
            assert vulns == [], scenario
        got_spdx = spdx_modules(spdx)
        got_cdx = cdx_modules(cdx)
        assert set(got_spdx) == set(want) | {"example.com/app"}, scenario
        assert set(got_cdx) == set(got_spdx), scenario
        for path, listed in want.items():
            version, _, replacement = listed.partition(" => ")
            pkg, comp = got_spdx[path], got_cdx[path]
            assert pkg["versionInfo"] == version == comp["version"], (scenario, path)
            assert comp["purl"] == f"pkg:golang/{path}@{version.replace('+', '%2B')}"
            if replacement:
                assert f"replaced by {replacement}" in pkg["comment"], (scenario, path)
            sha = pkg["checksums"][0]["checksumValue"]
            assert comp["hashes"] == [{"alg": "SHA-256", "content": sha}]
            seen_licences[f"{path}@{version}" + (f"=>{replacement}" if replacement else "")] = \
                pkg["licenseConcluded"]
        # The dependency edges are the go.mod graph's (`go mod graph`, restricted to the build list).
        graph_lines = run_go(["mod", "graph"], cwd=work, env=env).stdout.split()
        edges = {(graph_lines[i].split("@")[0], graph_lines[i + 1].split("@")[0])
                 for i in range(0, len(graph_lines), 2)} - {("example.com/app", "go"),
                                                             ("example.com/app", "toolchain")}
        ids = {p["SPDXID"]: p["name"] for p in spdx["packages"]}
        spdx_edges = {(ids[r["spdxElementId"]], ids[r["relatedSpdxElement"]])
                      for r in spdx["relationships"] if r["relationshipType"] == "DEPENDS_ON"}
        assert spdx_edges <= edges, (scenario, spdx_edges - edges)
        assert {(a, b) for a, b in edges if a == "example.com/app"} <= spdx_edges, scenario

    # Licences detected in the real zips: every text recognised, the unknown one NOASSERTION.
    assert seen_licences[f"{P}/d@v0.1.0"] == "MIT"
    assert seen_licences[f"{P}/e@v1.0.0"] == "ISC"
    assert seen_licences[f"{P}/c@v1.3.0"] == "BSD-3-Clause"
    assert seen_licences[f"{P}/b@v1.0.0"] == "MPL-2.0"
    assert seen_licences[f"{P}/inc@v2.0.0+incompatible"] == "BSD-2-Clause"
    assert seen_licences[f"{P}/a@v1.0.0"] == "Apache-2.0"
    assert seen_licences[f"{P}/a@v1.0.0=>{P}/fork v1.5.0"] == "NOASSERTION"
    assert LICENCES[f"{P}/fork"] == ""

    # The dashboard marks stored versions the imported advisory affects.
    page = httpx.get(f"{mv.url}/ui/module/{P}/c")
    assert page.status_code == 200, page.text
    rows = {r.split("</td>", 1)[0].rsplit(">", 1)[-1]: r for r in page.text.split("<tr>")[2:]}
    assert "GO-2099-0001" in rows["v1.2.0"] and "GO-2099-0001" in rows["v1.1.0"]
    assert "GO-2099-0001" not in rows["v1.3.0"]

    # module@version as the root: the build list of that module's own go.mod.
    doc = sbom_cli(mv.url, f"{P}/b@v1.0.0", "cyclonedx-json")
    assert cyclonedx_errors(doc) == []
    assert doc["metadata"]["component"]["version"] == "v1.0.0"
    assert {c["name"]: c["version"] for c in doc["components"]} == {
        f"{P}/c": "v1.3.0", f"{P}/d": "v0.1.0"}

    # Bad requests: one-line 4xx answers, never a 500.
    sbom = f"{mv.url}/api/v1/sbom"
    cases = [
        (b"module example.com/x\nrequire (\n", "spdx-json", 400),  # go.mod syntax error
        (b"example.com/x@latest", "spdx-json", 400),  # not a canonical version
        (b"require example.com/a v1.0.0\n", "spdx-json", 400),  # no module directive
        (b"module example.com/x\nrequire example.com/a v1.0.0\nreplace example.com/a => ../a\n",
         "spdx-json", 400),  # a directory the server cannot read
        (b"module example.com/x\n", "xml", 400),
        (b"module example.com/x\n" + b"//" * 600_000, "spdx-json", 413),
        (f"module example.com/x\nrequire {P}/nothere v1.0.0\n".encode(), "spdx-json", 404),
    ]
    for body, fmt, status in cases:
        r = httpx.post(sbom, params={"format": fmt}, content=body, timeout=60)
        assert r.status_code == status, (body[:80], r.status_code, r.text)
        assert r.text.count("\n") == 1 and "Traceback" not in r.text
    assert httpx.get(sbom).status_code == 405


def test_every_zip_has_a_verifiable_provenance_attestation(
        graph_server: tuple[Any, ModvaultProcess, bytes], tmp_path: Path) -> None:
    graphs, mv, pem = graph_server
    work = tmp_path / "app"
    work.mkdir()
    (work / "go.mod").write_text(graphs.mains["diamond"])
    env = client_env(tmp_path / "client", GOPROXY=mv.url)
    downloads = download_json(run_go(["mod", "download", "-json", "all"], cwd=work, env=env).stdout)
    assert {d["Path"] for d in downloads} == {f"{P}/a", f"{P}/b", f"{P}/c", f"{P}/d"}
    assert httpx.get(mv.url + "/api/v1/attestation-key.pem").content == pem

    for d in downloads:
        path, version = d["Path"], d["Version"]
        r = httpx.get(f"{mv.url}/api/v1/provenance/{path}@{version}")
        assert r.status_code == 200, r.text
        st = verify_dsse(r.content, pem)
        zip_bytes = Path(d["Zip"]).read_bytes()
        mod_bytes = Path(d["GoMod"]).read_bytes()
        assert st["subject"] == [
            {"name": f"{path}/@v/{version}.zip", "digest": {"sha256": hashlib.sha256(zip_bytes).hexdigest()}},
            {"name": f"{path}/@v/{version}.mod", "digest": {"sha256": hashlib.sha256(mod_bytes).hexdigest()}},
        ]
        build = st["predicate"]["buildDefinition"]
        assert build["internalParameters"]["h1"] == {"zip": d["Sum"], "mod": d["GoModSum"]}
        origin = build["externalParameters"]["origin"]
        commit = git(tmp_path / "repos" / path, "rev-parse", f"{version}^{{commit}}").strip()
        assert origin == {"kind": "vcs", "url": f"https://{path}", "vcs": "git", "hash": commit,
                          "ref": f"refs/tags/{version}"}
        assert build["resolvedDependencies"][0]["digest"] == {"gitCommit": commit}
        assert build["internalParameters"]["verification"]["method"] == "none"
        assert build["internalParameters"]["license"] == LICENCES[path]

        # One byte changed anywhere in the signed payload: verification fails.
        env_doc = json.loads(r.content)
        payload = bytearray(base64.b64decode(env_doc["payload"]))
        payload[payload.index(b"sha256")] ^= 0x20
        env_doc["payload"] = base64.b64encode(bytes(payload)).decode()
        with pytest.raises(VerificationError):
            verify_dsse(json.dumps(env_doc).encode(), pem)
    # The raw envelope bytes: flip one byte of the signature.
    raw = bytearray(httpx.get(f"{mv.url}/api/v1/provenance/{P}/d@v0.1.0").content)
    i = raw.index(b'"sig": "') + len(b'"sig": "') + 5
    raw[i] = ord("A") if raw[i] != ord("A") else ord("B")
    with pytest.raises(VerificationError):
        verify_dsse(bytes(raw), pem)

    # Provenance records live outside the GOPROXY file names.
    assert (mv.data_dir / ".modvault" / "provenance" / "github.com" / "sb" / "d" / "@v"
            / "v0.1.0.json").is_file()
    # Bad requests get one-line 4xx answers.
    assert httpx.get(f"{mv.url}/api/v1/provenance/{P}/d").status_code == 400
    assert httpx.get(f"{mv.url}/api/v1/provenance/{P}/d@latest").status_code == 400
    assert httpx.get(f"{mv.url}/api/v1/provenance/{P}/nothere@v1.0.0").status_code == 404


def test_licence_denylist_blocks_new_versions(tmp_path: Path, modvault: ModvaultFactory) -> None:
    build_graphs(tmp_path)
    env = _git_env(tmp_path)
    env["MODVAULT_LICENCE_DENYLIST"] = "MIT,GPL-3.0-only"
    env["MODVAULT_OSV_DIR"] = str(osv_dir(tmp_path))
    env["MODVAULT_OSV_BLOCK"] = "true"
    mv = modvault("direct", data_dir=tmp_path / "data", env=env)
    ok = httpx.get(f"{mv.url}/{P}/e/@v/v1.0.0.zip")
    assert ok.status_code == 200
    r = httpx.get(f"{mv.url}/{P}/d/@v/v0.1.0.zip")
    assert r.status_code == 403
    assert r.text.strip() == (f"{P}/d@v0.1.0: blocked by licence policy: its licence MIT is on "
                              f"the denylist (MIT)")
    assert not (tmp_path / "data" / P / "d" / "@v" / "v0.1.0.zip").exists()
    # The refusal is remembered (refusal_ttl): asking again does not fetch and judge it again.
    assert httpx.get(f"{mv.url}/{P}/d/@v/v0.1.0.zip").status_code == 403
    metrics = httpx.get(f"{mv.url}/metrics").text
    assert 'modvault_rejected_content_total{kind="licence"} 1.0' in metrics
    # The go command reports the reason.
    home = tmp_path / "client"
    proc = run_go(["mod", "download", f"{P}/d@v0.1.0"], cwd=tmp_path, check=False,
                  env=client_env(home, GOPROXY=mv.url))
    assert proc.returncode != 0 and "blocked by licence policy" in proc.stderr
    assert "licence" in mv.output()
    # The refusal is a block (gate.py) with its reason, and a line in the audit log.
    blocks = json.loads((tmp_path / "data" / ".modvault" / "policy" / "blocks.json").read_text())
    assert [(b["module"], b["version"], b["by"]) for b in blocks["blocks"]] == [
        (f"{P}/d", "v0.1.0", "modvault supply policy")]
    assert "licence MIT is on the denylist" in blocks["blocks"][0]["reason"]
    audit = [json.loads(line) for line in
             (tmp_path / "data" / ".modvault" / "audit" / "audit.log").read_text().splitlines()]
    assert [(a["event"], a["result"], a["target"]) for a in audit
            if a["event"].startswith("supply.")] == [("supply.licence_denied", "denied", f"{P}/d@v0.1.0")]
    deadline = time.monotonic() + 10  # the block is written, and announced, just after the 403
    while time.monotonic() < deadline:
        info = httpx.get(f"{mv.url}/{P}/d/@v/v0.1.0.info")
        if info.status_code == 403:
            break
        time.sleep(0.2)
    assert info.status_code == 403 and "blocked" in info.text and "denylist" in info.text
    # osv_block: versions an imported advisory affects are refused too.
    r = httpx.get(f"{mv.url}/{P}/c/@v/v1.2.0.zip")
    assert r.status_code == 403 and r.text.strip() == (
        f"{P}/c@v1.2.0: blocked: affected by GO-2099-0001 (OSV advisory)")
    assert httpx.get(f"{mv.url}/{P}/c/@v/v1.3.0.zip").status_code == 200


def test_provenance_names_the_checksum_database_proof(corpus: Corpus, upstream_a: TestUpstreamServer,
                                                      modvault: ModvaultFactory,
                                                      tmp_path: Path) -> None:
    """Verified against a checksum database: the record names it, the tree head the record was
    proven in, and the record number; a private (nosumdb) module names our private database."""
    data1 = tmp_path / "data1"
    vkey = subprocess.run([sys.executable, "-m", "modvault", "sumdb", "init", "sum.sb.test",
                           "--data-dir", str(data1)], capture_output=True, text=True,
                          check=True).stdout.strip()
    pem1 = attest_init(data1)
    db = modvault(upstream_a.url, "--nosumdb", "github.com/acme", data_dir=data1)
    r = httpx.get(f"{db.url}/api/v1/provenance/github.com/acme/hello@v1.0.0")
    st = verify_dsse(r.content, pem1)
    ver = st["predicate"]["buildDefinition"]["internalParameters"]["verification"]
    assert ver["method"] == "private" and ver["database"] == "sum.sb.test"
    lookup = httpx.get(f"{db.url}/sumdb/sum.sb.test/lookup/github.com/acme/hello@v1.0.0").text
    assert ver["recordId"] == int(lookup.split("\n", 1)[0])
    origin = st["predicate"]["buildDefinition"]["externalParameters"]["origin"]
    assert origin["kind"] == "upstream" and origin["url"] == upstream_a.url

    # A second modvault verifies github.com/acme modules against that database.
    data2 = tmp_path / "data2"
    pem2 = attest_init(data2)
    mv = modvault(upstream_a.url, "--sumdb", f"{vkey} {db.url}/sumdb/sum.sb.test", "--sumdb-verify",
                  data_dir=data2)
    assert httpx.get(f"{mv.url}/github.com/acme/hello/@v/v1.1.0.zip").status_code == 200
    st = verify_dsse(httpx.get(f"{mv.url}/api/v1/provenance/github.com/acme/hello@v1.1.0").content,
                     pem2)
    ver = st["predicate"]["buildDefinition"]["internalParameters"]["verification"]
    latest = httpx.get(f"{db.url}/sumdb/sum.sb.test/latest").text.split("\n")
    lookup = httpx.get(f"{db.url}/sumdb/sum.sb.test/lookup/github.com/acme/hello@v1.1.0").text
    assert ver == {"method": "sumdb", "database": "sum.sb.test", "treeSize": int(latest[1]),
                   "rootHash": latest[2], "recordId": int(lookup.split("\n", 1)[0])}
    ref = corpus.reference["github.com/acme/hello@v1.1.0"]
    assert st["predicate"]["buildDefinition"]["internalParameters"]["h1"] == {
        "zip": ref["Sum"], "mod": ref["GoModSum"]}
