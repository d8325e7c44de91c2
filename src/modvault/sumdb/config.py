"""Which checksum databases modvault proxies and verifies against.

A database is named by the go command's ``GOSUMDB`` form (go.dev/ref/mod "Environment variables",
GOSUMDB; cmd/go/internal/modfetch/sumdb.go ``dbDial``)::

    NAME+HASH+KEY            a verifier key; the database is at https://NAME
    NAME+HASH+KEY URL        ... at URL instead
    sum.golang.org [URL]     a known database name stands for its key

The name must be ``host[/path]`` (the go command refuses anything else, since it becomes the URL
``https://NAME``), and modvault also uses it in store keys (``sumdb/<name>/...``), so every path
element is checked here once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from modvault.sumdb import note

__all__ = [
    "KNOWN_SUMDBS",
    "SUM_GOLANG_ORG_KEY",
    "SumdbConfig",
    "check_sumdb_name",
    "default_sumdb",
    "parse_sumdb",
]

SUM_GOLANG_ORG_KEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
"""The public key of sum.golang.org, as built into the go command (cmd/go/internal/modfetch/key.go,
knownGOSUMDB). Its key hash 033de0ae is checked when it is parsed, so a mistyped key cannot load."""

KNOWN_SUMDBS = {"sum.golang.org": SUM_GOLANG_ORG_KEY}
"""Database names that stand for their verifier key (the go command's knownGOSUMDB)."""

# sum.golang.google.cn is an alias, reachable in mainland China, of sum.golang.org (dbDial).
_ALIASES = {"sum.golang.google.cn": ("sum.golang.org", "https://sum.golang.google.cn")}

# host[:port] then optional /path elements: the characters a store key and a URL path can carry
# without escaping. Stricter than the go command (which takes whatever url.Parse keeps intact).
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?")
_ELEM = re.compile(r"[A-Za-z0-9._~-]+")


def check_sumdb_name(name: str) -> None:
    """Raise ValueError unless *name* is ``host[/path]`` as the go command requires of a
    checksum database name (it must be usable as ``https://NAME``)."""
    if not note.is_valid_name(name):
        raise ValueError(f"invalid checksum database name {name!r}: not a valid key name")
    host, _, path = name.partition("/")
    if not _HOST.fullmatch(host):
        raise ValueError(f"invalid checksum database name {name!r}: must be host[/path]")
    if path:
        for elem in path.split("/"):
            if not _ELEM.fullmatch(elem) or elem in (".", ".."):
                raise ValueError(f"invalid checksum database name {name!r}: bad path element {elem!r}")


@dataclass(frozen=True)
class SumdbConfig:
    """One checksum database: its name, verifier key text, base URL and parsed verifier."""

    name: str
    vkey: str
    url: str
    verifier: note.Ed25519Verifier = field(repr=False)

    def __post_init__(self) -> None:
        if self.verifier.name != self.name or self.verifier.vkey != self.vkey:
            raise ValueError("SumdbConfig: verifier does not match name and vkey")

    @property
    def setting(self) -> str:
        """The GOSUMDB-style setting that describes this database."""
        return self.vkey if self.url == f"https://{self.name}" else f"{self.vkey} {self.url}"


def _check_url(url: str, setting: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ValueError(f"invalid sumdb setting {setting!r}: bad URL {url!r}") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"invalid sumdb setting {setting!r}: URL {url!r} must be http:// or https:// with a host")
    if parts.query or parts.fragment:
        raise ValueError(f"invalid sumdb setting {setting!r}: URL {url!r} must not have a query or fragment")
    return url.rstrip("/")


def parse_sumdb(setting: str) -> SumdbConfig:
    """Parse ``"NAME+HASH+KEY [URL]"`` (or a known name such as ``sum.golang.org [URL]``).

    Raises ValueError with a message that quotes the setting and says what is wrong."""
    fields = setting.split()
    if not fields:
        raise ValueError("invalid sumdb setting: empty (want NAME+HASH+KEY [URL])")
    if len(fields) > 2:
        raise ValueError(f"invalid sumdb setting {setting!r}: too many fields (want NAME+HASH+KEY [URL])")
    key = fields[0]
    url = fields[1] if len(fields) == 2 else None
    if key in _ALIASES:
        key, alias_url = _ALIASES[key]
        url = url or alias_url
    key = KNOWN_SUMDBS.get(key, key)
    if "+" not in key:
        raise ValueError(
            f"invalid sumdb setting {setting!r}: {key!r} is not a verifier key (NAME+HASH+KEY) "
            f"nor a known database ({', '.join(sorted(KNOWN_SUMDBS))})")
    try:
        verifier = note.new_verifier(key)
    except note.NoteError as exc:
        raise ValueError(f"invalid sumdb setting {setting!r}: verifier key: {exc}") from None
    check_sumdb_name(verifier.name)
    base = _check_url(url, setting) if url is not None else f"https://{verifier.name}"
    return SumdbConfig(verifier.name, verifier.vkey, base, verifier)


def default_sumdb() -> SumdbConfig:
    """sum.golang.org with its public key, at https://sum.golang.org."""
    return parse_sumdb(SUM_GOLANG_ORG_KEY)
