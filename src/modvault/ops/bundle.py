"""Air-gap bundles: ``modvault export`` writes a tar of the GOPROXY layout plus the checksum-database
answers and tiles that vouch for it; ``modvault import`` verifies and loads one (or a
``$GOMODCACHE/cache/download`` tree) into a store.

Bundle layout (a tar, gzip-compressed when the name ends in ``.gz``/``.tgz``)::

    modvault-bundle.json                 manifest: every version with its zip and go.mod h1 hashes
    <escaped module>/@v/<version>.info|.mod|.zip
    sumdb/<name>/lookup/<module>@<version> the database's signed answer for each public version
    sumdb/<name>/tile/...                 tiles that prove those answers are in its signed tree

Import verifies every version before storing anything of it: the zip against the module zip rules,
zip and go.mod h1 hashes against the manifest (or a GOMODCACHE ``.ziphash``) and, for public modules,
against the checksum database configured on the importing side (``sumdb``, its key, never the bundle's):
the lookup's signed tree head must verify with that key, the record must be proven in the tree from the
bundle's tiles, and the record's hashes must match. Anything that does not verify is refused and named.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import shutil
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from modvault.config import Settings, sumdb_settings
from modvault.errors import ModvaultError
from modvault.module import semver
from modvault.module.dirhash import hash_gomod, hash_zip
from modvault.module.errors import ModuleError
from modvault.module.modfile import parse_lax
from modvault.module.path import check, escape_path, escape_version
from modvault.module.zipcheck import check_zip
from modvault.ops.inventory import VersionRecord, scan_versions
from modvault.ops.targets import Target
from modvault.policy import ModulePolicy
from modvault.storage import keys
from modvault.storage.fs import FileStore, discard
from modvault.storage.workdir import WorkDir, default_work_dir
from modvault.sumdb.client import ChecksumVerifier
from modvault.sumdb.config import SumdbConfig, parse_sumdb
from modvault.sumdb.proxy import SumdbFetcher

MANIFEST = "modvault-bundle.json"
FORMAT = "modvault-bundle/1"
MAX_MEMBERS = 1_000_000


class BundleError(Exception):
    """The bundle cannot be written or read at all (one line)."""


# -- export ------------------------------------------------------------------------------------


@dataclass
class ExportReport:
    versions: list[dict[str, object]] = field(default_factory=list)
    sumdb: str | None = None
    sumdb_files: int = 0
    bytes: int = 0
    missing: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {"Versions": len(self.versions), "Sumdb": self.sumdb, "SumdbFiles": self.sumdb_files,
                "Bytes": self.bytes, "Missing": self.missing, "Items": self.versions}


def _resolve_in_store(root: Path, t: Target) -> str | None:
    """A canonical version for a target: itself, or for ``latest`` the highest stored release."""
    try:
        check(t.module, t.version)
        return t.version
    except ModuleError:
        pass
    if t.version != "latest":
        return None
    held = [r.version for r in scan_versions(root) if r.module == t.module]
    releases = [v for v in held if not semver.is_prerelease(v)] or held
    return semver.sort_versions(releases)[-1] if releases else None


def collect_graph(root: Path, targets: list[Target], *, transitive: bool = True,
                  ) -> tuple[list[Target], list[str]]:
    """Versions to export: the targets and (transitively) what their stored .mod files require."""
    seen: dict[Target, None] = {}
    missing: list[str] = []
    queue = list(targets)
    while queue:
        t = queue.pop(0)
        version = _resolve_in_store(root, t)
        if version is None:
            missing.append(f"{t}: no such version in the store")
            continue
        t = Target(t.module, version)
        if t in seen:
            continue
        mod = root / keys.artifact_key(escape_path(t.module), escape_version(version), "mod")
        try:
            data = mod.read_bytes()
        except OSError:
            missing.append(f"{t}: not in the store (prewarm it first)")
            continue
        seen[t] = None
        if transitive:
            try:
                queue += [Target(m, v) for m, v in parse_lax(data).requires]
            except ModuleError as exc:
                missing.append(f"{t}: go.mod: {exc}")
    return list(seen), missing


def export_bundle(settings: Settings, targets: list[Target], output: Path, *,
                  transitive: bool = True) -> ExportReport:
    """Write a bundle of ``targets`` (and their requirements) from the store. Blocking."""
    root = Path(settings.data_dir)
    versions, missing = collect_graph(root, targets, transitive=transitive)
    report = ExportReport(missing=missing)
    if missing:
        return report
    configs = [parse_sumdb(s) for s in sumdb_settings(settings)]
    db = configs[0].name if configs else None
    policy = ModulePolicy(settings.private, settings.noproxy, settings.nosumdb)
    files: list[tuple[str, Path]] = []
    for t in sorted(versions):
        emod, ev = escape_path(t.module), escape_version(t.version)
        item: dict[str, object] = {"Path": t.module, "Version": t.version}
        for ext in ("info", "mod", "zip"):
            key = keys.artifact_key(emod, ev, ext)
            if (root / key).is_file():
                files.append((key, root / key))
        item["GoMod"] = hash_gomod((root / keys.artifact_key(emod, ev, "mod")).read_bytes())
        zip_path = root / keys.artifact_key(emod, ev, "zip")
        item["Zip"] = hash_zip(zip_path) if zip_path.is_file() else None
        if db and not policy.is_nosumdb(t.module):
            lookup = f"sumdb/{db}/lookup/{emod}@{ev}"
            if (root / lookup).is_file():
                files.append((lookup, root / lookup))
                report.sumdb_files += 1
        report.versions.append(item)
    if db and report.sumdb_files:
        report.sumdb = db
        tiles = root / "sumdb" / db / "tile"
        for dirpath, _dirs, names in os.walk(tiles):
            for name in sorted(names):
                p = Path(dirpath) / name
                files.append((str(p.relative_to(root)), p))
                report.sumdb_files += 1
    manifest = json.dumps({"Format": FORMAT,
                           "Created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                           "Sumdb": report.sumdb, "Modules": report.versions}, indent=1).encode()
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.{uuid.uuid4().hex[:8]}")
    mode = "w:gz" if output.name.endswith((".gz", ".tgz")) else "w"
    try:
        with tarfile.open(tmp, mode, format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime, info.mode = len(manifest), 0, 0o644
            import io

            tar.addfile(info, io.BytesIO(manifest))
            for name, path in files:
                ti = tar.gettarinfo(str(path), arcname=name)
                ti.uid = ti.gid = 0
                ti.uname = ti.gname = ""
                ti.mode = 0o644
                with open(path, "rb") as fh:
                    tar.addfile(ti, fh)
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    report.bytes = output.stat().st_size
    return report


# -- import ------------------------------------------------------------------------------------


@dataclass
class ImportReport:
    added: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # "M@V: reason"
    verified_by: str = ""

    def to_json(self) -> dict[str, object]:
        return {"Added": self.added, "AlreadyPresent": self.present, "Refused": self.refused,
                "VerifiedBy": self.verified_by or None}


def _safe_extract(bundle: Path, dest: Path, max_file: int) -> None:
    """Extract regular files only, under dest, with bounded sizes; anything else is an error."""
    try:
        tar = tarfile.open(bundle, "r:*")  # noqa: SIM115 (closed by the with below)
    except (OSError, tarfile.TarError) as exc:
        raise BundleError(f"{bundle}: not a readable tar bundle: {exc}") from None
    with tar:
        count = 0
        for member in tar:
            count += 1
            if count > MAX_MEMBERS:
                raise BundleError(f"{bundle}: more than {MAX_MEMBERS} entries")
            name = member.name
            parts = name.split("/")
            if (name.startswith("/") or any(p in ("", ".", "..") for p in parts)
                    or "\x00" in name or parts[0] == ".modvault"):
                raise BundleError(f"{bundle}: refusing entry {name[:200]!r}")
            if member.isdir():
                continue
            if not member.isfile():
                raise BundleError(f"{bundle}: {name[:200]!r} is not a regular file")
            if member.size > max_file:
                raise BundleError(f"{bundle}: {name[:200]!r} is larger than {max_file} bytes")
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(member)
            assert src is not None
            with src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, 1024 * 1024)


@contextlib.contextmanager
def _staging(root: Path) -> Iterator[Path]:
    path = root / ".modvault" / "tmp" / f"import-{uuid.uuid4().hex}"
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _verifier_for(settings: Settings, staging: Path, db: str | None,
                  client: httpx.AsyncClient) -> ChecksumVerifier | None:
    """A verifier of the configured database reading only what the bundle carries (offline)."""
    configs: list[SumdbConfig] = [parse_sumdb(s) for s in sumdb_settings(settings)]
    for cfg in configs:
        if cfg.name == db:
            fetcher = SumdbFetcher(cfg, FileStore(staging), client, offline=True)
            return ChecksumVerifier(fetcher)
    return None


async def _verify_version(rec: VersionRecord, staging: Path, expect: dict[str, object] | None,
                          verifier: ChecksumVerifier | None, policy: ModulePolicy,
                          require_sumdb: bool) -> tuple[str | None, str | None]:
    """(zip h1, mod h1) after every check; raises ValueError with the reason on failure."""
    if "mod" not in rec.sizes:
        raise ValueError("no go.mod")
    mod_h1 = hash_gomod((staging / rec.key("mod")).read_bytes())
    zip_h1 = None
    if "zip" in rec.sizes:
        zpath = staging / rec.key("zip")
        try:
            zip_h1 = (await asyncio.to_thread(check_zip, zpath, rec.module, rec.version)).h1
        except ModuleError as exc:
            raise ValueError(f"zip: {exc}") from None
        ziphash = zpath.with_suffix(".ziphash")
        if ziphash.is_file() and ziphash.read_text().strip() != zip_h1:
            raise ValueError(f"zip: hash {zip_h1} differs from its .ziphash")
    if "info" in rec.sizes:
        try:
            info = json.loads((staging / rec.key("info")).read_bytes())
            if info.get("Version") != rec.version:
                raise ValueError
        except (ValueError, AttributeError):
            raise ValueError(".info: not a version document for this version") from None
    if expect is not None:
        if expect.get("GoMod") != mod_h1:
            raise ValueError(f"go.mod: hash {mod_h1} differs from the bundle's {expect.get('GoMod')}")
        if zip_h1 is not None and expect.get("Zip") != zip_h1:
            raise ValueError(f"zip: hash {zip_h1} differs from the bundle's {expect.get('Zip')}")
    if policy.is_nosumdb(rec.module):
        return zip_h1, mod_h1  # private: no public record exists; the manifest vouches
    if verifier is None:
        if require_sumdb:
            raise ValueError("no checksum-database record to verify against")
        return zip_h1, mod_h1
    try:
        await verifier.verify(rec.module, rec.version, zip_h1=zip_h1, mod_h1=mod_h1)
    except ModvaultError as exc:
        raise ValueError(exc.message) from None
    return zip_h1, mod_h1


def import_bundle(settings: Settings, source: Path, *, require_sumdb: bool = True) -> ImportReport:
    """Verify and load a bundle (tar) or a GOMODCACHE/cache/download tree. Blocking."""
    root = Path(settings.data_dir)
    root.mkdir(parents=True, exist_ok=True)
    from modvault.wiring import build_store

    store = build_store(settings)  # the data directory, or the bucket (store = "s3")
    report = ImportReport()
    policy = ModulePolicy(settings.private, settings.noproxy, settings.nosumdb)
    with _staging(root) as staging:
        if source.is_dir():
            tree = source
        else:
            _safe_extract(source, staging, settings.max_zip_bytes)
            tree = staging
        manifest: dict[str, object] | None = None
        if (tree / MANIFEST).is_file():
            try:
                manifest = json.loads((tree / MANIFEST).read_bytes())
                if not isinstance(manifest, dict) or manifest.get("Format") != FORMAT:
                    raise ValueError("unknown format")
            except ValueError as exc:
                raise BundleError(f"{source}: bad {MANIFEST}: {exc}") from None
        expected: dict[tuple[str, str], dict[str, object]] = {}
        db: str | None = None
        if manifest is not None:
            for item in manifest.get("Modules") or []:  # type: ignore[attr-defined]
                if isinstance(item, dict):
                    expected[(str(item.get("Path")), str(item.get("Version")))] = item
            db = manifest.get("Sumdb") if isinstance(manifest.get("Sumdb"), str) else None  # type: ignore[assignment]
        records = scan_versions(tree)
        if manifest is not None:
            held = {(r.module, r.version) for r in records}
            report.refused += [f"{m}@{v}: listed in the manifest but missing from the bundle"
                               for (m, v) in expected if (m, v) not in held]

        clients: list[httpx.AsyncClient] = []

        async def verify_all() -> list[tuple[VersionRecord, str | None]]:
            async with httpx.AsyncClient() as client:
                verifier = _verifier_for(settings, tree, db, client) if db else None
                if verifier is not None:
                    report.verified_by = f"{db} (records and tiles in the bundle)"
                elif settings.sumdb_verify and not settings.offline:
                    # No records in the bundle (a GOMODCACHE tree): ask the database itself.
                    from modvault.sources.upstream import make_client
                    from modvault.wiring import build_checksums, upstream_limits

                    net = make_client(upstream_limits(settings))
                    clients.append(net)
                    verifier = build_checksums(settings, store, net).verifier
                    if verifier is not None:
                        report.verified_by = f"{verifier.name} (online)"
                out: list[tuple[VersionRecord, str | None]] = []
                for rec in records:
                    exp = expected.get((rec.module, rec.version)) if manifest is not None else None
                    if manifest is not None and exp is None:
                        out.append((rec, "not listed in the bundle's manifest"))
                        continue
                    try:
                        await _verify_version(rec, tree, exp, verifier, policy, require_sumdb)
                        out.append((rec, None))
                    except ValueError as exc:
                        out.append((rec, str(exc)))
                for c in clients:
                    await c.aclose()
                return out

        work = WorkDir(default_work_dir(str(root), ""))

        async def put_copy(key: str, src: Path) -> bool:
            """A copy of *src* under *key* unless the store has it (first writer wins)."""
            tmp = work.temp_path("import-")
            await asyncio.to_thread(shutil.copyfile, src, tmp)
            try:
                _, written = await store.put_if_absent(key, tmp)
            finally:
                discard(tmp)
            return written

        async def store_all() -> None:
            for rec, problem in await verify_all():
                name = f"{rec.module}@{rec.version}"
                if problem is not None:
                    report.refused.append(f"{name}: {problem}")
                    continue
                wrote = False
                for ext in ("info", "mod", "zip"):
                    if ext in rec.sizes:
                        wrote = await put_copy(rec.key(ext), tree / rec.key(ext)) or wrote
                (report.added if wrote else report.present).append(name)
            if db:
                # The database's answers and tiles, so the offline site can serve /sumdb/ to clients.
                sdir = tree / "sumdb" / db
                for dirpath, _dirs, names in os.walk(sdir):
                    for fname in names:
                        p = Path(dirpath) / fname
                        await put_copy(str(p.relative_to(tree)), p)

        asyncio.run(store_all())
    return report
