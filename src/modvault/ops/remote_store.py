"""``modvault ls`` and ``rm`` on a store without local files (``store = "s3"``): the same answers as on
the data directory, from one recursive listing of the bucket instead of a directory walk.

The access journal is each replica's own (under its data directory), so "last access" is this
machine's; ``gc`` ranks by it and therefore stays a filesystem-store command (on a bucket, use
lifecycle rules, or ``rm``).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from modvault.module.errors import ModuleError
from modvault.module.globs import match_prefix_patterns
from modvault.module.path import escape_path, unescape_path
from modvault.ops.inventory import PUBLISHED_PREFIX, SKIP_TOP, VersionRecord, versions_from_files
from modvault.policy import ModulePolicy
from modvault.storage import keys
from modvault.storage.base import ObjectInfo
from modvault.storage.s3 import S3Store


def _records(objects: list[ObjectInfo], policy: ModulePolicy, access: dict[str, float],
             pattern: str, only: str = "") -> list[VersionRecord]:
    published = {o.key[len(PUBLISHED_PREFIX):-len(".json")] for o in objects
                 if o.key.startswith(PUBLISHED_PREFIX) and o.key.endswith(".json")}
    by_module: dict[str, list[tuple[str, int, float]]] = defaultdict(list)
    for o in objects:
        emod, sep, name = o.key.rpartition("/@v/")
        if not sep or not emod or "/" in name or emod.split("/", 1)[0] in SKIP_TOP:
            continue
        if only and emod != only:
            continue
        by_module[emod].append((name, o.size, o.mtime))
    out: list[VersionRecord] = []
    for emod in sorted(by_module):
        try:
            module = unescape_path(emod)
        except ModuleError:
            continue
        if pattern and not match_prefix_patterns(pattern, module):
            continue
        out += versions_from_files(module, emod, by_module[emod], policy, access,
                                   published=emod in published)
    out.sort(key=lambda r: r.module)
    return out


def scan_remote(store: S3Store, *, policy: ModulePolicy, access: dict[str, float],
                pattern: str = "") -> list[VersionRecord]:
    """Every stored version in the bucket, sorted by module then semver. Blocking."""
    async def run() -> list[VersionRecord]:
        try:
            return _records(await store.walk(), policy, access, pattern)
        finally:
            await store.aclose()

    return asyncio.run(run())


def plan_remove(store: S3Store, module: str, version: str, policy: ModulePolicy
                ) -> tuple[list[VersionRecord], list[str], dict[str, int], bool]:
    """(versions, keys to delete, their sizes, whether the module is published). Blocking."""
    emod = escape_path(module)

    async def run() -> tuple[list[VersionRecord], list[str], dict[str, int], bool]:
        objects = await store.walk(f"{emod}/@v/")
        published = await store.stat(f"{PUBLISHED_PREFIX}{emod}.json") is not None
        records = [r for r in _records(objects, policy, {}, "", only=emod)
                   if not version or r.version == version]
        sizes = {o.key: o.size for o in objects}
        doomed = [k for r in records for k in r.store_keys()]
        if not version:
            doomed += [k for k in (keys.list_key(emod), keys.latest_key(emod)) if k in sizes]
            queries = await store.walk(f"{keys.QUERY_PREFIX}{emod}/@v/")
            doomed += [q.key for q in queries if q.key.endswith(".info")]
            sizes.update({q.key: q.size for q in queries})
        return records, doomed, sizes, published

    return asyncio.run(run())


def delete_keys(store: S3Store, doomed: list[str]) -> None:
    async def run() -> None:
        try:
            for key in doomed:
                await store.delete(key)
        finally:
            await store.aclose()

    asyncio.run(run())
