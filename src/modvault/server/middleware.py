"""The ordered middleware list: cross-cutting concerns around every route, not ``if``s in handlers.

A middleware has two optional hooks. ``before(req)`` runs after routing (so it knows the route and what
it needs) and before the handler, in list order; it may set things on the request (the identity) or
raise a :class:`~modvault.errors.ModvaultError` (401, 403, 429...) which ends the request with that
answer. ``after(req)`` runs once the answer is sent, in list order, whatever happened (logs, metrics).

The list (built by :func:`modvault.server.app.App.build_middleware`) is, in order: client address
(trusted proxies, global allowlist), authentication, authorization, rate limit, access log. Only the
hooks a middleware defines are called, and middleware that is switched off is not in the list at all,
so with auth off the cached-artifact hot path pays for nothing but the access log.
"""

from __future__ import annotations

import time

from modvault.observability import logs, metrics
from modvault.server.request import Request


class Middleware:
    async def before(self, req: Request) -> None:  # pragma: no cover - optional hook
        return None

    def after(self, req: Request, started: float) -> None:  # pragma: no cover - optional hook
        return None


def defines(mw: Middleware, hook: str) -> bool:
    return getattr(type(mw), hook) is not getattr(Middleware, hook)


class AccessLogMiddleware(Middleware):
    """Request metrics and one JSON access-log line per request."""

    def __init__(self, access_log: logs.AccessLog) -> None:
        self.log = access_log

    def after(self, req: Request, started: float) -> None:
        kind, status, size = req.kind, req.status, req.size
        metrics.REQUESTS.inc((kind, str(status)))
        metrics.REQUEST_LATENCY.observe((kind,), time.perf_counter() - started)
        if size:
            metrics.BYTES_SERVED.inc((kind,), size)
        if self.log.enabled:
            self.log(req.method, req.path, status, size, started, req.tier, req.upstream,
                     req.http_version)
