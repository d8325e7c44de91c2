"""Published private modules: versions uploaded to modvault rather than fetched from anywhere.

``publish`` is the admit pipeline for an upload: the zip is checked with the same rules as upstream
zips (module/zipcheck), its ``.mod`` is the zip's own go.mod, its ``.info`` carries the upload time and
an ``Origin`` naming the publisher, the private checksum database records it (so ``GOSUMDB=<private
key line>`` clients verify it), and the three files land in the store immutably (first writer wins:
the same bytes again are a no-op, other bytes a 409). A record per module
(``.modvault/published/<escaped module>.json``) lists its published versions; ``PublishedSource``
answers ``list`` and ``@latest`` from it, first in the chains, so hosted modules need no VCS.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from modvault.errors import BadRequest, Conflict, Forbidden, ModvaultError, NotFound, SecurityError
from modvault.module import semver
from modvault.module.dirhash import hash_gomod
from modvault.module.errors import ModFileError, ModuleError, ZipError
from modvault.module.modfile import parse_module_path
from modvault.module.path import check, escape_path, escape_version, is_canonical_version
from modvault.module.zipcheck import ZipReader, check_zip
from modvault.storage import keys, records
from modvault.storage.base import Store
from modvault.supply.provenance import Verification
from modvault.supply.zipfacts import licence_of_zip

if TYPE_CHECKING:
    from modvault.service import ModuleService

LOG = logging.getLogger("modvault.published")
PUBLISHED_PREFIX = ".modvault/published/"
_CHUNK = 1024 * 1024


def record_key(module: str) -> str:
    return PUBLISHED_PREFIX + escape_path(module) + ".json"


def _versions_of(data: bytes | None) -> dict[str, dict[str, object]]:
    doc = json.loads(data or b"{}")
    versions = doc.get("versions", {})
    return versions if isinstance(versions, dict) else {}


async def read_record(store: Store, module: str) -> dict[str, dict[str, object]]:
    """version -> {"time", "by"} for a published module; {} if none."""
    return _versions_of(await records.read_record(store, record_key(module)))


async def is_published(store: Store, module: str) -> bool:
    try:
        key = record_key(module)
    except ModuleError:  # not a valid module path (vanity lookups try every prefix): not published
        return False
    return await store.stat(key) is not None


@dataclass(frozen=True, slots=True)
class PublishResult:
    module: str
    version: str
    created: bool  # False: identical bytes were already there (no-op)
    zip_h1: str
    mod_h1: str


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _inspect(path: Path, module: str, version: str) -> tuple[str, bytes, str]:
    """(zip h1, go.mod bytes, sha256) of an uploaded zip; ZipError/BadRequest when it breaks rules."""
    summary = check_zip(path, module, version)
    want = f"{module}@{version}/go.mod"
    with open(path, "rb") as fh:
        reader = ZipReader(fh)
        entry = next((e for e in reader.entries if e.name == want), None)
        if entry is None:
            raise BadRequest(f"{module}@{version}: the zip has no go.mod at its root")
        gomod = reader.read(entry)
    try:
        declared = parse_module_path(gomod)
    except ModFileError as exc:
        raise BadRequest(f"{module}@{version}: go.mod: {exc}") from None
    if declared != module:
        raise BadRequest(f"{module}@{version}: go.mod declares module {declared!r}")
    return summary.h1, gomod, _sha256_file(path)


def info_json(version: str, when: float, publisher: str, origin: dict[str, str]) -> bytes:
    stamp = datetime.datetime.fromtimestamp(when, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    doc = {"Version": version, "Time": stamp,
           "Origin": {"VCS": "modvault", "URL": f"publish:{publisher}", **origin}}
    return json.dumps(doc).encode()


async def publish(service: ModuleService, module: str, version: str, upload: Path, *,
                  publisher: str, origin: dict[str, str] | None = None) -> PublishResult:
    """Admit an uploaded zip as ``module@version`` (the caller checked the publisher's rights)."""
    try:
        check(module, version)
    except ModuleError as exc:
        raise BadRequest(f"cannot publish {module}@{version}: {exc}") from None
    if not is_canonical_version(version):
        raise BadRequest(f"cannot publish {module}@{version}: not a canonical semantic version")
    if not service.policy.is_private(module):
        raise Forbidden(f"cannot publish {module}: outside the private module patterns "
                        "(no one may shadow a public module)")
    try:
        zip_h1, gomod, sha = await asyncio.to_thread(_inspect, upload, module, version)
    except ZipError as exc:
        raise BadRequest(f"{module}@{version}: invalid module zip: {exc}") from None
    mod_h1 = hash_gomod(gomod)
    store = service.store
    emod, ever = escape_path(module), escape_version(version)
    zip_key = keys.artifact_key(emod, ever, "zip")
    existing = await store.stat(zip_key)
    if existing is not None:
        return await _compare(service, module, version, zip_key, sha, zip_h1, mod_h1)
    supply = service.supply
    if supply is not None:  # licence denylist, advisories (supply/)
        licence = await asyncio.to_thread(licence_of_zip, upload, module, version)
        supply.check_policy(module, version, licence)
    private = service.checksums.private
    proof: Verification | None = None
    if private is not None:
        try:
            record_id = await private.add(module, version, zip_h1, mod_h1)
            proof = Verification("private", database=private.name, record_id=record_id)
        except SecurityError:
            raise Conflict(f"{module}@{version} was recorded in the checksum database with "
                           "other content; a version is never rewritten") from None
    now = time.time()
    info = info_json(version, now, publisher, origin or {})
    _, written = await store.put_if_absent(zip_key, upload)
    if not written:
        return await _compare(service, module, version, zip_key, sha, zip_h1, mod_h1)
    await store.put_if_absent(keys.artifact_key(emod, ever, "mod"), gomod)
    await store.put_if_absent(keys.artifact_key(emod, ever, "info"), info)
    await _add_to_record(store, module, version, now, publisher)
    if supply is not None:
        try:  # from the upload itself: the same bytes, and a local file whatever the store
            await supply.record_upload(module, version, publisher=publisher,
                                       zip_path=upload, mod=gomod, verification=proof)
        except (ModvaultError, OSError) as exc:  # the version is stored; provenance is extra
            LOG.error("provenance of published %s@%s not recorded: %s", module, version, exc)
    await service.note_published(module, version)
    return PublishResult(module, version, True, zip_h1, mod_h1)


async def _compare(service: ModuleService, module: str, version: str, zip_key: str, sha: str,
                   zip_h1: str, mod_h1: str) -> PublishResult:
    body = await service.store.open(zip_key)
    if body is None:
        raise Conflict(f"{module}@{version} exists")
    h = hashlib.sha256()
    async for chunk in body.stream():
        h.update(chunk)
    if h.hexdigest() != sha:
        raise Conflict(f"{module}@{version} already exists with different content; versions are "
                       "immutable (publish a new version)")
    return PublishResult(module, version, False, zip_h1, mod_h1)


async def _add_to_record(store: Store, module: str, version: str, when: float,
                         publisher: str) -> None:
    """Add the version to the module's record by compare-and-swap (concurrent publishes and
    replicas never lose one another's versions)."""

    def add(old: bytes | None) -> tuple[bytes, None]:
        versions = _versions_of(old)
        versions[version] = {"time": when, "by": publisher}
        return json.dumps({"module": module, "versions": versions}, indent=1).encode(), None

    await records.update_record(store, record_key(module), add)


class PublishedSource:
    """list and @latest of published modules; NotFound (quickly) for every other module."""

    name = "published"
    local = True  # not a network source: readiness does not count it

    def __init__(self, store: Store) -> None:
        self.store = store

    async def _versions(self, module: str) -> list[str]:
        versions = list(await read_record(self.store, module))
        if not versions:
            raise NotFound(f"{module}: not published here")
        return versions

    async def list(self, module: str) -> list[str]:
        return await self._versions(module)

    async def latest(self, module: str) -> bytes:
        versions = await self._versions(module)
        ordered = semver.sort_versions(versions)
        releases = [v for v in ordered if not semver.prerelease(v)]
        best = (releases or ordered)[-1]
        return await self.info(module, best)

    async def info(self, module: str, version: str) -> bytes:
        key = keys.artifact_key(escape_path(module), escape_version(version), "info")
        got = await self.store.get(key)
        if got is None or not await is_published(self.store, module):
            raise NotFound(f"{module}@{version}: not published here")
        return got[0]

    async def mod(self, module: str, version: str) -> bytes:
        raise NotFound(f"{module}@{version}: not published here")

    async def zip(self, module: str, version: str, dest: Path) -> None:
        raise NotFound(f"{module}@{version}: not published here")

    async def probe(self) -> tuple[bool, str]:
        return True, "published modules"

    async def aclose(self) -> None:
        return None
