"""API tokens: made by ``modvault token create``, kept as SHA-256 hashes in the store.

The record lives in the store (``.modvault/auth/tokens.json``) rather than beside the process, so every
replica sharing the store sees it; a running server rereads it when it changes (checked at most once a
second), so a created or revoked token takes effect within seconds without a restart. The token itself
is printed once and never kept: only ``sha256(token)`` is stored, and a presented token is hashed and
compared with :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from modvault.auth.identity import Identity
from modvault.storage.base import Store
from modvault.storage.records import read_record, update_record

TOKENS_KEY = ".modvault/auth/tokens.json"
TOKEN_PREFIX = "mvt_"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}")
RELOAD_INTERVAL = 1.0
MISS_RELOAD_INTERVAL = 0.1


class TokenError(ValueError):
    """A token command cannot be done (bad name, duplicate, unknown)."""


@dataclass(frozen=True, slots=True)
class TokenRecord:
    name: str
    role: str
    sha256: str
    created: float
    expires: float | None = None  # seconds since the epoch
    modules: str = ""

    def expired(self, now: float) -> bool:
        return self.expires is not None and now >= self.expires

    def public(self) -> dict[str, object]:
        """What `token list` shows: never the hash."""
        return {"name": self.name, "role": self.role, "modules": self.modules,
                "created": self.created, "expires": self.expires}


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def _decode(data: bytes) -> dict[str, TokenRecord]:
    doc = json.loads(data) if data.strip() else {}
    out: dict[str, TokenRecord] = {}
    for item in doc.get("tokens", []):
        rec = TokenRecord(**item)
        out[rec.name] = rec
    return out


def _encode(records: dict[str, TokenRecord]) -> bytes:
    return json.dumps({"tokens": [asdict(r) for r in records.values()]}, indent=1).encode()


async def read_records_async(store: Store) -> dict[str, TokenRecord]:
    data = await read_record(store, TOKENS_KEY)
    return {} if data is None else _decode(data)


def read_records(store: Store) -> dict[str, TokenRecord]:
    """For the CLI (no event loop running)."""
    return asyncio.run(read_records_async(store))


def create_token(store: Store, data_dir: Path, name: str, role: str, *, modules: str = "",
                 expires_in: float | None = None) -> tuple[str, TokenRecord]:
    """A new token (printed once) and its record; the record is added by compare-and-swap.
    *data_dir* is kept for callers; nothing is locked there."""
    if not _NAME.fullmatch(name):
        raise TokenError(f"invalid token name {name!r}: letters, digits, '.', '_', '@', '-'")
    token = new_token()
    now = time.time()
    rec = TokenRecord(name, role, hash_token(token), now,
                      now + expires_in if expires_in is not None else None, modules)

    def add(old: bytes | None) -> tuple[bytes, None]:
        records = {} if old is None else _decode(old)
        if name in records:
            raise TokenError(f"a token named {name!r} exists (revoke it first)")
        records[name] = rec
        return _encode(records), None

    asyncio.run(update_record(store, TOKENS_KEY, add))
    return token, rec


def revoke_token(store: Store, data_dir: Path, name: str) -> TokenRecord:
    def remove(old: bytes | None) -> tuple[bytes, TokenRecord]:
        records = {} if old is None else _decode(old)
        rec = records.pop(name, None)
        if rec is None:
            raise TokenError(f"no token named {name!r}")
        return _encode(records), rec

    return asyncio.run(update_record(store, TOKENS_KEY, remove))


class TokenBook:
    """The server's view of the token record, reloaded when the stored record changes."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._by_hash: dict[str, TokenRecord] = {}
        self._version: str | None = None
        self._checked = 0.0
        self._loading: asyncio.Future[None] | None = None

    @property
    def version(self) -> object:
        """Changes whenever the stored record does (as far as this process has seen)."""
        return self._version

    async def _refresh(self, interval: float = RELOAD_INTERVAL) -> None:
        loading = self._loading
        if loading is not None:
            # Another request is reading the record: wait for it rather than answer from what was
            # there before (a burst of first requests got 401 for valid tokens while one read).
            await asyncio.shield(loading)
            return
        now = time.monotonic()
        if now - self._checked < interval:
            return
        self._checked = now
        self._loading = asyncio.ensure_future(self._reload())
        try:
            await asyncio.shield(self._loading)
        finally:
            self._loading = None

    async def _reload(self) -> None:
        obj = await self.store.stat(TOKENS_KEY)
        version = obj.etag if obj is not None else None
        if version == self._version:
            return
        records = await read_records_async(self.store) if obj is not None else {}
        self._by_hash = {r.sha256: r for r in records.values()}
        self._version = version

    async def verify(self, token: str) -> Identity | None:
        """The identity of a valid, unexpired token; None otherwise."""
        await self._refresh()
        digest = hash_token(token)
        rec = self._by_hash.get(digest)
        if rec is None:  # perhaps created a moment ago: look again (a stat, at most 10 times/s)
            await self._refresh(MISS_RELOAD_INTERVAL)
            rec = self._by_hash.get(digest)
        # The lookup is keyed by a hash of the secret; the final comparison is constant-time.
        if rec is None or not hmac.compare_digest(rec.sha256, digest):
            hmac.compare_digest(digest, digest)  # same work on the failure path
            return None
        if rec.expired(time.time()):
            return None
        return Identity(rec.name, (rec.role,), "token", rec.modules)
