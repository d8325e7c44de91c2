"""SBOM documents for a resolved module graph: SPDX 2.3 JSON and CycloneDX 1.6 JSON. Pure.

Every module of the build list is one package/component with its purl
(``pkg:golang/<path>@<version>``, github.com/package-url/purl-spec, type "golang"), version,
SHA-256 of its zip, its ``h1:`` checksum (an SPDX package comment / a CycloneDX property, as
neither format has a dirhash algorithm), supplier (the host of its module path), the licence
detected in its zip (SPDX id, NOASSERTION when unsure; omitted in CycloneDX then), and the
dependency relationships of the go.mod graph.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from modvault.supply.licenses import NOASSERTION
from modvault.supply.osv import Advisory

__all__ = ["Component", "ModuleGraph", "cyclonedx_json", "purl", "spdx_json"]

FORMATS = ("spdx-json", "cyclonedx-json")


def purl(path: str, version: str) -> str:
    """The package URL of a Go module version (each path element percent-encoded)."""
    out = "pkg:golang/" + "/".join(quote(elem, safe="") for elem in path.split("/"))
    return out + ("@" + quote(version, safe="") if version else "")


def supplier_of(path: str) -> str:
    """The supplier named by a module path: its first element, the host."""
    return path.split("/", 1)[0]


@dataclass(frozen=True)
class Component:
    """One module of the graph. ``version`` is "" for a main module being developed (no zip)."""

    path: str
    version: str
    h1: str = ""
    sha256: str = ""
    licence: str = NOASSERTION
    replaced_by: str = ""  # "path version" or a directory, as `go list -m` prints after "=>"
    download_url: str = ""
    advisories: tuple[Advisory, ...] = ()  # imported OSV advisories affecting this version

    @property
    def purl(self) -> str:
        return purl(self.path, self.version)

    @property
    def key(self) -> str:
        return f"{self.path}@{self.version}"


@dataclass(frozen=True)
class ModuleGraph:
    """A root (the main module), the other selected modules, and requirement edges by path."""

    root: Component
    modules: tuple[Component, ...]
    depends: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class DocumentInfo:
    """What varies per document: creation time (RFC 3339 UTC), a unique id, the tool version."""

    created: str
    uuid: str
    tool_version: str
    namespace_base: str = "https://spdx.org/spdxdocs/modvault"


def _by_path(graph: ModuleGraph) -> dict[str, Component]:
    return {c.path: c for c in (graph.root, *graph.modules)}


def spdx_json(graph: ModuleGraph, info: DocumentInfo) -> dict[str, Any]:
    """SPDX 2.3 (spdx.github.io/spdx-spec/v2.3) JSON document."""
    ids: dict[str, str] = {}
    packages = []
    for n, c in enumerate((graph.root, *graph.modules)):
        spdx_id = f"SPDXRef-Package-{n}"
        ids[c.path] = spdx_id
        pkg: dict[str, Any] = {
            "SPDXID": spdx_id,
            "name": c.path,
            "supplier": f"Organization: {supplier_of(c.path)}",
            # spdx-tools' download-location grammar rejects the "@v" of GOPROXY URLs: the URL is
            # in the CycloneDX document and the purl says where the module comes from.
            "downloadLocation": NOASSERTION,
            "filesAnalyzed": False,
            "licenseConcluded": c.licence,
            "licenseDeclared": NOASSERTION,
            "copyrightText": NOASSERTION,
            "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                              "referenceLocator": c.purl}] + [
                {"referenceCategory": "SECURITY", "referenceType": "advisory",
                 "referenceLocator": a.url, "comment": f"{a.id}: {a.summary}"[:500]}
                for a in c.advisories],
        }
        if c.version:
            pkg["versionInfo"] = c.version
        if c.sha256:
            pkg["checksums"] = [{"algorithm": "SHA256", "checksumValue": c.sha256}]
        notes = []
        if c.h1:
            notes.append(f"go.sum checksum: {c.h1}")
        if c.replaced_by:
            notes.append(f"replaced by {c.replaced_by}")
        if notes:
            pkg["comment"] = "; ".join(notes)
        packages.append(pkg)
    relationships = [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                      "relatedSpdxElement": ids[graph.root.path]}]
    for path, deps in sorted(graph.depends.items()):
        if path not in ids:
            continue
        for dep in deps:
            if dep in ids:
                relationships.append({"spdxElementId": ids[path], "relationshipType": "DEPENDS_ON",
                                      "relatedSpdxElement": ids[dep]})
    name = graph.root.key if graph.root.version else graph.root.path
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"Go module graph of {name}",
        "documentNamespace": f"{info.namespace_base}/{quote(graph.root.path, safe='')}-{info.uuid}",
        "creationInfo": {"created": info.created,
                         "creators": [f"Tool: modvault-{info.tool_version}"]},
        "packages": packages,
        "relationships": relationships,
    }


def _cdx_component(c: Component, kind: str) -> dict[str, Any]:
    comp: dict[str, Any] = {"type": kind, "bom-ref": c.purl, "name": c.path,
                            "supplier": {"name": supplier_of(c.path)}, "purl": c.purl}
    if c.version:
        comp["version"] = c.version
    if c.sha256:
        comp["hashes"] = [{"alg": "SHA-256", "content": c.sha256}]
    if c.licence != NOASSERTION:
        if " " in c.licence:
            comp["licenses"] = [{"expression": c.licence}]
        else:
            comp["licenses"] = [{"license": {"id": c.licence}}]
    props = []
    if c.h1:
        props.append({"name": "modvault:h1", "value": c.h1})
    if c.replaced_by:
        props.append({"name": "modvault:replacedBy", "value": c.replaced_by})
    if props:
        comp["properties"] = props
    if c.download_url:
        comp["externalReferences"] = [{"type": "distribution", "url": c.download_url}]
    return comp


def cyclonedx_json(graph: ModuleGraph, info: DocumentInfo) -> dict[str, Any]:
    """CycloneDX 1.6 (cyclonedx.org/docs/1.6/json) JSON document."""
    refs = {c.path: c.purl for c in (graph.root, *graph.modules)}
    dependencies = []
    for c in (graph.root, *graph.modules):
        deps = sorted({refs[d] for d in graph.depends.get(c.path, ()) if d in refs})
        dependencies.append({"ref": c.purl, "dependsOn": deps})
    vulns: dict[str, tuple[Advisory, list[str]]] = {}
    for c in (graph.root, *graph.modules):
        for a in c.advisories:
            vulns.setdefault(a.id, (a, []))[1].append(c.purl)
    doc: dict[str, Any] = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": f"urn:uuid:{info.uuid}",
        "version": 1,
        "metadata": {
            "timestamp": info.created,
            "tools": {"components": [{"type": "application", "name": "modvault",
                                      "version": info.tool_version}]},
            "component": _cdx_component(graph.root, "application"),
        },
        "components": [_cdx_component(c, "library") for c in graph.modules],
        "dependencies": dependencies,
    }
    if vulns:
        doc["vulnerabilities"] = [
            {"bom-ref": f"vuln-{a.id}", "id": a.id, "source": {"name": "OSV", "url": a.url},
             "description": a.summary, "affects": [{"ref": r} for r in sorted(refs)]}
            for _, (a, refs) in sorted(vulns.items())]
    return doc
