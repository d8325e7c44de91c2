"""Retries for untrusted HTTP peers (upstream proxies, checksum databases), in one place.

An attempt is retried on connection errors, timeouts between bytes, and answers it marks with
:class:`Retry` (429/502/503/504), with exponential backoff and full jitter, honouring Retry-After,
until ``retries`` retries are spent or the total deadline would pass. NotFound/Gone and every other
error end the loop at once.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol, TypeVar

from modvault.errors import Gone, ModvaultError, NotFound, Unavailable, UpstreamTimeout

if TYPE_CHECKING:
    pass

T = TypeVar("T")

RETRY_STATUSES = frozenset({429, 502, 503, 504})


class RetryPolicy(Protocol):
    """What the loop needs to know (UpstreamLimits provides it)."""

    @property
    def total_timeout(self) -> float: ...
    @property
    def retries(self) -> int: ...
    @property
    def backoff_base(self) -> float: ...
    @property
    def backoff_max(self) -> float: ...


class Retry(Exception):
    """Raised by an attempt: this failure is worth another try (after ``retry_after`` if given)."""

    def __init__(self, error: ModvaultError, retry_after: float | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.retry_after = retry_after


def retry_after(value: str | None) -> float | None:
    """Retry-After is delay-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    import email.utils  # with the email package (0.3 MiB): loaded by the first such date

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def describe(exc: BaseException) -> str:
    """A transport failure in words a user can act on; never a URL with credentials."""
    import httpx  # loaded with the first upstream request (sources/lazyclient.py)

    from modvault.sources.loopnet import HeadRefused
    if isinstance(exc, httpx.RemoteProtocolError):
        if isinstance(exc.__cause__, HeadRefused):  # an endless run of informational heads
            return str(exc.__cause__)
        return "connection closed before the answer was complete"
    if isinstance(exc, httpx.ConnectError):
        return "cannot connect"
    return type(exc).__name__


async def with_retries(name: str, what: str, policy: RetryPolicy, attempt: Callable[[], Awaitable[T]],
                       *, on_outcome: Callable[[str], None] | None = None,
                       on_retry: Callable[[], None] | None = None,
                       stop: Callable[[], bool] | None = None,
                       on_unreachable: Callable[[str], None] | None = None) -> T:
    """Run ``attempt`` until it succeeds, fails for good, or the total deadline passes.

    ``on_outcome`` gets "ok", "notfound" or "error" once; ``on_retry`` is called before each retry;
    ``stop`` (e.g. "the peer's breaker opened") ends retrying early; ``on_unreachable`` hears the
    reason when the loop gives up after a connection-level failure (no answer at all).
    """
    import httpx  # loaded with the first upstream request (sources/lazyclient.py)
    deadline = time.monotonic() + policy.total_timeout
    tries = 0
    outcome = "error"
    try:
        while True:
            tries += 1
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise UpstreamTimeout(f"{name}: {what}: deadline exceeded")
            delay: float | None = None
            transport = False
            try:
                async with asyncio.timeout(remaining):
                    result = await attempt()
                outcome = "ok"
                return result
            except Retry as r:
                err: ModvaultError = r.error
                delay = r.retry_after
            except TimeoutError:
                raise UpstreamTimeout(f"{name}: {what}: no complete answer within "
                                      f"{policy.total_timeout:g}s") from None
            except httpx.TimeoutException:
                err = UpstreamTimeout(f"{name}: {what}: timed out")
                transport = True
            except httpx.TooManyRedirects:
                raise Unavailable(f"{name}: {what}: too many redirects") from None
            except (httpx.TransportError, OSError) as exc:
                err = Unavailable(f"{name}: {what}: {describe(exc)}")
                transport = True
            except (NotFound, Gone):
                outcome = "notfound"
                raise
            backoff = min(policy.backoff_max, policy.backoff_base * 2 ** (tries - 1))
            wait = delay if delay is not None else random.uniform(0, backoff)
            if (tries > policy.retries or time.monotonic() + wait >= deadline
                    or (stop is not None and stop())):
                if transport and on_unreachable is not None:
                    on_unreachable(err.message.rsplit(": ", 1)[-1])
                raise err
            if on_retry is not None:
                on_retry()
            await asyncio.sleep(wait)
    finally:
        if on_outcome is not None:
            on_outcome(outcome)
