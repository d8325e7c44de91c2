"""OSV advisories for Go modules (ossf.github.io/osv-schema): which module versions they affect.

:func:`parse_advisory` and :class:`OsvIndex` are pure; :func:`load_osv_dir` reads a directory of
OSV JSON files (an export of a vulnerability database for the Go ecosystem), bounded in files and
bytes. Only ``affected`` entries whose package ecosystem is ``Go`` count. Versions in OSV's Go
ecosystem are semver without the ``v`` (``1.2.3``, ``2.0.0+incompatible``); ``introduced: "0"``
means every version. A version is affected when one of the entry's ``SEMVER``/``ECOSYSTEM``
ranges says so (events applied in version order: ``introduced`` opens, ``fixed`` closes at that
version, ``last_affected`` closes after it) or when it is listed in ``versions``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modvault.module import semver

__all__ = ["Advisory", "OsvError", "OsvIndex", "affected", "load_osv_dir", "parse_advisory"]

LOG = logging.getLogger("modvault.supply.osv")
MAX_FILES = 200_000
MAX_FILE_BYTES = 4 * 1024 * 1024


class OsvError(ValueError):
    """A document that is not an OSV advisory."""


@dataclass(frozen=True)
class Advisory:
    id: str
    summary: str
    aliases: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return f"https://osv.dev/vulnerability/{self.id}"


@dataclass(frozen=True)
class _Entry:
    advisory: Advisory
    ranges: tuple[tuple[tuple[str, str], ...], ...]  # per range: (event kind, canonical version)
    versions: frozenset[str]


def _canonical(v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise OsvError(f"invalid version {v!r}")
    if v == "0":
        return ""  # before every version
    c = semver.canonical(v if v.startswith("v") else "v" + v)
    if not c:
        raise OsvError(f"invalid version {v!r}")
    # canonical() drops "+incompatible"; comparisons ignore build metadata anyway.
    return c


def parse_advisory(doc: Any) -> list[tuple[str, _Entry]]:
    """(module path, entry) for every Go package the advisory names."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("id"), str):
        raise OsvError("not an OSV advisory (no id)")
    adv = Advisory(doc["id"], str(doc.get("summary") or doc.get("details") or "")[:500],
                   tuple(a for a in doc.get("aliases") or () if isinstance(a, str)))
    out: list[tuple[str, _Entry]] = []
    for aff in doc.get("affected") or ():
        if not isinstance(aff, Mapping):
            continue
        pkg = aff.get("package") or {}
        if not isinstance(pkg, Mapping) or pkg.get("ecosystem") != "Go" or not pkg.get("name"):
            continue
        ranges = []
        for rng in aff.get("ranges") or ():
            if not isinstance(rng, Mapping) or rng.get("type") not in ("SEMVER", "ECOSYSTEM"):
                continue
            events = []
            for ev in rng.get("events") or ():
                if not isinstance(ev, Mapping):
                    continue
                for kind in ("introduced", "fixed", "last_affected"):
                    if kind in ev:
                        events.append((kind, _canonical(ev[kind])))
            ranges.append(tuple(events))
        versions = frozenset(_canonical(v) for v in aff.get("versions") or ())
        out.append((str(pkg["name"]), _Entry(adv, tuple(ranges), versions)))
    return out


def _in_range(events: tuple[tuple[str, str], ...], v: str) -> bool:
    status = False
    order = {"introduced": 0, "fixed": 1, "last_affected": 2}
    for kind, at in sorted(events, key=lambda e: (semver.sort_key(e[1]) if e[1] else (), order[e[0]])):
        c = -1 if at == "" else semver.compare(at, v)
        if kind == "introduced" and c <= 0:
            status = True
        elif (kind == "fixed" and c <= 0) or (kind == "last_affected" and c < 0):
            status = False
    return status


def affected(entry: _Entry, version: str) -> bool:
    v = semver.canonical(version) or version
    return v in entry.versions or any(_in_range(r, v) for r in entry.ranges)


@dataclass
class OsvIndex:
    """Advisories by module path."""

    by_module: dict[str, list[_Entry]] = field(default_factory=dict)

    def add(self, doc: Any) -> None:
        for module, entry in parse_advisory(doc):
            self.by_module.setdefault(module, []).append(entry)

    def affecting(self, module: str, version: str) -> list[Advisory]:
        seen: dict[str, Advisory] = {}
        for entry in self.by_module.get(module, ()):
            if entry.advisory.id not in seen and affected(entry, version):
                seen[entry.advisory.id] = entry.advisory
        return list(seen.values())

    @classmethod
    def of(cls, docs: Iterable[Any]) -> OsvIndex:
        index = cls()
        for doc in docs:
            index.add(doc)
        return index

    def __len__(self) -> int:
        return len({e.advisory.id for entries in self.by_module.values() for e in entries})


def load_osv_dir(directory: Path | str) -> OsvIndex:
    """Every ``*.json`` under directory (recursively); unreadable files are logged and skipped."""
    index = OsvIndex()
    root = Path(directory)
    if not root.is_dir():
        raise OsvError(f"{root}: not a directory")
    for n, path in enumerate(sorted(root.rglob("*.json"))):
        if n >= MAX_FILES:
            LOG.warning("osv: more than %d files under %s; the rest are ignored", MAX_FILES, root)
            break
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                raise OsvError(f"larger than {MAX_FILE_BYTES} bytes")
            index.add(json.loads(path.read_bytes()))
        except (OSError, ValueError) as exc:
            LOG.warning("osv: skipping %s: %s", path, exc)
    return index
