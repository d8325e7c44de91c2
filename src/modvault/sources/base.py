"""The Source protocol: where artifacts come from when the store does not have them.

A source answers for one artifact at a time and raises NotFound / Gone when it does not have it, or
Unavailable (or a subclass) when it failed. A source never writes to the store; the service decides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class Source(Protocol):
    # Short name for logs and metrics ("https://proxy.golang.org", "direct").
    name: str

    async def list(self, module: str) -> list[str]:
        """Tagged versions (never pseudo-versions), in any order."""
        ...

    async def latest(self, module: str) -> bytes:
        """The @latest answer: .info JSON bytes, already validated."""
        ...

    async def info(self, module: str, version: str) -> bytes:
        """.info JSON for a canonical version or a query; validated."""
        ...

    async def mod(self, module: str, version: str) -> bytes: ...

    async def zip(self, module: str, version: str, dest: Path) -> str | None:
        """Write the zip to ``dest`` (a temp path); the caller checks it and moves it into place.

        Returns the SHA-256 (hex) of what was written when the source computed it on the way
        (sources/download.py), None otherwise (the caller then hashes the file)."""
        ...

    async def probe(self) -> tuple[bool, str]:
        """(reachable, reason): for readiness; cheap, and answered from memory when recent."""
        ...

    async def aclose(self) -> None: ...
