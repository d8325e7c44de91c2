"""gzip encodings of artifact bodies, computed off the event loop and kept.

Small bodies are compressed inline and kept on their Artifact (the memory tier keeps it). Bigger ones
(up to 16 MiB for a .mod or list) took 0.2-1.2 s of event loop per request, recomputed every time
because bodies past the memory tier are read afresh: they are compressed in a thread, once per ETag
at a time (single-flight), and kept in a byte-bounded LRU keyed by ETag.
"""

from __future__ import annotations

import asyncio
import gzip

from modvault.artifact import Artifact, Kind
from modvault.cache.memory import ByteLRU
from modvault.cache.singleflight import SingleFlight

INLINE_BYTES = 32 * 1024
CACHE_BYTES = 8 * 1024 * 1024  # gzip encodings of small bodies (per worker; README "Memory")


def compress(body: bytes) -> bytes:
    return gzip.compress(body, compresslevel=6, mtime=0)


class GzipCache:
    def __init__(self, max_bytes: int = CACHE_BYTES) -> None:
        self.kept: ByteLRU[bytes] = ByteLRU(max_bytes)
        self._flights: SingleFlight[bytes] = SingleFlight()

    async def get(self, art: Artifact) -> bytes | None:
        """The gzip encoding of ``art``'s body; None for zips and bodies on disk."""
        body = art.body
        if body is None or art.kind is Kind.ZIP:
            return None
        if art.size <= INLINE_BYTES:
            return art.gzipped()
        kept = self.kept.get(art.etag)
        if kept is None:
            kept, _ = await self._flights.do(art.etag, lambda: asyncio.to_thread(compress, body))
            self.kept.put(art.etag, kept, len(kept) + 256)
        return kept
