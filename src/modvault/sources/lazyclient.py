"""An HTTP client made on its first use.

A worker that only serves what is stored never talks to an upstream, yet the client stack (httpx,
httpcore, h2, h11, anyio, certifi's roots parsed into a TLS context) costs ~6 MiB per worker, more
where httpcore finds trio installed. Wiring hands the sources this stand-in instead: the first
attribute a source reads (``stream``, ``get``, ``timeout``...) imports that stack and builds the real
client, once; everything after goes straight to it. Closing a client never made makes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import httpx


class LazyClient:
    """Stands in for an ``httpx.AsyncClient`` until first used; then is a thin pass-through."""

    def __init__(self, factory: Callable[[], httpx.AsyncClient]) -> None:
        self._factory = factory
        self._client: httpx.AsyncClient | None = None

    @property
    def made(self) -> bool:
        """Whether the real client exists (tests, and aclose)."""
        return self._client is not None

    def real(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = self._factory()
        return self._client

    def __getattr__(self, name: str) -> Any:
        # Only reached for names this class lacks: everything httpx.AsyncClient offers.
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.real(), name)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def lazy_client(factory: Callable[[], httpx.AsyncClient]) -> httpx.AsyncClient:
    """A :class:`LazyClient` typed as the client it stands for (sources keep their signatures)."""
    return cast("httpx.AsyncClient", LazyClient(factory))
