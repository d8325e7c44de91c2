"""Recent fetches and errors, for the dashboard: a middleware that keeps the last few in memory."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from modvault.server.middleware import Middleware

if TYPE_CHECKING:
    from modvault.server.request import Request

KEEP = 100


@dataclass(frozen=True, slots=True)
class Event:
    when: float
    method: str
    path: str  # never the query string (it may carry a token)
    status: int
    kind: str
    upstream: str
    millis: float


class RecentActivity(Middleware):
    """Fetches from upstreams (tier ``upstream``) and error answers; bounded ring buffers."""

    def __init__(self, keep: int = KEEP) -> None:
        self.fetches: deque[Event] = deque(maxlen=keep)
        self.errors: deque[Event] = deque(maxlen=keep)

    def after(self, req: Request, started: float) -> None:
        status = req.status
        if req.tier != "upstream" and status < 400:
            return  # the common case: one comparison per request
        ev = Event(time.time(), req.method, req.path[:300], status, req.kind, req.upstream,
                   (time.perf_counter() - started) * 1000)
        if status >= 400:
            self.errors.append(ev)
        else:
            self.fetches.append(ev)
