"""The `direct` keyword of the upstream list: fetch straight from version control.

Until the VCS source lands, `direct` answers not-found, so fallback through the list stays correct.
"""

from __future__ import annotations

from pathlib import Path

from modvault.errors import NotFound

_MSG = "direct mode not enabled"


class DirectDisabled:
    name = "direct"

    async def list(self, module: str) -> list[str]:
        raise NotFound(_MSG)

    async def latest(self, module: str) -> bytes:
        raise NotFound(_MSG)

    async def info(self, module: str, version: str) -> bytes:
        raise NotFound(_MSG)

    async def mod(self, module: str, version: str) -> bytes:
        raise NotFound(_MSG)

    async def zip(self, module: str, version: str, dest: Path) -> None:
        raise NotFound(_MSG)

    async def probe(self) -> tuple[bool, str]:
        return False, _MSG

    async def aclose(self) -> None:
        return None
