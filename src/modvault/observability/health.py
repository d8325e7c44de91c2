"""Where breaker transitions become metrics and log lines (the health records themselves are pure)."""

from __future__ import annotations

import logging

from modvault.observability import metrics
from modvault.sources.health import HealthRecord, State, Transition

LOG = logging.getLogger("modvault.health")


def publish_state(rec: HealthRecord) -> None:
    for state in State:
        metrics.BREAKER_STATE.labels(rec.name, rec.kind, state.value).set(
            1.0 if rec.state is state else 0.0)


def on_transition(rec: HealthRecord, t: Transition) -> None:
    """Listener for HealthRegistry: one metric update and one log line per transition."""
    metrics.BREAKER_TRANSITIONS.labels(rec.name, t.new.value).inc()
    publish_state(rec)
    level = logging.WARNING if t.new is State.OPEN else logging.INFO
    LOG.log(level, "circuit %s -> %s for %s %s: %s", t.old.value, t.new.value, rec.kind, rec.name,
            t.reason)
