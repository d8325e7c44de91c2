"""Redis implementations of the shared-state interfaces (state.py), on one RedisLink per process.

Every call is bounded by the client's short socket timeouts; a failure marks Redis down for a few
seconds (counted in ``modvault_coordination_fallbacks_total``, logged once) and the call answers as
the local implementation would: no shared not-found answer, refresh ourselves, per-process rate
buckets, changes only among this machine's workers. The one exception is the private log's writer
lease, which refuses (503) rather than let two writers race.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator

from redis.exceptions import RedisError

from modvault.cache.coordination.redis import LOG, RedisLink
from modvault.cache.coordination.state import Change, ChangeHandler, LocalChanges
from modvault.errors import CoordinationError

# A token bucket per key, timed by Redis's own clock (replicas' clocks may differ).
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1])
local ts = tonumber(b[2])
if tokens == nil or ts == nil then tokens = burst ts = now end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""
_RENEW = ("if redis.call('get', KEYS[1]) == ARGV[1] then "
          "return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0")
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
_ERRORS = (RedisError, OSError, asyncio.TimeoutError)


class RedisNegative:
    """Not-found answers shared by every replica, each under its own key with the ttl as expiry."""

    def __init__(self, link: RedisLink) -> None:
        self.link = link

    def _key(self, key: str) -> str:
        return f"{self.link.prefix}neg:{key}"

    async def get(self, key: str) -> tuple[str, str] | None:
        if not self.link.usable("negative"):
            return None
        try:
            raw = await self.link.redis.get(self._key(key))
        except _ERRORS as exc:
            self.link.failed("negative", exc)
            return None
        if raw is None:
            return None
        try:
            kind, message = json.loads(raw)
            return str(kind), str(message)
        except (ValueError, TypeError):
            return None

    async def put(self, key: str, kind: str, message: str, ttl: float) -> None:
        if ttl <= 0 or not self.link.usable("negative"):
            return
        try:
            await self.link.redis.set(self._key(key), json.dumps([kind, message[:1000]]),
                                      px=max(1, int(ttl * 1000)))
        except _ERRORS as exc:
            self.link.failed("negative", exc)

    async def delete(self, keys: list[str]) -> None:
        if not keys or not self.link.usable("negative"):
            return
        try:
            await self.link.redis.delete(*(self._key(k) for k in keys))
        except _ERRORS as exc:
            self.link.failed("negative", exc)


class RedisFreshness:
    """Who revalidates a stale list/@latest: the first replica to claim it within the ttl."""

    def __init__(self, link: RedisLink) -> None:
        self.link = link

    async def claim(self, key: str, ttl: float) -> bool:
        if not self.link.usable("freshness"):
            return True
        try:
            got = await self.link.redis.set(f"{self.link.prefix}fresh:{key}", b"1", nx=True,
                                            px=max(1, int(ttl * 1000)))
        except _ERRORS as exc:
            self.link.failed("freshness", exc)
            return True
        return bool(got)


class RedisRateLimiter:
    """Rate-limit buckets shared by every replica; per-process buckets while Redis is down."""

    def __init__(self, link: RedisLink) -> None:
        from modvault.auth.middleware import TokenBuckets

        self.link = link
        self.local = TokenBuckets()

    async def take(self, key: str, rate: float, burst: float) -> float:
        if self.link.usable("ratelimit"):
            try:
                wait = await self.link.redis.eval(_TAKE, 1, f"{self.link.prefix}rate:{key}",
                                                  repr(rate), repr(burst))
                return max(0.0, float(wait))
            except _ERRORS as exc:
                self.link.failed("ratelimit", exc)
        return self.local.take(key, rate, burst, time.monotonic())


class RedisChanges:
    """Changes published on one channel; every worker of every replica subscribes. The workers of
    this machine also see the mapped token (LocalChanges), so a Redis outage leaves them informed.
    After an outage (messages may have been missed) the handler is told to forget everything."""

    def __init__(self, link: RedisLink, local: LocalChanges) -> None:
        self.link = link
        self.local = local
        self.channel = f"{link.prefix}changes"
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()

    def changed(self) -> bool:
        return self.local.changed()

    def pending(self) -> bool:
        return self.local.pending()

    async def announce(self, change: Change) -> None:
        self.local.bump()
        try:
            await self.link.redis.publish(self.channel, change.encode())
        except _ERRORS as exc:
            self.link.failed("announce", exc)

    def start(self, handler: ChangeHandler) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._listen(handler))

    async def _listen(self, handler: ChangeHandler) -> None:
        missed = False
        while True:
            pubsub = self.link.redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                self.subscribed.set()
                if missed:
                    LOG.info("coordination: listening for changes again; forgetting cached answers")
                    handler(None)
                    missed = False
                while True:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if msg is None or msg.get("type") != "message":
                        continue
                    change = Change.decode(msg["data"])
                    if change is not None:  # not ours (or garbled): ignored
                        handler(change)
            except _ERRORS as exc:
                self.subscribed.clear()
                self.link.failed("subscribe", exc)
                missed = True
            finally:
                with contextlib.suppress(*_ERRORS):
                    await pubsub.aclose()
            await asyncio.sleep(1.0)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.local.aclose()


class RedisWriterLease:
    """The one writer of a private checksum log: ``SET NX PX`` with an owner token, renewed while
    the append runs, released by compare-and-delete. The store's compare-and-swap on the log head
    still guards against a lost lease; without Redis, appends are refused (503)."""

    def __init__(self, link: RedisLink, *, ttl: float = 10.0, wait: float = 30.0) -> None:
        self.link = link
        self.ttl = ttl
        self.wait = wait

    @contextlib.asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[None]:
        key = f"{self.link.prefix}writer:{name}"
        token = uuid.uuid4().hex
        ttl_ms = max(1000, int(self.ttl * 1000))
        deadline = time.monotonic() + self.wait
        delay = 0.02
        while True:
            try:
                if await self.link.redis.set(key, token, nx=True, px=ttl_ms):
                    break
            except _ERRORS as exc:
                self.link.failed("writer_lease", exc)
                raise CoordinationError(
                    f"private checksum database {name}: coordination (Redis) unreachable; "
                    "appends are refused until it returns (no risk of a forked log)") from None
            if time.monotonic() >= deadline:
                raise CoordinationError(f"private checksum database {name}: another replica has "
                                        f"held the writer lease for over {self.wait:g} s; retry later")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.25)
        renewer = asyncio.get_running_loop().create_task(self._renew(key, token, ttl_ms))
        try:
            yield
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            try:
                await self.link.redis.eval(_RELEASE, 1, key, token)
            except _ERRORS as exc:
                self.link.failed("writer_lease", exc)  # it expires by itself

    async def _renew(self, key: str, token: str, ttl_ms: int) -> None:
        while True:
            await asyncio.sleep(ttl_ms / 3000)
            try:
                if not await self.link.redis.eval(_RENEW, 1, key, token, ttl_ms):
                    LOG.warning("lost the private log's writer lease on %s", key)
                    return
            except _ERRORS as exc:
                self.link.failed("writer_lease", exc)
