"""GOPRIVATE / GONOPROXY / GONOSUMDB-style module patterns (go.dev/ref/mod#private-modules).

Pure policy, no I/O. The three settings are comma-separated glob lists matched against leading path
elements of a module path (:func:`modvault.module.globs.match_prefix_patterns`, the go command's
``module.MatchPrefixPatterns``):

- ``private`` (GOPRIVATE) names modules that are private; it is only the *default* of the other two;
- ``noproxy`` (GONOPROXY) names modules fetched straight from version control, never from a proxy;
  when empty it defaults to ``private``;
- ``nosumdb`` (GONOSUMDB) names modules whose checksums are not checked against the checksum
  database; when empty it defaults to ``private``.

As in cmd/go/internal/cfg (``EnvOrAndChanged``), only an empty value falls back to ``private``. The
documented way to route every module through the proxy while keeping GOPRIVATE is ``noproxy="none"``:
the go command gives ``none`` no special meaning, it is simply a non-empty pattern list whose one
glob can never match a module path (module paths need a dot in their first element), so it
overrides the default and matches nothing. This class does the same.
"""

from __future__ import annotations

from dataclasses import dataclass

from modvault.module.globs import match_prefix_patterns

__all__ = ["ModulePolicy"]


@dataclass(frozen=True, slots=True)
class ModulePolicy:
    """Which modules are private, bypass the proxy list, and skip the checksum database."""

    private: str = ""
    noproxy: str = ""
    nosumdb: str = ""

    @property
    def effective_noproxy(self) -> str:
        """GONOPROXY as the go command sees it: the setting, or GOPRIVATE when it is empty."""
        return self.noproxy if self.noproxy != "" else self.private

    @property
    def effective_nosumdb(self) -> str:
        """GONOSUMDB as the go command sees it: the setting, or GOPRIVATE when it is empty."""
        return self.nosumdb if self.nosumdb != "" else self.private

    def is_private(self, module: str) -> bool:
        """Whether ``module`` matches GOPRIVATE itself."""
        return match_prefix_patterns(self.private, module)

    def is_noproxy(self, module: str) -> bool:
        """Whether ``module`` must be fetched directly from version control (GONOPROXY)."""
        return match_prefix_patterns(self.effective_noproxy, module)

    def is_nosumdb(self, module: str) -> bool:
        """Whether ``module`` is exempt from checksum-database verification (GONOSUMDB)."""
        return match_prefix_patterns(self.effective_nosumdb, module)
