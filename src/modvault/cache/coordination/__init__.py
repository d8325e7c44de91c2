"""Coordination between replicas: small injected interfaces, in-process and Redis implementations.
wiring.py chooses one from the ``coordination`` setting; the service never knows which it has."""

from modvault.cache.coordination.base import FlightLock, Lease, LocalFlightLock

__all__ = ["FlightLock", "Lease", "LocalFlightLock"]
