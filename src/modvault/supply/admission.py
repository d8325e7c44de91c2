"""The supply-chain step of admission: licence policy before a zip is stored, a provenance
record after, and signed attestations of those records on request.

Records live in the store under ``.modvault/provenance/<escaped module>/@v/<escaped version>.json``
(outside the GOPROXY file names, so a file-system store stays a valid ``file://`` GOPROXY), are
written once (first writer wins, like the artifact) and signed when served, so a new attestation
key signs old records too.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from modvault.errors import Forbidden, NotFound
from modvault.module.dirhash import hash_gomod, hash_zip
from modvault.module.path import escape_path, escape_version
from modvault.observability import metrics
from modvault.storage.base import Store
from modvault.sumdb.client import RecordHashes
from modvault.supply.dsse import Signer, public_pem, sign_envelope
from modvault.supply.osv import OsvIndex
from modvault.supply.provenance import DEFAULT_BUILDER_ID, Origin, ProvenanceRecord, Verification, statement
from modvault.supply.zipfacts import ZipFacts, zip_facts

__all__ = ["PROVENANCE_PREFIX", "SupplyChain", "origin_from_info", "record_key", "verification_of"]

LOG = logging.getLogger("modvault.supply")
PROVENANCE_PREFIX = ".modvault/provenance/"


def record_key(module: str, version: str) -> str:
    return f"{PROVENANCE_PREFIX}{escape_path(module)}/@v/{escape_version(version)}.json"


def rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def origin_from_info(source: str, info: bytes | None) -> Origin:
    """Where a version came from: the source's name (an upstream URL, credentials removed, or
    "direct"), plus the VCS origin the .info carries (go.dev/ref/mod#goproxy-protocol: Origin)."""
    vcs: dict[str, Any] = {}
    if info:
        try:
            doc = json.loads(info)
            if isinstance(doc, dict) and isinstance(doc.get("Origin"), dict):
                vcs = doc["Origin"]
        except ValueError:
            vcs = {}

    def field(name: str) -> str:
        v = vcs.get(name, "")
        return v if isinstance(v, str) else ""

    if source == "direct":
        return Origin("vcs", url=field("URL"), vcs=field("VCS") or "git", hash=field("Hash"),
                      ref=field("Ref"))
    return Origin("upstream", url=source, vcs=field("VCS"), hash=field("Hash"), ref=field("Ref"))


def verification_of(proof: RecordHashes | None, *, private: str = "", private_size: int = 0,
                    private_root: bytes = b"", private_id: int = -1, why_none: str = "") -> Verification:
    if proof is not None:
        return Verification("sumdb", proof.database, proof.tree_size,
                            base64.standard_b64encode(proof.root_hash).decode(), proof.record_id)
    if private:
        return Verification("private", private, private_size,
                            base64.standard_b64encode(private_root).decode(), private_id)
    return Verification("none", note=why_none)


class SupplyChain:
    """Licence policy, provenance records and attestations over one store."""

    def __init__(self, store: Store, *, signer: Signer | None = None,
                 denied_licences: frozenset[str] = frozenset(),
                 builder_id: str = DEFAULT_BUILDER_ID,
                 on_refusal: Callable[[str, str, str, str], None] | None = None,
                 advisories: OsvIndex | None = None, block_advisories: bool = False) -> None:
        self.store = store
        self.signer = signer
        self.denied_licences = denied_licences
        self.advisories = advisories or OsvIndex()
        self.block_advisories = block_advisories
        self.builder_id = builder_id
        # Told (event, module, version, reason) of every policy refusal: wiring turns it into a
        # block (gate.py) and an audit-log line.
        self.on_refusal = on_refusal

    # -- policy ------------------------------------------------------------------------------

    def check_policy(self, module: str, version: str, licence: str) -> None:
        """Before a new version is stored: licence denylist, then (if configured) advisories."""
        self.check_licence(module, version, licence)
        if self.block_advisories:
            self.check_advisories(module, version)

    def check_advisories(self, module: str, version: str) -> None:
        """Refuse (403) a version that an imported OSV advisory says is affected."""
        found = self.advisories.affecting(module, version)
        if not found:
            return
        ids = ", ".join(a.id for a in found)
        reason = f"{module}@{version}: blocked: affected by {ids} (OSV advisory)"
        metrics.REJECTED_CONTENT.labels("advisory").inc()
        LOG.warning("%s", reason)
        if self.on_refusal is not None:
            self.on_refusal("supply.advisory_blocked", module, version, reason)
        raise Forbidden(reason)

    def check_licence(self, module: str, version: str, licence: str) -> None:
        """Refuse (403) a new version whose detected licence is on the denylist."""
        denied = [part for part in licence.split(" AND ") if part in self.denied_licences]
        if not denied:
            return
        reason = (f"{module}@{version}: blocked by licence policy: its licence {licence} is on the "
                  f"denylist ({', '.join(denied)})")
        metrics.REJECTED_CONTENT.labels("licence").inc()
        LOG.warning("%s", reason)
        if self.on_refusal is not None:
            self.on_refusal("supply.licence_denied", module, version, reason)
        raise Forbidden(reason)

    # -- records -----------------------------------------------------------------------------

    async def record(self, module: str, version: str, *, origin: Origin, zip_h1: str,
                     facts: ZipFacts, mod: bytes, mod_h1: str, verification: Verification,
                     now: float | None = None) -> ProvenanceRecord:
        """Keep the provenance of a newly stored version (the first record stays)."""
        rec = ProvenanceRecord(
            module=module, version=version, admitted_at=rfc3339(time.time() if now is None else now),
            origin=origin, zip_h1=zip_h1, mod_h1=mod_h1, zip_sha256=facts.sha256,
            mod_sha256=hashlib.sha256(mod).hexdigest(), zip_size=facts.size,
            verification=verification, licence=facts.licence)
        await self.store.put_if_absent(record_key(module, version), rec.to_json())
        return rec

    async def record_upload(self, module: str, version: str, *, publisher: str, zip_path: Path,
                            mod: bytes, verification: Verification | None = None,
                            now: float | None = None) -> ProvenanceRecord:
        """The provenance of a published (uploaded) version, by the identity that published it.

        For the publishing path: call :meth:`check_licence` with :func:`licence_of_zip` before
        storing, and this after the zip and go.mod are stored (``verification``: what the
        private checksum database recorded, if any)."""
        zip_h1 = await asyncio.to_thread(hash_zip, zip_path)
        facts = await asyncio.to_thread(zip_facts, zip_path, module, version)
        return await self.record(
            module, version, origin=Origin("upload", publisher=publisher), zip_h1=zip_h1,
            facts=facts, mod=mod, mod_h1=hash_gomod(mod),
            verification=verification or Verification("none", note="published to this proxy"),
            now=now)

    async def load(self, module: str, version: str) -> ProvenanceRecord | None:
        key = record_key(module, version)
        got = await self.store.get(key)
        if got is None:
            return None
        data = got[0]
        try:
            return ProvenanceRecord.from_json(data)
        except (ValueError, TypeError, KeyError) as exc:
            LOG.error("unreadable provenance record %s: %s", key, exc)
            return None

    # -- attestations ------------------------------------------------------------------------

    def _signer(self) -> Signer:
        if self.signer is None:
            raise NotFound("no attestation key: run `modvault attest init` on this data directory")
        return self.signer

    def public_key_pem(self) -> bytes:
        return public_pem(self._signer().public)

    async def attestation(self, module: str, version: str,
                          ensure: Callable[[], Awaitable[None]] | None = None) -> dict[str, Any]:
        """The DSSE envelope of module@version's provenance. With *ensure*, a version not yet
        stored is fetched (and so admitted and recorded) first."""
        signer = self._signer()
        rec = await self.load(module, version)
        if rec is None and ensure is not None:
            await ensure()
            rec = await self.load(module, version)
        if rec is None:
            raise NotFound(f"{module}@{version}: no provenance record (stored before provenance "
                           f"was kept, or not stored)")
        payload = json.dumps(statement(rec, self.builder_id), sort_keys=True).encode()
        return sign_envelope(signer, payload)
