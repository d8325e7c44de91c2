"""Upstream URLs as they may appear in logs, metrics and error messages: never with credentials."""

from __future__ import annotations

from urllib.parse import urlsplit


def redact_url(url: str) -> str:
    """A URL fit for logs and error messages: credentials and query removed."""
    parts = urlsplit(url)
    if not parts.netloc:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port:
        host += f":{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"
