"""Redis implementation of the cross-replica FlightLock (redis-py's asyncio client).

A lease is ``SET mv:flight:<key> <token> NX PX <ttl>``, renewed every ttl/3 by a task that extends
it only while the value is still our token (a Lua compare-and-pexpire), and released by a Lua
compare-and-delete followed by ``PUBLISH mv:done:<key>``. Waiters subscribe to that channel and also
poll the lease (in case the holder died, when no message ever comes): they return as soon as the
key is free, at the latest after the bounded wait.

Redis is an accelerator, not a dependency: when it cannot be reached, ``acquire`` hands out a
local lease (the replica fetches on its own: still correct, perhaps a duplicate upstream fetch),
counts the fallback in ``modvault_coordination_fallbacks_total``, and ``status`` reports the
degradation until Redis answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from modvault.cache.coordination.base import Lease, _LocalLease
from modvault.observability.metrics import REGISTRY
from modvault.observability.prom import Counter

LOG = logging.getLogger("modvault.coordination")

FALLBACKS = Counter("modvault_coordination_fallbacks_total",
                    "Coordination operations that fell back to per-process behaviour (Redis unreachable)",
                    ["operation"], registry=REGISTRY)
CROSS_WAITS = Counter("modvault_coordination_waits_total",
                      "Fetches that waited for another replica holding the lease", registry=REGISTRY)

_RENEW = ("if redis.call('get', KEYS[1]) == ARGV[1] then "
          "return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0")
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
# After a failure, how long a replica stops asking Redis before it tries again.
RETRY_AFTER = 5.0


class _RedisLease:
    def __init__(self, owner: RedisFlightLock, key: str, token: str) -> None:
        self.key = key
        self._owner = owner
        self._token = token
        self._renewer = asyncio.get_running_loop().create_task(self._renew())

    async def _renew(self) -> None:
        ttl_ms = int(self._owner.ttl * 1000)
        while True:
            await asyncio.sleep(self._owner.ttl / 3)
            try:
                kept = await self._owner.redis.eval(_RENEW, 1, self._owner.lock_key(self.key),
                                                    self._token, ttl_ms)
            except (RedisError, OSError):
                self._owner.failed("renew")
                continue
            if not kept:
                LOG.warning("lost the lease on %s (expired): another replica may fetch it too", self.key)
                return

    async def release(self) -> None:
        self._renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._renewer
        try:
            await self._owner.redis.eval(_RELEASE, 1, self._owner.lock_key(self.key), self._token)
            await self._owner.redis.publish(self._owner.channel(self.key), b"done")
        except (RedisError, OSError):
            self._owner.failed("release")  # the lease expires by itself


def connect(url: str) -> Any:
    """One asyncio client per process (a pool inside), with short timeouts: Redis is an accelerator."""
    return aioredis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)


class RedisLink:
    """The client and the "Redis is down" state shared by every Redis-backed piece of a process."""

    def __init__(self, url: str, *, prefix: str = "mv:") -> None:
        self.url = url
        self.prefix = prefix
        self.redis: Any = connect(url)
        self._down_until = 0.0

    def failed(self, operation: str, exc: BaseException | None = None) -> None:
        FALLBACKS.labels(operation).inc()
        if time.monotonic() >= self._down_until:
            LOG.warning("coordination: Redis unreachable (%s in %s); falling back to per-process "
                        "behaviour", type(exc).__name__ if exc else "error", operation)
        self._down_until = time.monotonic() + RETRY_AFTER

    def usable(self, operation: str) -> bool:
        """False (and counted as a fallback) while Redis is believed down."""
        if time.monotonic() >= self._down_until:
            return True
        FALLBACKS.labels(operation).inc()
        return False

    def up(self) -> None:
        self._down_until = 0.0

    async def aclose(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self.redis.aclose()


class RedisFlightLock:
    def __init__(self, url: str, *, ttl: float = 30.0, prefix: str = "mv:",
                 link: RedisLink | None = None) -> None:
        self.link = link or RedisLink(url, prefix=prefix)
        self.url = url
        self.ttl = ttl
        self.prefix = prefix
        self.redis: Any = self.link.redis

    def lock_key(self, key: str) -> str:
        return f"{self.prefix}flight:{key}"

    def channel(self, key: str) -> str:
        return f"{self.prefix}done:{key}"

    def failed(self, operation: str, exc: BaseException | None = None) -> None:
        self.link.failed(operation, exc)

    async def acquire(self, key: str) -> Lease | None:
        if not self.link.usable("acquire"):
            return _LocalLease(key)
        token = uuid.uuid4().hex
        try:
            ok = await self.redis.set(self.lock_key(key), token, nx=True, px=int(self.ttl * 1000))
        except (RedisError, OSError) as exc:
            self.failed("acquire", exc)
            return _LocalLease(key)
        if ok:
            return _RedisLease(self, key, token)
        CROSS_WAITS.inc()
        return None

    async def wait(self, key: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pubsub = self.redis.pubsub()
        try:
            await pubsub.subscribe(self.channel(key))
            delay = 0.05
            while time.monotonic() < deadline:
                if not await self.redis.exists(self.lock_key(key)):
                    return
                msg = await pubsub.get_message(ignore_subscribe_messages=True,
                                               timeout=min(delay, max(0.0, deadline - time.monotonic())))
                if msg is not None:
                    return
                delay = min(delay * 2, 0.5)
        except (RedisError, OSError) as exc:
            self.failed("wait", exc)
        finally:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()

    async def probe(self) -> tuple[bool, str]:
        try:
            await self.redis.ping()
        except (RedisError, OSError) as exc:
            self.failed("probe", exc)
            return False, "coordination: redis unreachable, per-process fallback (degraded)"
        self.link.up()
        return True, "coordination: redis"

    async def aclose(self) -> None:
        await self.link.aclose()
