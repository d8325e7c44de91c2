"""Resolve a module graph for an SBOM: MVS (supply/mvs, pure) fed with go.mod files fetched
through a :class:`GraphSource`, then the facts of every selected module's zip.

Bounded: at most ``max_modules`` go.mod files, ``concurrency`` fetches at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from modvault.errors import BadRequest
from modvault.module.errors import ModFileError
from modvault.module.modfile import Requirement, parse_graph
from modvault.supply.mvs import BuildList, MainModule, Need, Summary, select
from modvault.supply.osv import Advisory
from modvault.supply.sbom import Component, ModuleGraph

__all__ = ["GraphSource", "ModuleFacts", "build_graph", "main_from_gomod", "resolve"]

T = TypeVar("T")


@dataclass(frozen=True)
class ModuleFacts:
    """What an SBOM says about one module version's zip."""

    h1: str
    sha256: str
    licence: str


class GraphSource(Protocol):
    async def gomod(self, path: str, version: str) -> bytes: ...

    async def facts(self, path: str, version: str) -> ModuleFacts: ...


def main_from_gomod(data: bytes, version: str = "") -> MainModule:
    try:
        directives = parse_graph(data)
    except ModFileError as exc:
        raise BadRequest(f"go.mod: {exc}") from None
    if directives.module is None:
        raise BadRequest("go.mod: no module directive")
    return MainModule.of(directives, version)


async def _bounded(items: list[Requirement], fn: Callable[[Requirement], Awaitable[T]],
                   concurrency: int) -> list[T]:
    sem = asyncio.Semaphore(concurrency)

    async def one(item: Requirement) -> T:
        async with sem:
            return await fn(item)

    return list(await asyncio.gather(*(one(i) for i in items)))


async def _summary(source: GraphSource, m: Requirement) -> Summary:
    data = await source.gomod(m.path, m.version)
    try:
        return Summary.of(parse_graph(data))
    except ModFileError as exc:
        raise BadRequest(f"go.mod of {m.path}@{m.version}: {exc}") from None


async def resolve(main: MainModule, source: GraphSource, *, max_modules: int = 5000,
                  concurrency: int = 8) -> tuple[BuildList, dict[Requirement, Summary]]:
    """The build list ``go list -m all`` prints for main, and the go.mod summaries it read."""
    have: dict[Requirement, Summary] = {}
    while True:
        out = select(main, have)
        if not isinstance(out, Need):
            return out, have
        need = sorted(out.sources, key=lambda r: (r.path, r.version))
        for r in need:
            if r.version == "":
                raise BadRequest(f"replace directive points {r.path}: a directory cannot be read by "
                                 f"the server; replace it with a module version")
        if len(have) + len(need) > max_modules:
            raise BadRequest(f"module graph too large (more than {max_modules} go.mod files)")
        summaries = await _bounded(need, lambda r: _summary(source, r), concurrency)
        have.update(zip(need, summaries, strict=True))


async def build_graph(main: MainModule, source: GraphSource, *, concurrency: int = 8,
                      download_base: str = "",
                      advisories: Callable[[str, str], list[Advisory]] | None = None) -> ModuleGraph:
    """Resolve main's graph and gather every module's zip facts and dependency edges."""
    build, summaries = await resolve(main, source, concurrency=concurrency)
    selected = build.selected()
    mods = [m for m in build.modules if m != build.main]

    # Edges of every selected version (pruned ones were not expanded by MVS: read their go.mod).
    missing = [main.source_of(m) for m in mods if main.source_of(m) not in summaries]
    for r, s in zip(missing, await _bounded(missing, lambda r: _summary(source, r), concurrency),
                    strict=True):
        summaries[r] = s

    def deps_of(m: Requirement) -> tuple[str, ...]:
        reqs = main.requires if m == build.main else summaries[main.source_of(m)].requires
        return tuple(sorted({r.path for r in reqs if r.path in selected and r.path != m.path
                             and r not in main.excludes}))

    depends = {m.path: deps_of(m) for m in build.modules}
    facts = await _bounded(mods, lambda m: source.facts(*_where(main, m)), concurrency)
    components = []
    for m, f in zip(mods, facts, strict=True):
        src = main.source_of(m)
        replaced = f"{src.path} {src.version}" if src != m else ""
        url = f"{download_base.rstrip('/')}/{_zip_path(src)}" if download_base else ""
        found: dict[str, Advisory] = {}
        if advisories is not None:  # the module as required, and the code that replaces it
            for a in advisories(m.path, m.version) + (advisories(src.path, src.version)
                                                      if src != m else []):
                found.setdefault(a.id, a)
        components.append(Component(m.path, m.version, f.h1, f.sha256, f.licence, replaced, url,
                                    tuple(found.values())))
    root = Component(main.path, main.version)
    if main.version:
        f = await source.facts(main.path, main.version)
        root = Component(main.path, main.version, f.h1, f.sha256, f.licence)
    return ModuleGraph(root, tuple(components), depends)


def _where(main: MainModule, m: Requirement) -> tuple[str, str]:
    src = main.source_of(m)
    return src.path, src.version


def _zip_path(m: Requirement) -> str:
    from modvault.module.path import escape_path, escape_version

    return f"{escape_path(m.path)}/@v/{escape_version(m.version)}.zip"
