"""ModuleGate: what may be served at all, whoever asks: allow/deny module patterns and blocked versions.

Blocks are made by ``modvault block M@V --reason TEXT`` (or the API) and kept in the store
(``.modvault/policy/blocks.json``) so every replica sees them; a running server rereads the record
when it changes (``refresh``, called about once a second), so a block takes effect within seconds. A
blocked version answers 403 with the reason on every endpoint and is hidden from ``list``;
``deny_modules`` / ``allow_modules`` (GOPRIVATE-style patterns, like Athens's filter file) answer 403
for whole modules.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from modvault.errors import Forbidden
from modvault.module.globs import match_prefix_patterns
from modvault.storage.base import Store
from modvault.storage.records import read_record, update_record

BLOCKS_KEY = ".modvault/policy/blocks.json"


class GateError(ValueError):
    """A block/unblock command cannot be done."""


@dataclass(frozen=True, slots=True)
class Block:
    module: str
    version: str
    reason: str
    by: str
    time: float


def _decode(data: bytes | None) -> dict[tuple[str, str], Block]:
    doc = json.loads(data or b"{}")
    return {(b["module"], b["version"]): Block(**b) for b in doc.get("blocks", [])}


def _encode(blocks: dict[tuple[str, str], Block]) -> bytes:
    return json.dumps({"blocks": [asdict(b) for b in blocks.values()]}, indent=1).encode()


async def read_blocks_async(store: Store) -> dict[tuple[str, str], Block]:
    return _decode(await read_record(store, BLOCKS_KEY))


def read_blocks(store: Store) -> dict[tuple[str, str], Block]:
    """For the CLI (no event loop running)."""
    return asyncio.run(read_blocks_async(store))


async def block_version_async(store: Store, module: str, version: str, reason: str,
                              by: str) -> Block:
    """Add a block by compare-and-swap on the stored record (CLI, API and replicas alike)."""
    if not reason.strip():
        raise GateError("a block needs a reason (--reason TEXT)")
    b = Block(module, version, " ".join(reason.split())[:500], by, time.time())

    def add(old: bytes | None) -> tuple[bytes, Block]:
        blocks = _decode(old)
        blocks[(module, version)] = b
        return _encode(blocks), b

    return await update_record(store, BLOCKS_KEY, add)


async def unblock_version_async(store: Store, module: str, version: str) -> Block:
    def remove(old: bytes | None) -> tuple[bytes, Block]:
        blocks = _decode(old)
        b = blocks.pop((module, version), None)
        if b is None:
            raise GateError(f"{module}@{version} is not blocked")
        return _encode(blocks), b

    return await update_record(store, BLOCKS_KEY, remove)


def block_version(store: Store, data_dir: Path, module: str, version: str, reason: str,
                  by: str) -> Block:
    """For the CLI; *data_dir* is kept for callers (nothing is locked there any more)."""
    return asyncio.run(block_version_async(store, module, version, reason, by))


def unblock_version(store: Store, data_dir: Path, module: str, version: str) -> Block:
    return asyncio.run(unblock_version_async(store, module, version))


class ModuleGate:
    def __init__(self, store: Store | None = None, *, allow: str = "", deny: str = "") -> None:
        self.store = store
        self.allow = allow
        self.deny = deny
        self.blocks: dict[tuple[str, str], Block] = {}
        self.blocked_modules: set[str] = set()
        self._version: str | None = None
        self.loaded = store is None
        # Active until the stored blocks have been read once (the first request reads them):
        # a restarted server must not serve a blocked version before it knows the blocks.
        self.active = bool(allow or deny) or store is not None
        # Bounded for a small host (README "Memory"): a miss costs one pattern match.
        self._module_refusal = functools.lru_cache(maxsize=8192)(self._module_refusal_uncached)

    async def refresh(self) -> None:
        """Reread the blocks if the stored record changed (a stat, rarely a read)."""
        if self.store is None:
            return
        obj = await self.store.stat(BLOCKS_KEY)
        version = obj.etag if obj is not None else None
        self.loaded = True
        if version == self._version:
            # Unchanged; a change elsewhere (ModuleService.forget) may have set ``active`` to
            # make requests look at the blocks until this reread, which then found them as they were.
            self.active = bool(self.allow or self.deny or self.blocks)
            return
        blocks = await read_blocks_async(self.store) if obj is not None else {}
        self.blocks = blocks
        self.blocked_modules = {m for m, _ in blocks}
        self._version = version
        self.active = bool(self.allow or self.deny or blocks)

    def _module_refusal_uncached(self, module: str) -> str:
        if self.deny and match_prefix_patterns(self.deny, module):
            return f"{module}: refused by the proxy's deny list"
        if self.allow and not match_prefix_patterns(self.allow, module):
            return f"{module}: not in the proxy's allow list"
        return ""

    def refusal(self, module: str, version: str = "") -> str:
        """Why ``module@version`` is refused (a denied module or a blocked version), or "".
        Cheap when it is not: a cached pattern match and a set lookup (the prebuilt answers ask
        for every request while the gate is active)."""
        why = self._module_refusal(module)
        if why or not version or module not in self.blocked_modules:
            return why
        b = self.blocks.get((module, version))
        return f"{module}@{version} is blocked: {b.reason}" if b is not None else ""

    def check(self, module: str, version: str = "") -> None:
        """Raise Forbidden (with the reason) for a denied module or a blocked version."""
        why = self.refusal(module, version)
        if why:
            raise Forbidden(why)

    def blocked_versions(self, module: str) -> set[str]:
        if module not in self.blocked_modules:
            return set()
        return {v for (m, v) in self.blocks if m == module}
