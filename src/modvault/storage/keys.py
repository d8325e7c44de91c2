"""Store keys: the GOPROXY URL space, built only from validated, escaped parts."""

from __future__ import annotations

# Answers to queries (branch names, `latest` for .info) are mutable: keep them out of the GOPROXY
# URL space so the data directory stays a faithful `file://` proxy of immutable artifacts.
QUERY_PREFIX = ".modvault/query/"


def artifact_key(escaped_module: str, escaped_version: str, ext: str) -> str:
    return f"{escaped_module}/@v/{escaped_version}.{ext}"


def list_key(escaped_module: str) -> str:
    return f"{escaped_module}/@v/list"


def latest_key(escaped_module: str) -> str:
    return f"{escaped_module}/@latest"


def query_key(escaped_module: str, escaped_query: str) -> str:
    return f"{QUERY_PREFIX}{escaped_module}/@v/{escaped_query}.info"
