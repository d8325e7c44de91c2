"""Cross-replica single-flight: the interface and its in-process implementation.

The in-process SingleFlight (cache/singleflight.py) already makes one fetch per key per process;
a FlightLock extends that across processes and replicas: the process that acquires the lease
fetches, the others wait (bounded) for it to finish and then read the result from the shared
store. A lease has an owner token and an expiry, renewed while the fetch runs, so a replica that
dies mid-fetch loses it and another replica takes over.
"""

from __future__ import annotations

from typing import Protocol


class Lease(Protocol):
    key: str

    async def release(self) -> None:
        """Give the key up (and wake the waiters); a no-op when the lease was lost meanwhile."""
        ...


class FlightLock(Protocol):
    async def acquire(self, key: str) -> Lease | None:
        """The lease for *key*, or None when another process holds it."""
        ...

    async def wait(self, key: str, timeout: float) -> None:
        """Return when nobody holds *key* any more (released or expired), or after *timeout*."""
        ...

    async def probe(self) -> tuple[bool, str]:
        """(healthy, a few words for /readyz). Unhealthy coordination degrades, never stops, a replica."""
        ...

    async def aclose(self) -> None: ...


class _LocalLease:
    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key

    async def release(self) -> None:
        return None


class LocalFlightLock:
    """One process: the in-process SingleFlight is all there is, so every acquire succeeds."""

    async def acquire(self, key: str) -> Lease | None:
        return _LocalLease(key)

    async def wait(self, key: str, timeout: float) -> None:
        return None

    async def probe(self) -> tuple[bool, str]:
        return True, "coordination: local"

    async def aclose(self) -> None:
        return None
