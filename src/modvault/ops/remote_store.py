"""``modvault ls``, ``rm`` and ``export`` on a store without local files (``store = "s3"``): the same
answers as on the data directory, from one recursive listing of the bucket instead of a directory
walk.

``export`` stages what it needs in the work directory and writes the bundle from there. The access
journal is each replica's own (under its data directory), so "last access" is this machine's;
``gc`` ranks by it and therefore stays a filesystem-store command (on a bucket, use lifecycle rules,
or ``rm``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import tempfile
from collections import defaultdict
from pathlib import Path

from modvault.config import Settings
from modvault.module.errors import ModuleError
from modvault.module.globs import match_prefix_patterns
from modvault.module.path import escape_path, escape_version, unescape_path
from modvault.ops.bundle import ExportReport, collect_graph, export_bundle
from modvault.ops.inventory import PUBLISHED_PREFIX, SKIP_TOP, VersionRecord, versions_from_files
from modvault.ops.targets import Target
from modvault.policy import ModulePolicy
from modvault.storage import keys
from modvault.storage.base import ObjectInfo
from modvault.storage.s3 import S3Store
from modvault.storage.workdir import default_work_dir


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


async def _copy_to(store: S3Store, key: str, dest: Path) -> None:
    """One object into *dest* (streamed, never whole in memory)."""
    body = await store.open(key)
    if body is None:
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    with open(tmp, "wb") as fh:
        async for chunk in body.stream():
            await asyncio.to_thread(fh.write, chunk)
    os.replace(tmp, dest)


def export_remote(settings: Settings, targets: list[Target], output: Path, *,
                  transitive: bool = True) -> ExportReport:
    """``modvault export`` from the bucket: its .info/.mod files and checksum-database answers are
    copied to a staging directory in the work directory (small files), the graph is resolved
    there, the zips of the chosen versions follow, and the bundle is written from the staging copy
    as from a data directory. Blocking."""
    store = _bucket(settings)
    work = Path(default_work_dir(settings.data_dir, settings.work_dir))
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="export-", dir=work) as tmp:
        staging = Path(tmp)

        async def small() -> None:
            wanted = [o.key for o in await store.walk()
                      if (o.key.endswith((".info", ".mod")) and "/@v/" in o.key
                          and o.key.split("/", 1)[0] not in SKIP_TOP)
                      or o.key.startswith("sumdb/")]
            for start in range(0, len(wanted), 32):
                await asyncio.gather(*(_copy_to(store, k, staging / k) for k in wanted[start:start + 32]))

        async def zips(versions: list[Target]) -> None:
            for t in versions:
                key = keys.artifact_key(escape_path(t.module), escape_version(t.version), "zip")
                await _copy_to(store, key, staging / key)
            await store.aclose()

        asyncio.run(small())
        versions, missing = collect_graph(staging, targets, transitive=transitive)
        if missing:
            return ExportReport(missing=missing)
        asyncio.run(zips(versions))
        local = dataclasses.replace(settings, data_dir=str(staging), store="fs")
        return export_bundle(local, targets, output, transitive=transitive)


def _bucket(settings: Settings) -> S3Store:
    from modvault.wiring import build_store

    store = build_store(settings)
    assert isinstance(store, S3Store)
    return store
