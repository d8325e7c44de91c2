"""Minimal Version Selection over go.mod requirement graphs, as the go command loads them. Pure.

Mirrors cmd/go/internal/modload ``readModGraph`` and cmd/go/internal/mvs ``Graph``
(go.dev/ref/mod#minimal-version-selection, #graph-pruning, #go-mod-file-replace,
#go-mod-file-exclude):

- the main module's requirements are the roots; the graph holds every module version reachable
  from them, and the build list selects, per path, the highest version in the graph;
- graph pruning: when the main module says ``go 1.17`` or higher, the requirements of a pruned
  dependency (``go`` >= 1.17) are added to the graph but not followed further; a dependency
  without pruning (older or no ``go`` directive) is loaded with its full transitive closure;
- ``replace`` in the main module changes where a version's go.mod comes from, not its identity;
- ``exclude`` in the main module drops requirements on the excluded versions (Go 1.16+).

The loader (which fetches go.mod files) is outside: :func:`select` either returns the result or
the set of go.mod files it still needs; the caller fetches them and calls again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from modvault.module import semver
from modvault.module.modfile import GraphDirectives, Replacement, Requirement

__all__ = ["BuildList", "MainModule", "Need", "Summary", "go_at_least", "select"]

PRUNING_GO = (1, 17)  # go.dev/ref/mod#graph-pruning: go 1.17 and higher prune the graph
_GO_RE = re.compile(r"([0-9]+)\.([0-9]+)")


def go_at_least(go: str | None, want: tuple[int, int]) -> bool:
    """Whether a go directive's version (``1.21``, ``1.21.3``, ``1.21rc1``) is >= want."""
    m = _GO_RE.match(go or "")
    return m is not None and (int(m.group(1)), int(m.group(2))) >= want


@dataclass(frozen=True, slots=True)
class Summary:
    """What MVS needs from one go.mod: its go version and its requirements."""

    go: str | None
    requires: tuple[Requirement, ...]

    @property
    def pruned(self) -> bool:
        return go_at_least(self.go, PRUNING_GO)

    @classmethod
    def of(cls, directives: GraphDirectives) -> Summary:
        return cls(directives.go, directives.requires)


@dataclass(frozen=True, slots=True)
class MainModule:
    """The module at the root of the graph (its version is "" for a go.mod being developed)."""

    path: str
    version: str
    go: str | None
    requires: tuple[Requirement, ...]
    replaces: tuple[Replacement, ...] = ()
    excludes: frozenset[Requirement] = frozenset()

    @classmethod
    def of(cls, directives: GraphDirectives, version: str = "") -> MainModule:
        if directives.module is None:
            raise ValueError("go.mod has no module directive")
        return cls(directives.module, version, directives.go, directives.requires,
                   directives.replaces, frozenset(directives.excludes))

    @property
    def pruned(self) -> bool:
        return go_at_least(self.go, PRUNING_GO)

    def replacement(self, m: Requirement) -> Replacement | None:
        """The replace directive for m: one naming m's version wins over one for every version."""
        wildcard = None
        for r in self.replaces:
            if r.old_path == m.path:
                if r.old_version == m.version:
                    return r
                if r.old_version == "":
                    wildcard = r
        return wildcard

    def source_of(self, m: Requirement) -> Requirement:
        """Where m's go.mod and zip come from: m itself, or its module replacement. Directory
        replacements keep path and an empty version (the caller reads the directory)."""
        r = self.replacement(m)
        if r is None:
            return m
        return Requirement(r.new_path, r.new_version)


@dataclass(frozen=True, slots=True)
class Need:
    """select() needs these go.mod files (keyed by where they come from) before it can finish."""

    sources: frozenset[Requirement]


@dataclass(frozen=True)
class BuildList:
    """The selected versions (main module first, then by path) and the requirement edges of
    every loaded module version (what ``go mod graph`` prints)."""

    main: Requirement
    modules: tuple[Requirement, ...]
    edges: Mapping[Requirement, tuple[Requirement, ...]] = field(default_factory=dict)

    def selected(self) -> dict[str, str]:
        return {m.path: m.version for m in self.modules}


def select(main: MainModule, summaries: Mapping[Requirement, Summary]) -> BuildList | Need:
    """Run MVS with the go.mod summaries at hand (keyed by :meth:`MainModule.source_of`)."""
    root = Requirement(main.path, main.version)
    edges: dict[Requirement, tuple[Requirement, ...]] = {}
    selected: dict[str, str] = {}
    missing: set[Requirement] = set()

    def note(m: Requirement) -> None:
        cur = selected.get(m.path)
        if cur is None or semver.compare(cur, m.version) < 0:
            selected[m.path] = m.version

    def kept(reqs: tuple[Requirement, ...]) -> tuple[Requirement, ...]:
        return tuple(r for r in reqs if r not in main.excludes and r.path != main.path)

    roots = kept(main.requires)
    edges[root] = roots
    pruned = main.pruned
    seen: set[tuple[Requirement, bool]] = set()
    queue: list[tuple[Requirement, bool]] = []  # (module version, load it pruned?)
    for m in roots:
        note(m)
        queue.append((m, pruned))
    while queue:
        m, m_pruned = queue.pop()
        if (m, m_pruned) in seen or m.version == "none":
            continue
        seen.add((m, m_pruned))
        summary = summaries.get(main.source_of(m))
        if summary is None:
            missing.add(main.source_of(m))
            continue
        reqs = kept(summary.requires)
        edges[m] = reqs
        for r in reqs:
            note(r)
        # modload.readModGraph: a pruned module's requirements are in the graph but not followed,
        # unless the whole walk is unpruned or this module itself does not prune.
        next_pruned = summary.pruned and m_pruned
        if not m_pruned or not summary.pruned:
            for r in reqs:
                queue.append((r, next_pruned))
    if missing:
        return Need(frozenset(missing))
    modules = [root] + [Requirement(p, selected[p]) for p in sorted(selected)]
    return BuildList(root, tuple(modules), edges)
