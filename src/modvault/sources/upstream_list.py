"""The upstream list in GOPROXY syntax (go.dev/ref/mod#goproxy-protocol): entries separated by
``,`` (fall back on not-found only) or ``|`` (fall back on any error). Parsed without importing
the HTTP client: configuration is checked by `modvault serve`'s supervisor, which stays small."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from modvault.sources.redact import redact_url

__all__ = ["ListEntry", "parse_upstream_list", "redact_upstream_list"]


def redact_upstream_list(text: str) -> str:
    return re.sub(r"[^,|]+", lambda m: redact_url(m.group(0).strip()), text)


@dataclass(frozen=True)
class ListEntry:
    """One element of the upstream list and how to treat its failure."""

    url: str  # a URL, "direct" or "off"
    fallback_on_any_error: bool  # True when followed by "|"


def parse_upstream_list(text: str) -> list[ListEntry]:
    """Parse ``https://a|https://b,direct``; ValueError on anything the go command would reject."""
    text = text.strip()
    if not text:
        raise ValueError("empty upstream list")
    tokens = re.split(r"([,|])", text)  # items at even indexes, separators at odd ones
    entries: list[ListEntry] = []
    for i in range(0, len(tokens), 2):
        item = tokens[i].strip()
        sep = tokens[i + 1] if i + 1 < len(tokens) else ""
        if not item:
            raise ValueError(f"empty entry in upstream list {redact_upstream_list(text)!r}")
        if item not in ("direct", "off"):
            parts = urlsplit(item)
            if parts.scheme not in ("http", "https", "file") or (
                parts.scheme != "file" and not parts.hostname
            ):
                raise ValueError(f"invalid upstream URL {redact_url(item)!r} (want http(s)://, "
                                 "file://, direct or off)")
        entries.append(ListEntry(item, sep == "|"))
    return entries
