"""``modvault ls | rm | gc``: inventory and removal on the data directory ``serve`` would use.

Every command prints a short human summary (``--json`` for machines) and exits 0 on success, 1 on
failure, 2 on a usage or configuration error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from modvault.config import ConfigError, Settings, load_settings
from modvault.module.errors import ModuleError
from modvault.module.path import check, check_path, escape_path
from modvault.ops import gc
from modvault.ops.inventory import VersionRecord, module_extra_keys, scan_versions
from modvault.ops.journal import AccessJournal, read_access_times
from modvault.ops.units import format_bytes, parse_duration, parse_size
from modvault.policy import ModulePolicy
from modvault.storage import keys

if TYPE_CHECKING:
    from modvault.storage.s3 import S3Store


class OpsError(Exception):
    """A command failed; the message is one line for the operator."""


def add_store_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="TOML settings file (MODVAULT_CONFIG)")
    p.add_argument("--data-dir", metavar="DIR", help="modvault's data directory (MODVAULT_DATA_DIR)")
    p.add_argument("--json", action="store_true", help="print JSON for machines")


def store_settings(args: argparse.Namespace) -> Settings:
    """Settings as `modvault serve` would resolve them: flag, environment, config file, default."""
    return load_settings(config_file=args.config, flags={"data_dir": args.data_dir})


def policy_of(settings: Settings) -> ModulePolicy:
    return ModulePolicy(settings.private, settings.noproxy, settings.nosumdb)


def _when(t: float) -> str:
    if not t:
        return "-"
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M")


def add_store_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("ls", help="list cached modules and versions")
    p.add_argument("pattern", nargs="?", default="",
                   help="GOPRIVATE-style glob list of module paths, e.g. 'github.com/acme/*'")
    add_store_arguments(p)
    p.set_defaults(ops_handler=cmd_ls)

    p = sub.add_parser("rm", help="remove the cached copy of a public module (or one version)")
    p.add_argument("target", metavar="MODULE[@VERSION]")
    p.add_argument("--dry-run", action="store_true", help="say what would be removed")
    add_store_arguments(p)
    p.set_defaults(ops_handler=cmd_rm)

    p = sub.add_parser("gc", help="remove least recently used versions and idle git mirrors")
    p.add_argument("--max-bytes", metavar="SIZE", help="shrink the store to SIZE (10GiB, 500M, ...)")
    p.add_argument("--unused-for", metavar="DURATION", help="remove versions unused for DURATION (30d)")
    p.add_argument("--dry-run", action="store_true", help="say what would be removed")
    add_store_arguments(p)
    p.set_defaults(ops_handler=cmd_gc)


def run_ops_command(args: argparse.Namespace, out: TextIO = sys.stdout,
                    err: TextIO = sys.stderr) -> int:
    try:
        code: int = args.ops_handler(args, out, err)
        return code
    except ConfigError as exc:
        print(f"modvault {args.command}: configuration error: {exc}", file=err)
        return 2
    except OpsError as exc:
        print(f"modvault {args.command}: {exc}", file=err)
        return 1
    except OSError as exc:
        print(f"modvault {args.command}: {exc.filename or ''}: {exc.strerror}", file=err)
        return 1


def _existing_data_dir(settings: Settings) -> Path:
    root = Path(settings.data_dir)
    if not root.is_dir():
        raise OpsError(f"data directory {root} does not exist")
    return root


# -- ls --------------------------------------------------------------------------------------

def _remote_store(settings: Settings) -> S3Store | None:
    """The bucket, when the settings name one (ops/remote_store.py); None for the data directory."""
    if settings.store != "s3":
        return None
    from modvault.storage.s3 import S3Store
    from modvault.wiring import build_store

    store = build_store(settings)
    assert isinstance(store, S3Store)
    return store


def _fs_only(settings: Settings, command: str) -> None:
    if settings.store != "fs":
        raise OpsError(f"{command} works on the filesystem store only (store = {settings.store!r}); "
                       "on a bucket use lifecycle rules, `modvault ls` and `modvault rm`")


def cmd_ls(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    settings = store_settings(args)
    remote = _remote_store(settings)
    if remote is not None:
        from modvault.ops.remote_store import scan_remote

        root = Path(settings.data_dir)
        access = read_access_times(root) if root.is_dir() else {}
        records = scan_remote(remote, policy=policy_of(settings), access=access, pattern=args.pattern)
    else:
        root = _existing_data_dir(settings)
        records = scan_versions(root, policy=policy_of(settings), access=read_access_times(root),
                                pattern=args.pattern, read_origin=True)
    total = sum(r.bytes for r in records)
    modules = len({r.module for r in records})
    if args.json:
        json.dump({"Modules": modules, "Versions": len(records), "Bytes": total,
                   "Items": [r.to_json() for r in records]}, out, indent=1)
        out.write("\n")
        return 0
    if records:
        width = max(len(r.module) for r in records)
        vwidth = max(len(r.version) for r in records)
        print(f"{'MODULE':<{width}}  {'VERSION':<{vwidth}}  {'SIZE':>10}  {'SOURCE':<7}  LAST ACCESS",
              file=out)
        for r in records:
            print(f"{r.module:<{width}}  {r.version:<{vwidth}}  {format_bytes(r.bytes):>10}  "
                  f"{r.source:<7}  {_when(r.last_access)}", file=out)
    print(f"{modules} modules, {len(records)} versions, {format_bytes(total)}"
          + (f" matching {args.pattern}" if args.pattern else ""), file=err)
    return 0


# -- rm --------------------------------------------------------------------------------------

def _parse_target(text: str) -> tuple[str, str]:
    module, _, version = text.partition("@")
    try:
        if version:
            check(module, version)
        else:
            check_path(module)
    except ModuleError as exc:
        raise OpsError(f"invalid module{'@version' if version else ''} {text!r}: {exc}") from None
    return module, version


def audit(settings: Settings, action: str, target: str, **fields: object) -> None:
    """One line in the audit log (observability/audit.py) per administrative change, naming the
    operating-system user who ran it (never a secret)."""
    from modvault.observability.audit import AuditLog, audit_path

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    log = AuditLog(audit_path(settings.audit_log, settings.data_dir), settings.audit_log_max_bytes,
                   settings.audit_log_keep)
    log.record(action, result="ok", identity=f"cli:{user}", action=f"modvault {action}",
               target=target, extra=fields)


def cmd_rm(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    settings = store_settings(args)
    if settings.store == "s3":
        return _rm_remote(args, settings, out)
    root = _existing_data_dir(settings)
    module, version = _parse_target(args.target)
    policy = policy_of(settings)
    if (policy.is_private(module) or policy.is_nosumdb(module)
            or (root / ".modvault" / "published" / (escape_path(module) + ".json")).is_file()):
        raise OpsError(f"{module} is a private or published module: its stored copy may be the only "
                       "one and its record is in the private checksum database; refusing to remove it")
    emod = escape_path(module)
    records = [r for r in scan_versions(root, policy=policy) if r.module == module
               and (not version or r.version == version)]
    doomed = [k for r in records for k in r.store_keys()]
    if not version:
        doomed += module_extra_keys(root, emod)
        qdir = root / keys.QUERY_PREFIX / emod / "@v"
        if qdir.is_dir():
            doomed += [f"{keys.QUERY_PREFIX}{emod}/@v/{n}" for n in sorted(os.listdir(qdir))
                       if n.endswith(".info")]
    if not doomed:
        what = f"{module}@{version}" if version else module
        raise OpsError(f"{what} is not in the store")
    freed = 0
    for key in doomed:
        path = root / key
        try:
            size = path.stat().st_size
            if not args.dry_run:
                path.unlink()
            freed += size
        except FileNotFoundError:
            continue
    if not args.dry_run:
        AccessJournal(root).compact(forget=doomed)
        _removed(settings, module, version, doomed, freed)
    return _rm_report(args, out, module, version, records, doomed, freed)


def _removed(settings: Settings, module: str, version: str, doomed: list[str], freed: int) -> None:
    """After a removal: tell running servers (their memory tiers), and the audit log."""
    from modvault.cache.coordination.announce import announce_sync
    from modvault.cache.coordination.state import Change

    announce_sync(settings, Change("remove", module, version))
    audit(settings, "rm", f"{module}@{version}" if version else module, files=len(doomed),
          bytes=freed)


def _rm_remote(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    from modvault.ops.remote_store import delete_keys, plan_remove

    module, version = _parse_target(args.target)
    policy = policy_of(settings)
    store = _remote_store(settings)
    assert store is not None
    records, doomed, sizes, published = plan_remove(store, module, version, policy)
    if policy.is_private(module) or policy.is_nosumdb(module) or published:
        raise OpsError(f"{module} is a private or published module: its stored copy may be the only "
                       "one and its record is in the private checksum database; refusing to remove it")
    if not doomed:
        what = f"{module}@{version}" if version else module
        raise OpsError(f"{what} is not in the store")
    freed = sum(sizes.get(k, 0) for k in doomed)
    if not args.dry_run:
        delete_keys(store, doomed)
        root = Path(settings.data_dir)
        if root.is_dir():
            AccessJournal(root).compact(forget=doomed)
        _removed(settings, module, version, doomed, freed)
    return _rm_report(args, out, module, version, records, doomed, freed)


def _rm_report(args: argparse.Namespace, out: TextIO, module: str, version: str,
               records: list[VersionRecord], doomed: list[str], freed: int) -> int:
    result = {"Path": module, "Version": version or None, "DryRun": args.dry_run,
              "Versions": [r.version for r in records], "Files": len(doomed), "FreedBytes": freed}
    if args.json:
        json.dump(result, out)
        out.write("\n")
    else:
        verb = "would remove" if args.dry_run else "removed"
        print(f"{verb} {len(records)} version(s) of {module}"
              + (f"@{version}" if version else "") + f" ({len(doomed)} files, {format_bytes(freed)}); "
              "the next request fetches it again", file=out)
    return 0


# -- gc --------------------------------------------------------------------------------------

def gc_limits(max_bytes: str | None, unused_for: str | None) -> tuple[int | None, float | None]:
    try:
        size = parse_size(max_bytes) if max_bytes else None
        age = parse_duration(unused_for) if unused_for else None
    except ValueError as exc:
        raise OpsError(str(exc)) from None
    return size, age


def cmd_gc(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    settings = store_settings(args)
    _fs_only(settings, "gc")
    root = _existing_data_dir(settings)
    max_bytes, unused_for = gc_limits(args.max_bytes, args.unused_for)
    if max_bytes is None and unused_for is None:
        raise OpsError("give --max-bytes SIZE and/or --unused-for DURATION")
    started = time.monotonic()
    plan = gc.plan_gc(root, max_bytes=max_bytes, unused_for=unused_for, policy=policy_of(settings),
                      git_dir=gc.mirrors_dir(settings))
    if args.dry_run:
        result = gc.GcResult(plan, dry_run=True)
    else:
        result = gc.execute_gc(root, plan)
        if result.removed_versions:  # running servers forget what they cached of them
            from modvault.cache.coordination.announce import announce_sync
            from modvault.cache.coordination.state import Change

            announce_sync(settings, Change("remove", ""))
        audit(settings, "gc", "", removed_versions=len(result.removed_versions),
              removed_mirrors=len(result.removed_mirrors), freed_bytes=result.freed_bytes)
    doc = result.to_json()
    if args.json:
        json.dump(doc, out)
        out.write("\n")
    else:
        removed = doc["Removed"]
        assert isinstance(removed, list)
        for item in removed:
            print(f"{'would remove' if args.dry_run else 'removed'} {item['Path']}@{item['Version']} "
                  f"({format_bytes(item['Bytes'])})", file=out)
        mirrors = doc["RemovedMirrors"]
        assert isinstance(mirrors, list)
        freed = doc["FreedBytes"]
        assert isinstance(freed, int)
        print(f"{'would free' if args.dry_run else 'freed'} {format_bytes(freed)}: "
              f"{len(removed)} versions, {len(mirrors)} git mirrors; store was "
              f"{format_bytes(plan.store_bytes)} ({time.monotonic() - started:.1f}s)", file=out)
    for line in result.errors:
        print(f"modvault gc: {line}", file=err)
    return 1 if result.errors else 0


# -- export / import -------------------------------------------------------------------------

def add_bundle_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("export", help="write an air-gap bundle of modules and their requirements")
    p.add_argument("targets", nargs="+", metavar="TARGET",
                   help="module@version, go.mod, go.sum, go.work, a file of lines, or -")
    p.add_argument("--output", "-o", required=True, metavar="FILE",
                   help="bundle to write (.tar, or .tar.gz/.tgz for gzip)")
    p.add_argument("--server", metavar="URL",
                   help="prewarm the targets through this running modvault first (MODVAULT_SERVER)")
    p.add_argument("--no-deps", action="store_true", help="do not follow requirements")
    add_store_arguments(p)
    p.set_defaults(ops_handler=cmd_export)

    p = sub.add_parser("import", help="verify and load a bundle or a $GOMODCACHE/cache/download tree")
    p.add_argument("bundle", metavar="BUNDLE", help="a bundle from `modvault export`, or a directory")
    p.add_argument("--sumdb", metavar="'NAME+HASH+KEY'", action="append",
                   help="checksum database to verify against (default: the sumdb setting)")
    p.add_argument("--no-sumdb-check", action="store_true",
                   help="accept versions no checksum database vouches for (hashes are still checked)")
    add_store_arguments(p)
    p.set_defaults(ops_handler=cmd_import)


def cmd_export(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from modvault.ops.bundle import export_bundle
    from modvault.ops.prewarm import load_targets
    from modvault.ops.targets import TargetError

    settings = store_settings(args)
    if settings.store == "memory":
        _fs_only(settings, "export")
    try:
        targets = load_targets(args.targets, sys.stdin)
    except TargetError as exc:
        raise OpsError(str(exc)) from None
    if args.server or os.environ.get("MODVAULT_SERVER"):
        import asyncio

        from modvault.ops.client_cli import server_url
        from modvault.ops.prewarm import Prewarmer, client_for

        async def warm() -> list[str]:
            async with client_for(server_url(args)) as client:
                report = await Prewarmer(client, transitive=not args.no_deps).run(targets)
            return [f"{o.target}: {o.error}" for o in report.failed]

        failed = asyncio.run(warm())
        if failed:
            raise OpsError("prewarm failed: " + "; ".join(failed[:5]))
    if settings.store == "s3":
        from modvault.ops.remote_store import export_remote

        report = export_remote(settings, targets, Path(args.output), transitive=not args.no_deps)
    else:
        _existing_data_dir(settings)
        report = export_bundle(settings, targets, Path(args.output), transitive=not args.no_deps)
    if report.missing:
        raise OpsError("cannot export: " + "; ".join(report.missing[:10]))
    audit(settings, "export", str(args.output), versions=len(report.versions))
    if args.json:
        json.dump(report.to_json(), out)
        out.write("\n")
    else:
        print(f"wrote {args.output}: {len(report.versions)} module versions, "
              f"{report.sumdb_files} checksum-database files"
              + (f" ({report.sumdb})" if report.sumdb else " (no checksum-database records)")
              + f", {format_bytes(report.bytes)}", file=out)
    return 0


def cmd_import(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from modvault.ops.bundle import BundleError, import_bundle

    flags: dict[str, object] = {"data_dir": args.data_dir}
    if args.sumdb:
        flags["sumdb"] = args.sumdb
    settings = load_settings(config_file=args.config, flags=flags)
    source = Path(args.bundle)
    if not source.exists():
        raise OpsError(f"{source}: no such file or directory")
    try:
        report = import_bundle(settings, source, require_sumdb=not args.no_sumdb_check)
    except BundleError as exc:
        raise OpsError(str(exc)) from None
    audit(settings, "import", str(source), added=len(report.added), refused=len(report.refused))
    if args.json:
        json.dump(report.to_json(), out)
        out.write("\n")
    else:
        for name in report.added:
            print(f"added {name}", file=out)
        for line in report.refused:
            print(f"REFUSED {line}", file=out)
        print(f"imported {len(report.added)} module versions ({len(report.present)} already present, "
              f"{len(report.refused)} refused); verified against "
              f"{report.verified_by or 'bundle hashes only (no checksum database)'}", file=out)
    return 1 if report.refused else 0
