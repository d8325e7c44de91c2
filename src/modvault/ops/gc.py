"""Garbage collection: remove the least recently used versions (and idle git mirrors) of a store.

Rules (issue 11):
- versions unused for ``unused_for`` go first; then, while the store is larger than ``max_bytes``,
  the least recently used of what is left (last access from the journal, else when stored);
- never a private module (``private``/``nosumdb``: its record is in the private checksum database and a
  published one has no other copy), never anything outside the GOPROXY artifact files and direct mode's
  mirrors (blocked-version records, checksum-database state, keys and journals are never touched);
- never anything in use: nothing used within ``GRACE_SECONDS`` (the journal is flushed every few
  seconds, so this covers requests in other processes), nothing the caller says is in flight, and a
  mirror only while its lock is free. A response already streaming keeps its open file (POSIX unlink).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from modvault.config import Settings
from modvault.ops.inventory import VersionRecord, scan_versions, totals
from modvault.ops.journal import AccessJournal, read_access_times
from modvault.policy import ModulePolicy
from modvault.storage.workdir import default_work_dir

VCS_GIT_DIR = ".modvault/vcs/git"
STATS_FILE = ".modvault/gc/stats.json"
GRACE_SECONDS = 60.0


@dataclass
class Mirror:
    path: Path
    bytes: int
    last_used: float


@dataclass
class GcPlan:
    versions: list[VersionRecord] = field(default_factory=list)
    mirrors: list[Mirror] = field(default_factory=list)
    store_bytes: int = 0  # before

    @property
    def freed_bytes(self) -> int:
        return sum(v.bytes for v in self.versions) + sum(m.bytes for m in self.mirrors)


@dataclass
class GcResult:
    plan: GcPlan
    dry_run: bool
    removed_versions: list[VersionRecord] = field(default_factory=list)
    removed_mirrors: list[Mirror] = field(default_factory=list)
    freed_bytes: int = 0
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        versions = self.plan.versions if self.dry_run else self.removed_versions
        mirrors = self.plan.mirrors if self.dry_run else self.removed_mirrors
        return {
            "DryRun": self.dry_run,
            "StoreBytesBefore": self.plan.store_bytes,
            "FreedBytes": self.plan.freed_bytes if self.dry_run else self.freed_bytes,
            "Removed": [{"Path": v.module, "Version": v.version, "Bytes": v.bytes} for v in versions],
            "RemovedMirrors": [{"Dir": m.path.name, "Bytes": m.bytes} for m in mirrors],
            "Errors": self.errors,
        }


def _du(path: Path) -> tuple[int, float]:
    """(bytes, newest mtime) of a directory tree."""
    total, newest = 0, 0.0
    for dirpath, _dirnames, filenames in os.walk(path):
        with contextlib.suppress(OSError):
            newest = max(newest, os.stat(dirpath).st_mtime)
        for name in filenames:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(dirpath, name))
                total += st.st_size
                newest = max(newest, st.st_mtime)
    return total, newest


def mirrors_dir(settings: Settings) -> Path:
    """Where direct mode keeps its bare mirrors: ``vcs/git`` in the work directory (``work_dir``,
    by default ``<data_dir>/.modvault``), resolved as wiring.py resolves it for GitSource."""
    return default_work_dir(settings.data_dir, settings.work_dir) / "vcs" / "git"


def scan_mirrors(data_dir: Path, git_dir: Path | None = None) -> list[Mirror]:
    """Direct mode's bare mirrors with their size and the last time git wrote to them.

    ``git_dir`` is :func:`mirrors_dir` of the settings; without it, the default work directory."""
    root = git_dir if git_dir is not None else data_dir / VCS_GIT_DIR
    out: list[Mirror] = []
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return out
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
            continue
        size, newest = _du(Path(entry.path))
        out.append(Mirror(Path(entry.path), size, newest))
    return out


def plan_gc(data_dir: Path, *, max_bytes: int | None, unused_for: float | None,
            policy: ModulePolicy, now: float | None = None,
            in_use: Callable[[str], bool] = lambda key: False,
            access: dict[str, float] | None = None, git_dir: Path | None = None) -> GcPlan:
    """Choose what to remove; nothing is touched. Blocking."""
    now = time.time() if now is None else now
    if access is None:
        access = read_access_times(data_dir)
    records = scan_versions(data_dir, policy=policy, access=access)
    mirrors = scan_mirrors(data_dir, git_dir)
    plan = GcPlan(store_bytes=totals(records, [(str(m.path), m.bytes, m.last_used) for m in mirrors])
                  .total_bytes)
    grace_line = now - GRACE_SECONDS

    def removable_version(r: VersionRecord) -> bool:
        return (not r.private and r.last_used < grace_line
                and not any(in_use(k) for k in r.store_keys()))

    items: list[tuple[float, VersionRecord | Mirror]] = [
        (r.last_used, r) for r in records if removable_version(r)]
    items += [(m.last_used, m) for m in mirrors if m.last_used < grace_line]
    items.sort(key=lambda item: item[0])
    chosen: list[VersionRecord | Mirror] = []
    size = plan.store_bytes
    for last_used, item in items:
        too_old = unused_for is not None and last_used < now - unused_for
        too_big = max_bytes is not None and size > max_bytes
        if not (too_old or too_big):
            break  # oldest first: nothing later is older, and the size only shrinks
        chosen.append(item)
        size -= item.bytes
    plan.versions = [c for c in chosen if isinstance(c, VersionRecord)]
    plan.mirrors = [c for c in chosen if isinstance(c, Mirror)]
    return plan


def execute_gc(data_dir: Path, plan: GcPlan, *,
               in_use: Callable[[str], bool] = lambda key: False) -> GcResult:
    """Remove what the plan chose (re-checking in-flight keys), record stats. Blocking."""
    result = GcResult(plan, dry_run=False)
    removed_keys: list[str] = []
    for rec in plan.versions:
        keys = rec.store_keys()
        if any(in_use(k) for k in keys):
            continue
        freed = 0
        # .info last: while any file remains the version is still listed as held.
        for ext in sorted(rec.sizes, key=lambda e: e == "info"):
            try:
                os.unlink(data_dir / rec.key(ext))
                freed += rec.sizes[ext]
            except FileNotFoundError:
                pass
            except OSError as exc:
                result.errors.append(f"{rec.key(ext)}: {exc.strerror}")
        removed_keys += keys
        result.removed_versions.append(rec)
        result.freed_bytes += freed
    for mirror in plan.mirrors:
        if _remove_mirror(mirror.path):
            result.removed_mirrors.append(mirror)
            result.freed_bytes += mirror.bytes
    if removed_keys:
        AccessJournal(data_dir).compact(forget=removed_keys)
    record_stats(data_dir, result.freed_bytes, len(result.removed_versions))
    return result


def _remove_mirror(path: Path) -> bool:
    """Remove a mirror only while nobody holds its lock (GitMirror.sync takes the same flock)."""
    lock = path.parent / f"{path.name}.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        # Rename first: a half-deleted mirror is never seen under its own name.
        doomed = path.parent / f".gc-{uuid.uuid4().hex}"
        try:
            os.rename(path, doomed)
        except FileNotFoundError:
            return False
        shutil.rmtree(doomed, ignore_errors=True)
        return True
    finally:
        os.close(fd)


def read_stats(data_dir: Path) -> dict[str, float]:
    try:
        data = json.loads((data_dir / STATS_FILE).read_text())
        return {k: float(v) for k, v in data.items() if isinstance(v, int | float)}
    except (OSError, ValueError, AttributeError):
        return {}


def record_stats(data_dir: Path, freed: int, versions: int) -> None:
    """Counters kept across processes (CLI and background runs) for /metrics."""
    path = data_dir / STATS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.parent / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        stats = read_stats(data_dir)
        stats["runs"] = stats.get("runs", 0) + 1
        stats["freed_bytes"] = stats.get("freed_bytes", 0) + freed
        stats["removed_versions"] = stats.get("removed_versions", 0) + versions
        stats["last_run"] = time.time()
        tmp = path.parent / f".stats-{uuid.uuid4().hex}"
        tmp.write_text(json.dumps(stats))
        os.replace(tmp, path)
    finally:
        os.close(fd)
