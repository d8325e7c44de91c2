"""Hot mutable answers: ``list``, ``@latest`` and queries that were asked for recently are revalidated
before they expire, most popular first, within a budget of upstream requests per minute.

Hotness is a request count with exponential decay by age (half-life ``hot_half_life``): each request
adds 1, and every score halves per half-life. Pure bookkeeping; the runtime does the fetching.
"""

from __future__ import annotations

import math
import time

MAX_KEYS = 10_000


class TokenBucket:
    """``per_minute`` tokens a minute, at most a minute's worth banked. Shared by hot refreshes and
    push refreshes so together they never exceed the upstream budget."""

    def __init__(self, per_minute: int, clock: object = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self.tokens = float(per_minute)
        self.clock = clock
        self.at = self._now()

    def _now(self) -> float:
        return float(self.clock())  # type: ignore[operator]

    def take(self, n: int = 1) -> bool:
        now = self._now()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False


class Hotness:
    def __init__(self, half_life: float) -> None:
        self.decay = math.log(2) / max(half_life, 1e-9)
        self.scores: dict[str, tuple[float, float]] = {}  # key -> (score, as of time)

    def add(self, hits: dict[str, int], now: float) -> None:
        for key, n in hits.items():
            self.scores[key] = (self.score(key, now) + n, now)
        if len(self.scores) > MAX_KEYS:
            ranked = sorted(self.scores, key=lambda k: self.score(k, now), reverse=True)
            self.scores = {k: self.scores[k] for k in ranked[:MAX_KEYS]}

    def score(self, key: str, now: float) -> float:
        item = self.scores.get(key)
        if item is None:
            return 0.0
        value, at = item
        return value * math.exp(-self.decay * max(0.0, now - at))

    def ranked(self, now: float, floor: float = 0.05) -> list[tuple[str, float]]:
        """Keys by current hotness, hottest first; forgets those that have cooled below ``floor``."""
        out = [(k, self.score(k, now)) for k in self.scores]
        cold = [k for k, s in out if s < floor]
        for k in cold:
            del self.scores[k]
        return sorted(((k, s) for k, s in out if s >= floor), key=lambda item: -item[1])
