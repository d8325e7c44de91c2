"""OSV advisories: which Go module versions they affect, and how SBOMs show them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modvault.supply.osv import OsvError, OsvIndex, load_osv_dir, parse_advisory
from modvault.supply.sbom import Component, DocumentInfo, ModuleGraph, cyclonedx_json, spdx_json
from tests.supply.independent import cyclonedx_errors, spdx_errors


def advisory(id: str, module: str, *events: dict[str, str], versions: tuple[str, ...] = (),
             ecosystem: str = "Go") -> dict[str, Any]:
    return {"schema_version": "1.6.0", "id": id, "summary": f"bad things in {module}",
            "affected": [{"package": {"ecosystem": ecosystem, "name": module},
                          "ranges": [{"type": "SEMVER", "events": list(events)}],
                          "versions": list(versions)}]}


INDEX = OsvIndex.of([
    advisory("GO-1", "x.io/m", {"introduced": "0"}, {"fixed": "1.2.0"}),
    advisory("GO-2", "x.io/m", {"introduced": "1.5.0"}, {"last_affected": "1.6.0"},
             {"introduced": "2.0.0+incompatible"}),
    advisory("GO-3", "x.io/other", versions=("0.1.0",)),
    advisory("PYSEC-1", "x.io/m", {"introduced": "0"}, ecosystem="PyPI"),
])


@pytest.mark.parametrize(("version", "ids"), [
    ("v0.0.1", ["GO-1"]), ("v1.1.9", ["GO-1"]), ("v1.2.0-rc.1", ["GO-1"]), ("v1.2.0", []),
    ("v1.4.9", []), ("v1.5.0", ["GO-2"]), ("v1.6.0", ["GO-2"]), ("v1.6.1", []),
    ("v2.0.0+incompatible", ["GO-2"]), ("v2.3.0+incompatible", ["GO-2"]),
])
def test_ranges(version: str, ids: list[str]) -> None:
    assert [a.id for a in INDEX.affecting("x.io/m", version)] == ids


def test_listed_versions_and_other_ecosystems() -> None:
    assert [a.id for a in INDEX.affecting("x.io/other", "v0.1.0")] == ["GO-3"]
    assert INDEX.affecting("x.io/other", "v0.1.1") == []
    assert len(INDEX) == 3  # the PyPI advisory names no Go module


def test_malformed_documents() -> None:
    with pytest.raises(OsvError):
        parse_advisory({"affected": []})
    with pytest.raises(OsvError):
        parse_advisory(advisory("GO-9", "x.io/m", {"introduced": "not-a-version"}))


def test_load_dir_skips_bad_files(tmp_path: Path) -> None:
    import json

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "GO-1.json").write_text(json.dumps(advisory("GO-1", "x.io/m", {"introduced": "0"})))
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "readme.txt").write_text("ignored")
    index = load_osv_dir(tmp_path)
    assert [a.id for a in index.affecting("x.io/m", "v9.9.9")] == ["GO-1"]


_v = st.tuples(st.integers(0, 4), st.integers(0, 4), st.integers(0, 4))


@given(_v, _v, _v)
def test_introduced_fixed_is_a_half_open_interval(a: tuple[int, int, int], b: tuple[int, int, int],
                                                  v: tuple[int, int, int]) -> None:
    def s(t: tuple[int, int, int]) -> str:
        return ".".join(map(str, t))

    index = OsvIndex.of([advisory("GO-X", "x.io/m", {"introduced": s(a)}, {"fixed": s(b)})])
    # OSV evaluates events in version order: a "fixed" before the "introduced" closes nothing.
    want = a <= v < b if a < b else (a != b and v >= a)
    assert bool(index.affecting("x.io/m", "v" + s(v))) == want


def test_sbom_documents_carry_advisories(tmp_path: Path) -> None:
    [adv] = INDEX.affecting("x.io/other", "v0.1.0")
    graph = ModuleGraph(Component("main.example/m", ""), (
        Component("x.io/other", "v0.1.0", "h1:x", "0" * 64, "MIT", advisories=(adv,)),),
        {"main.example/m": ("x.io/other",)})
    info = DocumentInfo("2026-01-02T03:04:05Z", "0b4d3c1e-6b8f-4a51-9d33-7f1c2a9e5b10", "0.1.0")
    cdx = cyclonedx_json(graph, info)
    assert cyclonedx_errors(cdx) == []
    assert cdx["vulnerabilities"] == [{
        "bom-ref": "vuln-GO-3", "id": "GO-3",
        "source": {"name": "OSV", "url": "https://osv.dev/vulnerability/GO-3"},
        "description": "bad things in x.io/other", "affects": [{"ref": "pkg:golang/x.io/other@v0.1.0"}]}]
    spdx = spdx_json(graph, info)
    assert spdx_errors(spdx, tmp_path) == []
    refs = spdx["packages"][1]["externalRefs"]
    assert {"referenceCategory": "SECURITY", "referenceType": "advisory",
            "referenceLocator": "https://osv.dev/vulnerability/GO-3",
            "comment": "GO-3: bad things in x.io/other"} in refs
