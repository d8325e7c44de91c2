"""An HTTP client made when a worker may need it, off the event loop.

The client stack (httpx, httpcore, h2, h11, anyio, certifi's roots parsed into a TLS context) costs
~6 MiB per worker, more where httpcore finds trio installed, and 0.1-0.3 s of CPU to import and
build. A worker of an offline server never talks to an upstream, so wiring hands the sources this
stand-in instead of the client: a server that may fetch makes the real one in a thread right after
start (ModuleService.start awaits :func:`client_ready`, as the fetch paths do), so neither the first
miss nor the event loop waits for it; an offline one never loads it. Should anything reach for the
client before that (any attribute: ``stream``, ``get``, ``timeout``...), it is made there, once.
Closing a client never made makes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from modvault.errors import Unavailable

if TYPE_CHECKING:
    import httpx


class LazyClient:
    """Stands in for an ``httpx.AsyncClient`` until first used; then is a thin pass-through."""

    def __init__(self, factory: Callable[[], httpx.AsyncClient]) -> None:
        self._factory = factory
        self._client: httpx.AsyncClient | None = None
        self._lock = threading.Lock()
        self._making: asyncio.Future[None] | None = None

    @property
    def made(self) -> bool:
        """Whether the real client exists (tests, and aclose)."""
        return self._client is not None

    def real(self) -> httpx.AsyncClient:
        client = self._client
        if client is None:
            with self._lock:  # the maker thread and the loop may both get here first
                if self._client is None:
                    self._client = self._factory()
                client = self._client
        return client

    async def ready(self) -> None:
        """Make the real client in a thread (once; concurrent callers share it)."""
        if self._client is not None:
            return
        if self._making is None:
            loop = asyncio.get_running_loop()
            making: asyncio.Future[None] = loop.create_future()

            def settle(exc: BaseException | None) -> None:
                if exc is None:
                    making.set_result(None)
                else:
                    self._making = None  # the next fetch tries again
                    making.set_exception(exc)

            def make() -> None:
                try:
                    self.real()
                    outcome: BaseException | None = None
                except Exception as exc:
                    outcome = exc
                with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
                    loop.call_soon_threadsafe(settle, outcome)

            self._making = making
            threading.Thread(target=make, name="modvault-http-client", daemon=True).start()
        try:
            await asyncio.shield(self._making)
        except Exception as exc:
            raise Unavailable(f"cannot set up the upstream HTTP client: {exc}") from None

    def __getattr__(self, name: str) -> Any:
        # Only reached for names this class lacks: everything httpx.AsyncClient offers.
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.real(), name)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


async def client_ready(client: object) -> None:
    """Before a fetch: make a lazy client off the event loop (nothing for a real one or None)."""
    if isinstance(client, LazyClient):
        await client.ready()


def lazy_client(factory: Callable[[], httpx.AsyncClient]) -> httpx.AsyncClient:
    """A :class:`LazyClient` typed as the client it stands for (sources keep their signatures)."""
    return cast("httpx.AsyncClient", LazyClient(factory))
