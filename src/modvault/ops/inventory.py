"""What the store holds: modules, versions, their files, sizes, and when each was stored and last used.

A walk of the GOPROXY layout under the data directory (``<escaped module>/@v/<escaped version>.<ext>``),
skipping modvault's own ``.modvault/`` and the checksum-database mirror ``sumdb/``. Blocking.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from modvault.module import semver
from modvault.module.errors import ModuleError
from modvault.module.globs import match_prefix_patterns
from modvault.module.path import check, unescape_path, unescape_version
from modvault.policy import ModulePolicy
from modvault.storage import keys

ARTIFACT_EXTS = ("info", "mod", "zip")
SKIP_TOP = {".modvault", "sumdb"}


@dataclass
class VersionRecord:
    """One stored version of one module."""

    module: str
    version: str
    escaped_module: str
    escaped_version: str
    sizes: dict[str, int] = field(default_factory=dict)  # ext -> bytes
    stored: float = 0.0  # earliest mtime of its files: when it was first stored
    last_access: float = 0.0  # from the access journal; 0 when never recorded
    private: bool = False  # matches private/nosumdb, or was published here (never collected)
    published: bool = False
    origin: str = ""  # VCS URL from the .info's Origin, when the source said

    @property
    def bytes(self) -> int:
        return sum(self.sizes.values())

    @property
    def last_used(self) -> float:
        """What LRU ranks by: the last recorded access, or when it was stored."""
        return max(self.last_access, self.stored)

    def key(self, ext: str) -> str:
        return keys.artifact_key(self.escaped_module, self.escaped_version, ext)

    def store_keys(self) -> list[str]:
        return [self.key(ext) for ext in self.sizes]

    @property
    def source(self) -> str:
        return "published" if self.published else "private" if self.private else "public"

    def to_json(self) -> dict[str, object]:
        return {"Path": self.module, "Version": self.version, "Bytes": self.bytes,
                "Files": dict(self.sizes), "Stored": _rfc3339(self.stored),
                "LastAccess": _rfc3339(self.last_access) if self.last_access else None,
                "Source": self.source, "Origin": self.origin or None}


def _rfc3339(t: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _walk_modules(root: str, rel: str = "") -> Iterator[tuple[str, str]]:
    """(escaped module path, its @v directory) for every ``@v`` directory under root."""
    try:
        entries = list(os.scandir(os.path.join(root, rel) if rel else root))
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False):
            continue
        if not rel and entry.name in SKIP_TOP:
            continue
        sub = f"{rel}/{entry.name}" if rel else entry.name
        if entry.name == "@v":
            if rel:
                yield rel, entry.path
            continue
        yield from _walk_modules(root, sub)


def scan_versions(data_dir: str | os.PathLike[str], *, policy: ModulePolicy | None = None,
                  access: dict[str, float] | None = None, pattern: str = "",
                  read_origin: bool = False) -> list[VersionRecord]:
    """Every stored version (any of .info/.mod/.zip present), sorted by module then semver."""
    root = str(Path(data_dir))
    policy = policy or ModulePolicy()
    access = access or {}
    out: list[VersionRecord] = []
    for emod, vdir in _walk_modules(root):
        try:
            module = unescape_path(emod)
        except ModuleError:
            continue
        if pattern and not match_prefix_patterns(pattern, module):
            continue
        out.extend(_scan_vdir(module, emod, vdir, policy, access, read_origin))
    out.sort(key=lambda r: r.module)  # stable: versions stay in semver order
    return out


def _scan_vdir(module: str, emod: str, vdir: str, policy: ModulePolicy, access: dict[str, float],
               read_origin: bool) -> list[VersionRecord]:
    """The versions held in one module's ``@v`` directory, in semver order."""
    # A published module (sources/published.py keeps its record there) has no other copy.
    published = _is_published(vdir, emod)
    try:
        entries = list(os.scandir(vdir))
    except (FileNotFoundError, NotADirectoryError):
        return []
    files = []
    for entry in entries:
        if entry.name.rpartition(".")[2] not in ARTIFACT_EXTS or not entry.is_file(follow_symlinks=False):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        files.append((entry.name, st.st_size, st.st_mtime))
    records = versions_from_files(module, emod, files, policy, access, published=published)
    for rec in records:
        if read_origin and "info" in rec.sizes:
            rec.origin = _origin_url(os.path.join(vdir, rec.escaped_version + ".info"))
    return records


