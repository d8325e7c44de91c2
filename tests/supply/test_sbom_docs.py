"""SPDX and CycloneDX documents validate with the official tools and say what they should."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from modvault.supply.sbom import Component, DocumentInfo, ModuleGraph, cyclonedx_json, purl, spdx_json
from tests.supply.independent import cyclonedx_errors, spdx_errors

INFO = DocumentInfo("2026-01-02T03:04:05Z", "0b4d3c1e-6b8f-4a51-9d33-7f1c2a9e5b10", "0.1.0")


def _graph() -> ModuleGraph:
    root = Component("example.com/app", "")
    mods = (
        Component("github.com/Acme/Upper", "v1.0.0", "h1:" + "a" * 43 + "=", "1" * 64, "MIT"),
        Component("github.com/acme/incompat", "v2.0.0+incompatible", "h1:" + "b" * 43 + "=",
                  "2" * 64, "NOASSERTION"),
        Component("golang.org/x/text", "v0.3.0", "h1:" + "c" * 43 + "=", "3" * 64,
                  "Apache-2.0 AND MIT", replaced_by="example.com/fork v0.3.1",
                  download_url="http://127.0.0.1:3000/golang.org/x/text/@v/v0.3.0.zip"),
    )
    return ModuleGraph(root, mods, {
        "example.com/app": ("github.com/Acme/Upper", "github.com/acme/incompat"),
        "github.com/Acme/Upper": ("golang.org/x/text",),
    })


def test_purls() -> None:
    assert purl("github.com/Acme/Upper", "v1.0.0") == "pkg:golang/github.com/Acme/Upper@v1.0.0"
    assert purl("x.io/m", "v2.0.0+incompatible") == "pkg:golang/x.io/m@v2.0.0%2Bincompatible"
    assert purl("x.io/m", "") == "pkg:golang/x.io/m"


def test_spdx_document_validates_and_describes_the_graph(tmp_path: Path) -> None:
    doc = spdx_json(_graph(), INFO)
    assert spdx_errors(doc, tmp_path) == []
    names = {p["name"]: p for p in doc["packages"]}
    upper = names["github.com/Acme/Upper"]
    assert upper["licenseConcluded"] == "MIT"
    assert upper["checksums"] == [{"algorithm": "SHA256", "checksumValue": "1" * 64}]
    assert upper["supplier"] == "Organization: github.com"
    assert "h1:" in upper["comment"]
    deps = {(r["spdxElementId"], r["relatedSpdxElement"]) for r in doc["relationships"]
            if r["relationshipType"] == "DEPENDS_ON"}
    assert (upper["SPDXID"], names["golang.org/x/text"]["SPDXID"]) in deps
    assert len(deps) == 3


def test_cyclonedx_document_validates_and_describes_the_graph() -> None:
    doc = cyclonedx_json(_graph(), INFO)
    assert cyclonedx_errors(doc) == []
    comps = {c["name"]: c for c in doc["components"]}
    assert comps["github.com/Acme/Upper"]["licenses"] == [{"license": {"id": "MIT"}}]
    assert "licenses" not in comps["github.com/acme/incompat"]  # NOASSERTION: say nothing
    assert comps["golang.org/x/text"]["licenses"] == [{"expression": "Apache-2.0 AND MIT"}]
    deps = {d["ref"]: d["dependsOn"] for d in doc["dependencies"]}
    assert deps["pkg:golang/github.com/Acme/Upper@v1.0.0"] == ["pkg:golang/golang.org/x/text@v0.3.0"]


def test_validators_do_catch_broken_documents(tmp_path: Path) -> None:
    """The validators used above are not rubber stamps."""
    doc = spdx_json(_graph(), INFO)
    doc["packages"][1]["checksums"][0]["checksumValue"] = "not-hex"
    assert spdx_errors(doc, tmp_path)
    cdx = cyclonedx_json(_graph(), INFO)
    cdx["components"][0]["hashes"][0]["alg"] = "CRC-7"
    assert cyclonedx_errors(cdx)


_elem = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.-_~", min_size=1, max_size=8).filter(
    lambda e: e.strip(".") != "")


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.lists(_elem, min_size=1, max_size=3),
                          st.sampled_from(["v0.0.1", "v1.2.3-rc.1", "v3.0.0+incompatible"])),
                min_size=1, max_size=6, unique_by=lambda t: "/".join(t[0])))
def test_cyclonedx_validates_for_any_module_names(mods: list[tuple[list[str], str]]) -> None:
    comps = tuple(Component("host.example/" + "/".join(p), v, "h1:x", "0" * 64, "ISC") for p, v in mods)
    graph = ModuleGraph(Component("main.example/m", ""), comps,
                        {"main.example/m": tuple(c.path for c in comps)})
    assert cyclonedx_errors(cyclonedx_json(graph, INFO)) == []
