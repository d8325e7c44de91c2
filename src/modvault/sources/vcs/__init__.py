"""Direct mode: modules fetched from version control and built natively (go.dev/ref/mod#vcs).

- :mod:`.repo_root`: module path → repository root (static rules, ``?go-get=1`` discovery);
- :mod:`.git`: bare mirrors and bounded, non-interactive git processes;
- :mod:`.source`: :class:`GitSource`, the ``direct`` :class:`~modvault.sources.base.Source`.
"""

from __future__ import annotations

from modvault.sources.vcs.git import HostCredential, load_netrc
from modvault.sources.vcs.repo_root import (
    HTTPResponse,
    RepoRoot,
    RepoRootError,
    parse_meta_go_imports,
    resolve_repo_root,
    static_repo_root,
)
from modvault.sources.vcs.source import GitSource

__all__ = [
    "GitSource",
    "HTTPResponse",
    "HostCredential",
    "RepoRoot",
    "RepoRootError",
    "load_netrc",
    "parse_meta_go_imports",
    "resolve_repo_root",
    "static_repo_root",
]
