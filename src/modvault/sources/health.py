"""Health of the peers modvault depends on (upstream proxies, checksum databases, git hosts).

Pure bookkeeping, no I/O: callers pass the clock. A :class:`Breaker` is the circuit-breaker state
machine; a :class:`HealthRecord` keeps one peer's breaker, recent latencies and a short memory of
"unreachable"; a :class:`HealthRegistry` holds the records of one process and publishes state changes
(metrics, log lines) through a callback so this module stays free of side effects.

Breaker rules: it opens after ``failures`` consecutive failures, or after ``spike_samples``
consecutive latency samples above both ``spike_factor`` x the moving baseline and ``spike_min``
seconds. While open, nothing is let through until ``backoff`` has passed; then one trial (a request or
a probe) is let through (half-open). Success closes the breaker; failure re-opens it with a doubled
back-off (up to ``backoff_max``).
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


class State(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerPolicy:
    failures: int = 5  # K consecutive failures open the breaker
    spike_factor: float = 2.5
    spike_min: float = 0.8  # seconds: a spike must also be at least this slow
    spike_samples: int = 3
    baseline_alpha: float = 0.1  # weight of a new sample in the slow baseline
    baseline_warmup: int = 3  # samples before the baseline can call anything a spike
    backoff: float = 5.0  # seconds open before the first half-open trial
    backoff_max: float = 120.0
    trial_timeout: float = 30.0  # a half-open trial that never reports is forgotten after this


@dataclass(frozen=True)
class Transition:
    old: State
    new: State
    reason: str


@dataclass
class Breaker:
    """The circuit-breaker state machine of one peer. Every method takes ``now`` (monotonic s)."""

    policy: BreakerPolicy = field(default_factory=BreakerPolicy)
    state: State = State.CLOSED
    consecutive_failures: int = 0
    consecutive_spikes: int = 0
    baseline: float | None = None  # slow EWMA of non-spike latencies, seconds
    samples: int = 0
    opened_at: float = 0.0
    current_backoff: float = 0.0
    trial_started: float | None = None  # half-open: when the one trial was let through

    def retry_at(self) -> float:
        return self.opened_at + self.current_backoff

    def allow(self, now: float) -> tuple[bool, Transition | None]:
        """May a request go to this peer now? Open -> half-open once the back-off has passed."""
        if self.state is State.CLOSED:
            return True, None
        if self.state is State.OPEN:
            if now < self.retry_at():
                return False, None
            self.state = State.HALF_OPEN
            self.trial_started = now
            return True, Transition(State.OPEN, State.HALF_OPEN, "back-off elapsed, one trial")
        # Half-open: only the one trial, unless it went silent.
        if self.trial_started is not None and now - self.trial_started < self.policy.trial_timeout:
            return False, None
        self.trial_started = now
        return True, None

    def is_spike(self, latency: float) -> bool:
        if self.baseline is None or self.samples < self.policy.baseline_warmup:
            return False
        return latency > self.policy.spike_factor * self.baseline and latency >= self.policy.spike_min

    def success(self, now: float, latency: float | None = None) -> Transition | None:
        """The peer answered (``latency``: time to first byte, when measured)."""
        self.consecutive_failures = 0
        spike = latency is not None and self.is_spike(latency)
        if latency is not None and not spike:
            self.consecutive_spikes = 0
            a = self.policy.baseline_alpha
            self.baseline = latency if self.baseline is None else (1 - a) * self.baseline + a * latency
            self.samples += 1
        if self.state is State.HALF_OPEN:
            # The trial answered: close, whatever its latency (the next spikes will tell).
            self.consecutive_spikes = 0
            self.trial_started = None
            self.state = State.CLOSED
            return Transition(State.HALF_OPEN, State.CLOSED, "trial succeeded")
        if spike:
            assert latency is not None and self.baseline is not None
            self.consecutive_spikes += 1
            if self.consecutive_spikes >= self.policy.spike_samples and self.state is State.CLOSED:
                return self._open(now, f"latency spike: {self.consecutive_spikes} answers slower than "
                                       f"{self.policy.spike_factor:g}x the {self.baseline * 1000:.0f} ms "
                                       f"baseline (last {latency * 1000:.0f} ms)")
        return None

    def failure(self, now: float, reason: str = "") -> Transition | None:
        self.consecutive_failures += 1
        if self.state is State.HALF_OPEN:
            return self._open(now, f"trial failed: {reason}".rstrip(": "), escalate=True)
        if self.state is State.CLOSED and self.consecutive_failures >= self.policy.failures:
            return self._open(now, f"{self.consecutive_failures} consecutive failures"
                                   + (f", last: {reason}" if reason else ""))
        return None

    def _open(self, now: float, reason: str, escalate: bool = False) -> Transition:
        old = self.state
        if escalate and self.current_backoff:
            self.current_backoff = min(self.policy.backoff_max, self.current_backoff * 2)
        else:
            self.current_backoff = self.policy.backoff
        self.state = State.OPEN
        self.opened_at = now
        self.trial_started = None
        self.consecutive_spikes = 0
        return Transition(old, State.OPEN, reason)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in [0, 100])."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class HealthRecord:
    """One peer: its breaker, what it did lately, and a short memory of being unreachable."""

    name: str
    kind: str  # "proxy", "sumdb", "git", "direct"
    breaker: Breaker
    window: int = 256
    recent: float | None = None  # fast EWMA of latency (what "fastest" orders by)
    latencies: deque[float] = field(default_factory=deque)
    successes: int = 0
    failures: int = 0
    skipped: int = 0
    last_used: float | None = None
    last_success: float | None = None
    last_failure: float | None = None
    last_error: str = ""
    answered_last: bool = True  # False after a failure with no answer at all (connect, silence)
    unreachable_until: float = 0.0

    def __post_init__(self) -> None:
        self.latencies = deque(maxlen=self.window)

    @property
    def state(self) -> State:
        return self.breaker.state

    def unreachable(self, now: float) -> bool:
        return now < self.unreachable_until

    def observe_latency(self, latency: float) -> None:
        self.latencies.append(latency)
        self.recent = latency if self.recent is None else 0.5 * (self.recent + latency)

    def percentiles(self) -> dict[str, float]:
        values = sorted(self.latencies)
        return {f"p{q}": percentile(values, q) for q in (50, 90, 99)}


Listener = Callable[[HealthRecord, Transition], None]


class HealthRegistry:
    """The health records of one process, by peer name (configured names: a bounded set).

    ``listener`` hears every breaker transition (metrics and log lines live there, not here).
    """

    def __init__(self, policy: BreakerPolicy | None = None, *, unreachable_memory: float = 5.0,
                 clock: Callable[[], float] | None = None, listener: Listener | None = None,
                 max_records: int = 256) -> None:
        import time

        self.policy = policy or BreakerPolicy()
        self.unreachable_memory = unreachable_memory
        self.clock = clock or time.monotonic
        self.listener = listener
        self.max_records = max_records
        self.records: dict[str, HealthRecord] = {}

    def get(self, name: str, kind: str) -> HealthRecord:
        rec = self.records.get(name)
        if rec is None:
            if len(self.records) >= self.max_records:
                name, kind = "other", kind  # bounded: fold the excess into one record
                rec = self.records.get(name)
                if rec is not None:
                    return rec
            rec = self.records[name] = HealthRecord(name, kind, Breaker(self.policy))
        return rec

    def _publish(self, rec: HealthRecord, t: Transition | None) -> None:
        if t is not None and self.listener is not None:
            self.listener(rec, t)

    def allow(self, rec: HealthRecord, *, use: bool = True) -> bool:
        """Should a request go to this peer now? ``use``: a real request (marks the peer in use,
        honours the unreachable memory); else a probe, which only asks the breaker."""
        now = self.clock()
        if use:
            rec.last_used = now
            if rec.unreachable(now) and rec.state is State.CLOSED:
                rec.skipped += 1
                return False
        ok, t = rec.breaker.allow(now)
        self._publish(rec, t)
        if not ok and use:
            rec.skipped += 1
        return ok

    def success(self, rec: HealthRecord, latency: float | None = None) -> None:
        now = self.clock()
        rec.successes += 1
        rec.answered_last = True
        rec.last_success = now
        rec.unreachable_until = 0.0
        if latency is not None:
            rec.observe_latency(latency)
        self._publish(rec, rec.breaker.success(now, latency))

    def failure(self, rec: HealthRecord, reason: str, *, answered: bool = True) -> None:
        now = self.clock()
        rec.failures += 1
        rec.answered_last = answered
        rec.last_failure = now
        rec.last_error = reason
        self._publish(rec, rec.breaker.failure(now, reason))

    def remember_unreachable(self, rec: HealthRecord, reason: str) -> None:
        """A whole fetch failed to reach the peer: answer the next requests from this for a while.
        Only when its last attempt got no answer at all (a cut body or a 5xx is not "unreachable")."""
        if rec.answered_last:
            return
        rec.last_error = reason
        rec.unreachable_until = self.clock() + self.unreachable_memory

    def why_skipped(self, rec: HealthRecord) -> str:
        now = self.clock()
        if rec.state is not State.CLOSED:
            wait = max(0.0, rec.breaker.retry_at() - now)
            return (f"{rec.name}: circuit open ({rec.last_error or 'unhealthy'}); "
                    f"next trial in {wait:.0f}s")
        return f"{rec.name}: unreachable moments ago ({rec.last_error or 'no answer'})"