def versions_from_files(module: str, emod: str, files: Iterable[tuple[str, int, float]],
                        policy: ModulePolicy, access: dict[str, float], *,
                        published: bool) -> list[VersionRecord]:
    """The versions one module's ``@v`` files (name, size, mtime) make, in semver order; the same
    whichever store listed them."""
    private = published or policy.is_private(module) or policy.is_nosumdb(module)
    found: dict[str, VersionRecord] = {}
    for name, size, mtime in files:
        stem, _, ext = name.rpartition(".")
        if ext not in ARTIFACT_EXTS:
            continue
        rec = found.get(stem)
        if rec is None:
            try:
                version = unescape_version(stem)
                check(module, version)
            except ModuleError:
                continue
            rec = found[stem] = VersionRecord(module, version, emod, stem, private=private,
                                              published=published)
        rec.sizes[ext] = size
        rec.stored = mtime if not rec.stored else min(rec.stored, mtime)
        rec.last_access = max(rec.last_access, access.get(f"{emod}/@v/{name}", 0.0))
    ordered = semver.sort_versions(v.version for v in found.values())
    by_version = {r.version: r for r in found.values()}
    return [by_version[v] for v in ordered]


PUBLISHED_PREFIX = ".modvault/published/"  # as sources/published.record_key writes it


def _is_published(vdir: str, emod: str) -> bool:
    root = vdir[: -len(emod + "/@v")] if vdir.endswith(emod + "/@v") else ""
    return bool(root) and os.path.isfile(os.path.join(root, PUBLISHED_PREFIX + emod + ".json"))


def scan_module(data_dir: str | os.PathLike[str], module: str, *,
                policy: ModulePolicy | None = None) -> list[VersionRecord]:
    """The stored versions of one module (one directory read, no walk)."""
    from modvault.module.path import escape_path

    emod = escape_path(module)
    return _scan_vdir(module, emod, os.path.join(str(data_dir), emod, "@v"), policy or ModulePolicy(),
                      {}, True)


def _origin_url(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            info = json.loads(fh.read(65536))
        origin = info.get("Origin") if isinstance(info, dict) else None
        url = origin.get("URL") if isinstance(origin, dict) else None
        return url if isinstance(url, str) else ""
    except (OSError, ValueError):
        return ""


def module_extra_keys(data_dir: str | os.PathLike[str], escaped_module: str) -> list[str]:
    """Mutable records of a module (list, @latest) that exist in the store."""
    root = Path(data_dir)
    out = []
    for key in (keys.list_key(escaped_module), keys.latest_key(escaped_module)):
        if (root / key).is_file():
            out.append(key)
    return out


@dataclass
class StoreTotals:
    """Bytes and counts by kind, for metrics and the dashboard."""

    bytes_by_kind: dict[str, int] = field(default_factory=dict)
    count_by_kind: dict[str, int] = field(default_factory=dict)
    modules: int = 0
    versions: int = 0
    vcs_bytes: int = 0
    vcs_mirrors: int = 0

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes_by_kind.values()) + self.vcs_bytes


def totals(records: list[VersionRecord], mirrors: list[tuple[str, int, float]]) -> StoreTotals:
    t = StoreTotals()
    seen: set[str] = set()
    for r in records:
        seen.add(r.module)
        t.versions += 1
        for ext, size in r.sizes.items():
            t.bytes_by_kind[ext] = t.bytes_by_kind.get(ext, 0) + size
            t.count_by_kind[ext] = t.count_by_kind.get(ext, 0) + 1
    t.modules = len(seen)
    t.vcs_mirrors = len(mirrors)
    t.vcs_bytes = sum(size for _, size, _ in mirrors)
    return t
