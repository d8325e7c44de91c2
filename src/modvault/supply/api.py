"""HTTP endpoints of the supply chain, registered in the server's route table:

- ``GET /api/v1/provenance/{module}@{version}``: the DSSE envelope (in-toto Statement v1, SLSA
  provenance v1) of a stored version; a version not yet stored is fetched (admitted) first;
- ``GET /api/v1/attestation-key.pem``: the public key that verifies those envelopes;
- ``POST /api/v1/sbom?format=spdx-json|cyclonedx-json``: body a go.mod file or ``module@version``;
  the SBOM of its build list (MVS over the .mod files this proxy serves).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from modvault import __version__
from modvault.artifact import Artifact, ArtifactRef, Kind
from modvault.errors import BadRequest, NotFound, Unavailable
from modvault.module.dirhash import hash_zip
from modvault.module.errors import ModuleError
from modvault.module.path import check, escape_path, escape_version, unescape_path
from modvault.supply.admission import SupplyChain, rfc3339
from modvault.supply.mvs import MainModule
from modvault.supply.resolve import ModuleFacts, build_graph, main_from_gomod
from modvault.supply.sbom import FORMATS, DocumentInfo, cyclonedx_json, spdx_json
from modvault.supply.zipfacts import zip_facts

if TYPE_CHECKING:
    from modvault.server.app import App
    from modvault.server.request import Request
    from modvault.server.routes import RouteTable
    from modvault.service import ModuleService

__all__ = ["ServiceGraphSource", "parse_module_version", "register"]

MAX_SBOM_REQUEST = 1024 * 1024
MEDIA_TYPES = {"spdx-json": "application/spdx+json", "cyclonedx-json": "application/vnd.cyclonedx+json"}
PROVENANCE_PREFIX = "/api/v1/provenance/"


def parse_module_version(text: str) -> tuple[str, str]:
    """``module@version`` (the module path as written, or case-encoded with ``!``) -> both, checked."""
    module, sep, version = text.strip().rpartition("@")
    if not sep or not module or not version:
        raise BadRequest(f"expected module@version, got {text[:200]!r}")
    try:
        if "!" in module:
            module = unescape_path(module)
        check(module, version)
    except ModuleError as exc:
        raise BadRequest(str(exc)) from None
    return module, version


def artifact_ref(module: str, version: str, kind: Kind) -> ArtifactRef:
    return ArtifactRef(module, escape_path(module), kind, version, escape_version(version), True)


class ServiceGraphSource:
    """go.mod files and zip facts through the service: fetched, verified and admitted as for
    the go command; zip facts from the provenance record when there is one."""

    def __init__(self, service: ModuleService) -> None:
        self.service = service

    async def gomod(self, path: str, version: str) -> bytes:
        try:
            check(path, version)
        except ModuleError as exc:
            raise BadRequest(str(exc)) from None
        art = await self.service.get(artifact_ref(path, version, Kind.MOD))
        return await _bytes(art)

    async def facts(self, path: str, version: str) -> ModuleFacts:
        art = await self.service.get(artifact_ref(path, version, Kind.ZIP))
        supply = self.service.supply
        rec = await supply.load(path, version) if supply is not None else None
        if rec is not None:
            return ModuleFacts(rec.zip_h1, rec.zip_sha256, rec.licence)
        if art.path is None:
            raise Unavailable(f"{path}@{version}: zip not on local storage")
        local = art.path

        def compute() -> ModuleFacts:
            f = zip_facts(local, path, version)
            return ModuleFacts(hash_zip(local), f.sha256, f.licence)

        return await asyncio.to_thread(compute)


async def _bytes(art: Artifact) -> bytes:
    if art.body is not None:
        return art.body
    if art.path is None:
        raise Unavailable("artifact has no body")
    local = art.path
    return await asyncio.to_thread(Path(local).read_bytes)


def provenance_target(req: Request) -> str:
    module, version = parse_module_version(req.path[len(PROVENANCE_PREFIX):])
    req.target = f"{module}@{version}"
    return module


async def sbom_document(service: ModuleService, body: bytes, fmt: str) -> bytes:
    """The SBOM for a go.mod (or ``module@version``) as JSON bytes."""
    if fmt not in FORMATS:
        raise BadRequest(f"format must be one of {', '.join(FORMATS)}, got {fmt[:40]!r}")
    text = body.decode("utf-8", "replace").strip()
    source = ServiceGraphSource(service)
    main: MainModule
    if text and "\n" not in text and " " not in text and "@" in text:
        module, version = parse_module_version(text)
        main = main_from_gomod(await source.gomod(module, version), version)
        if main.path != module:
            main = MainModule(module, version, main.go, main.requires, main.replaces, main.excludes)
    else:
        main = main_from_gomod(body)
    supply = service.supply
    graph = await build_graph(main, source,
                              advisories=supply.advisories.affecting if supply is not None else None)
    info = DocumentInfo(rfc3339(time.time()), str(uuid.uuid4()), __version__)
    doc = spdx_json(graph, info) if fmt == "spdx-json" else cyclonedx_json(graph, info)
    return (json.dumps(doc, indent=1) + "\n").encode()


class SupplyHandlers:
    def __init__(self, app: App) -> None:
        self.app = app

    def _supply(self) -> SupplyChain:
        supply = self.app.service.supply
        if supply is None:
            raise NotFound("supply chain features are not configured")
        return supply

    async def attestation_key(self, req: Request) -> None:
        pem = self._supply().public_key_pem()
        req.send_bytes(200, [("content-type", "application/x-pem-file"),
                             ("cache-control", "no-cache")], pem)

    async def provenance(self, req: Request) -> None:
        module, version = parse_module_version(req.path[len(PROVENANCE_PREFIX):])
        service = self.app.service

        async def ensure() -> None:
            await service.get(artifact_ref(module, version, Kind.ZIP))

        envelope = await self._supply().attestation(module, version, ensure)
        body = (json.dumps(envelope, indent=1) + "\n").encode()
        req.send_bytes(200, [("content-type", "application/vnd.dsse.envelope.v1+json"),
                             ("cache-control", req.cache_control("no-cache"))], body)

    async def sbom(self, req: Request) -> None:
        fmt = parse_qs(req.query_string).get("format", ["spdx-json"])[0]
        body = await req.read_body(MAX_SBOM_REQUEST)
        doc = await sbom_document(self.app.service, body, fmt)
        req.send_bytes(200, [("content-type", MEDIA_TYPES[fmt]), ("cache-control", "no-store")], doc)


def register(app: App, table: RouteTable) -> None:
    """The supply-chain routes (called from server/endpoints.register)."""
    from modvault.server.routes import PUBLIC, READ

    h = SupplyHandlers(app)
    table.add("/api/v1/attestation-key.pem", h.attestation_key, kind="api", permission=PUBLIC)
    table.add(PROVENANCE_PREFIX, h.provenance, kind="api", prefix=True, permission=READ,
              target=provenance_target)
    table.add("/api/v1/sbom", h.sbom, kind="api", methods=("POST",), permission=READ)
