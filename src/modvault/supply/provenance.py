"""Provenance records (what modvault learned while admitting a version) and the in-toto Statement
v1 with a SLSA provenance v1 predicate built from one. Pure.

A record is kept per module version when its zip is admitted: where it came from (an upstream
proxy URL, a VCS URL + commit hash + ref, or a publisher identity), when, the h1 hashes of zip and
go.mod, the SHA-256 of both files' bytes, the licence detected in the zip, and how it was checked:
the checksum database, the size and root hash of the signed tree head the record was proven
against and the record number; or that the module is exempt (nosumdb) and was recorded in our
private database; or that verification was off.

Statement layout: in-toto Statement v1 (github.com/in-toto/attestation spec/v1/statement.md),
predicate SLSA Provenance v1 (slsa.dev/spec/v1.0/provenance): subjects are the zip and the .mod
by their GOPROXY paths with SHA-256 digests; ``buildDefinition.externalParameters`` names the
module version and its origin, ``internalParameters`` the verification, ``resolvedDependencies``
the source (with ``gitCommit`` in direct mode); ``runDetails`` the admitting proxy and the time.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from modvault.module.path import escape_path, escape_version

__all__ = ["BUILD_TYPE", "Origin", "ProvenanceRecord", "Verification", "statement"]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://github.com/modvault/modvault/supply/admit/v1"
DEFAULT_BUILDER_ID = "https://github.com/modvault/modvault/proxy"


@dataclass(frozen=True)
class Origin:
    """Where the bytes came from. ``kind``: "upstream" (a proxy at ``url``), "vcs" (``url``,
    ``vcs``, ``hash``, ``ref``), or "upload" (``publisher``)."""

    kind: str
    url: str = ""
    vcs: str = ""
    hash: str = ""
    ref: str = ""
    publisher: str = ""


@dataclass(frozen=True)
class Verification:
    """How the hashes were checked. ``method``: "sumdb" (proven in ``database``'s signed tree of
    ``tree_size`` leaves with root ``root_hash`` (base64) at record ``record_id``), "private"
    (exempt from the public database, recorded in our private ``database``), or "none"."""

    method: str
    database: str = ""
    tree_size: int = 0
    root_hash: str = ""
    record_id: int = -1
    note: str = ""


@dataclass(frozen=True)
class ProvenanceRecord:
    module: str
    version: str
    admitted_at: str  # RFC 3339, UTC
    origin: Origin
    zip_h1: str
    mod_h1: str
    zip_sha256: str
    mod_sha256: str
    zip_size: int
    verification: Verification
    licence: str = "NOASSERTION"
    extra: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, indent=1).encode() + b"\n"

    @classmethod
    def from_json(cls, data: bytes) -> ProvenanceRecord:
        doc = json.loads(data)
        doc["origin"] = Origin(**doc["origin"])
        doc["verification"] = Verification(**doc["verification"])
        return cls(**doc)

    @property
    def zip_name(self) -> str:
        return f"{escape_path(self.module)}/@v/{escape_version(self.version)}.zip"

    @property
    def mod_name(self) -> str:
        return f"{escape_path(self.module)}/@v/{escape_version(self.version)}.mod"


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _drop_empty(d: dict[str, Any]) -> dict[str, Any]:
    """JSON field names in camelCase (the SLSA convention), empty fields left out."""
    return {_camel(k): v for k, v in d.items() if v not in ("", None, -1)}


def _resolved_dependency(rec: ProvenanceRecord) -> dict[str, Any]:
    o = rec.origin
    if o.kind == "vcs":
        dep: dict[str, Any] = {"uri": f"git+{o.url}" if o.vcs in ("", "git") else o.url,
                               "digest": {"gitCommit": o.hash} if o.hash else {}}
        if o.ref:
            dep["annotations"] = {"ref": o.ref}
        return dep
    if o.kind == "upstream":
        return {"uri": o.url.rstrip("/") + "/" + rec.zip_name, "digest": {"sha256": rec.zip_sha256}}
    return {"uri": f"publisher:{o.publisher}", "digest": {"sha256": rec.zip_sha256}}


def statement(rec: ProvenanceRecord, builder_id: str = DEFAULT_BUILDER_ID) -> dict[str, Any]:
    """The in-toto Statement v1 (SLSA provenance v1 predicate) describing rec."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {"name": rec.zip_name, "digest": {"sha256": rec.zip_sha256}},
            {"name": rec.mod_name, "digest": {"sha256": rec.mod_sha256}},
        ],
        "predicateType": SLSA_PROVENANCE_V1,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "module": rec.module,
                    "version": rec.version,
                    "origin": _drop_empty(asdict(rec.origin)),
                },
                "internalParameters": {
                    "verification": _drop_empty(asdict(rec.verification)),
                    "h1": {"zip": rec.zip_h1, "mod": rec.mod_h1},
                    "zipSize": rec.zip_size,
                    "license": rec.licence,
                },
                "resolvedDependencies": [_resolved_dependency(rec)],
            },
            "runDetails": {
                "builder": {"id": builder_id},
                "metadata": {"startedOn": rec.admitted_at, "finishedOn": rec.admitted_at},
            },
        },
    }
