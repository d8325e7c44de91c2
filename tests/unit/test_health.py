"""The circuit breaker and health records: pure state machines driven by a fake clock."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modvault.sources.chain import Chain, health_rank, latency_bucket, pipe_groups
from modvault.sources.health import (
    Breaker,
    BreakerPolicy,
    HealthRegistry,
    State,
    Transition,
    percentile,
)

POLICY = BreakerPolicy(failures=3, spike_factor=2.5, spike_min=0.8, spike_samples=3,
                       baseline_warmup=3, backoff=5.0, backoff_max=40.0, trial_timeout=30.0)

# (events, expected final state); events: "ok" (fast success), "slow" (2 s success), "fail",
# "t+N" (advance the clock N s), "allow" / "deny" (ask; assert the answer)
TABLE = [
    (["fail", "fail"], State.CLOSED),
    (["fail", "fail", "fail"], State.OPEN),
    (["fail", "fail", "ok", "fail", "fail"], State.CLOSED),  # consecutive only
    (["fail", "fail", "fail", "deny", "t+4.9", "deny"], State.OPEN),
    (["fail", "fail", "fail", "t+5", "allow", "deny"], State.HALF_OPEN),  # one trial at a time
    (["fail", "fail", "fail", "t+5", "allow", "ok", "allow"], State.CLOSED),
    (["fail", "fail", "fail", "t+5", "allow", "fail", "t+9.9", "deny"], State.OPEN),  # back-off x2
    (["fail", "fail", "fail", "t+5", "allow", "fail", "t+10", "allow"], State.HALF_OPEN),
    (["fail", "fail", "fail", "t+5", "allow", "t+30", "allow"], State.HALF_OPEN),  # silent trial
    # latency: three fast answers set the baseline; three slow ones in a row open the breaker
    (["ok", "ok", "ok", "slow", "slow"], State.CLOSED),
    (["ok", "ok", "ok", "slow", "slow", "slow"], State.OPEN),
    (["ok", "ok", "ok", "slow", "slow", "ok", "slow"], State.CLOSED),  # consecutive only
    (["slow", "slow", "slow", "slow"], State.CLOSED),  # no baseline yet: nothing is a spike
    (["ok", "ok", "ok", "slow", "slow", "slow", "t+5", "allow", "slow", "allow"], State.CLOSED),
]


def run(events: list[str]) -> Breaker:
    b = Breaker(POLICY)
    now = 0.0
    for e in events:
        if e.startswith("t+"):
            now += float(e[2:])
        elif e == "ok":
            b.success(now, 0.1)
        elif e == "slow":
            b.success(now, 2.0)
        elif e == "fail":
            b.failure(now, "cannot connect")
        else:
            ok, _ = b.allow(now)
            assert ok == (e == "allow"), (events, e)
    return b


@pytest.mark.parametrize(("events", "state"), TABLE)
def test_breaker_table(events: list[str], state: State) -> None:
    assert run(events).state is state


def test_spike_needs_the_floor_too() -> None:
    """3x a 10 ms baseline is a spike by ratio, but under spike_min: not a spike."""
    b = Breaker(POLICY)
    for _ in range(5):
        b.success(0, 0.01)
    for _ in range(10):
        b.success(0, 0.05)
    assert b.state is State.CLOSED


def test_spikes_do_not_drag_the_baseline_up() -> None:
    b = Breaker(POLICY)
    for _ in range(3):
        b.success(0, 0.1)
    base = b.baseline
    b.success(0, 5.0)
    assert b.baseline == base


def test_transitions_are_reported() -> None:
    b = Breaker(POLICY)
    assert b.failure(0, "x") is None
    assert b.failure(0, "x") is None
    t = b.failure(0, "refused")
    assert isinstance(t, Transition) and (t.old, t.new) == (State.CLOSED, State.OPEN)
    assert "3 consecutive failures" in t.reason and "refused" in t.reason
    _, t2 = b.allow(5)
    assert t2 is not None and t2.new is State.HALF_OPEN
    t3 = b.success(5, 0.1)
    assert t3 is not None and (t3.old, t3.new) == (State.HALF_OPEN, State.CLOSED)


def test_backoff_is_capped() -> None:
    b = Breaker(POLICY)
    now = 0.0
    for _ in range(3):
        b.failure(now)
    for _ in range(10):
        now = b.retry_at()
        assert b.allow(now)[0]
        b.failure(now)
    assert b.current_backoff == POLICY.backoff_max


EVENT = st.one_of(st.just("ok"), st.just("slow"), st.just("fail"), st.just("ask"),
                  st.floats(min_value=0, max_value=100).map(lambda d: f"t+{d}"))


@settings(max_examples=300, deadline=None)
@given(st.lists(EVENT, max_size=60))
def test_breaker_invariants(events: list[str]) -> None:
    """Whatever happens: open never lets a request through before its back-off; half-open lets at
    most one trial through per trial_timeout; a success while half-open always closes."""
    b = Breaker(POLICY)
    now = 0.0
    for e in events:
        if e.startswith("t+"):
            now += float(e[2:])
            continue
        before = b.state
        if e == "ask":
            ok, _ = b.allow(now)
            if before is State.OPEN and now < b.opened_at + b.current_backoff:
                assert not ok
            if ok:
                assert b.state in (State.CLOSED, State.HALF_OPEN)
            if before is State.HALF_OPEN and ok:
                assert b.trial_started == now
        elif e == "fail":
            b.failure(now)
            if before is not State.CLOSED:
                assert b.state is State.OPEN
        else:
            b.success(now, 0.1 if e == "ok" else 2.0)
            if before is State.HALF_OPEN:
                assert b.state is State.CLOSED
        assert POLICY.backoff <= b.current_backoff <= POLICY.backoff_max or b.current_backoff == 0


def test_registry_unreachable_memory_and_listener() -> None:
    now = [0.0]
    seen: list[tuple[str, State]] = []
    reg = HealthRegistry(POLICY, unreachable_memory=3.0, clock=lambda: now[0],
                         listener=lambda rec, t: seen.append((rec.name, t.new)))
    rec = reg.get("https://a", "proxy")
    assert reg.get("https://a", "proxy") is rec
    assert reg.allow(rec)
    reg.failure(rec, "answered 503")
    reg.remember_unreachable(rec, "answered 503")  # it answered: not unreachable
    assert reg.allow(rec)
    reg.failure(rec, "cannot connect", answered=False)
    reg.remember_unreachable(rec, "cannot connect")
    assert not reg.allow(rec)
    assert "unreachable moments ago (cannot connect)" in reg.why_skipped(rec)
    assert reg.allow(rec, use=False)  # probes ignore the memory
    now[0] = 3.0
    assert reg.allow(rec)
    reg.failure(rec, "cannot connect")
    assert seen == [("https://a", State.OPEN)]
    assert "circuit open" in reg.why_skipped(rec)
    now[0] = 8.0
    assert reg.allow(rec, use=False)
    reg.success(rec, 0.01)
    assert seen[-2:] == [("https://a", State.HALF_OPEN), ("https://a", State.CLOSED)]
    assert rec.successes == 1 and rec.failures == 3 and rec.skipped == 1


def test_registry_is_bounded() -> None:
    reg = HealthRegistry(POLICY, max_records=3)
    recs = {reg.get(f"host{i}", "git").name for i in range(10)}
    assert len(reg.records) <= 3 + 1 and "other" in recs


def test_percentiles() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 99) == 4.0
    assert math.isnan(percentile([], 50))
    reg = HealthRegistry(POLICY)
    rec = reg.get("x", "proxy")
    for i in range(1, 101):
        reg.success(rec, i / 1000)
    p = rec.percentiles()
    assert p["p50"] == 0.05 and p["p90"] == 0.09 and p["p99"] == 0.099


@pytest.mark.parametrize(("flags", "groups"), [
    ([False], [[0]]),
    ([True, False], [[0, 1]]),
    ([True, False, False], [[0, 1], [2]]),
    ([False, True, True, False], [[0], [1, 2, 3]]),
    ([True, True], [[0, 1]]),
])
def test_pipe_groups(flags: list[bool], groups: list[list[int]]) -> None:
    assert pipe_groups(flags) == groups


@given(st.floats(min_value=0, max_value=100), st.floats(min_value=0, max_value=100))
def test_latency_bucket_is_monotonic(a: float, b: float) -> None:
    if a <= b:
        assert latency_bucket(a) <= latency_bucket(b)


def test_health_rank_orders_usable_then_fast() -> None:
    reg = HealthRegistry(POLICY, clock=lambda: 0.0)
    fast, slow, dead = reg.get("fast", "proxy"), reg.get("slow", "proxy"), reg.get("dead", "proxy")
    reg.success(fast, 0.002)
    reg.success(slow, 0.5)
    for _ in range(3):
        reg.failure(dead, "x")
    ranks = sorted([("slow", health_rank(slow, 0)), ("dead", health_rank(dead, 0)),
                    ("fast", health_rank(fast, 0))], key=lambda x: x[1])
    assert [n for n, _ in ranks] == ["fast", "slow", "dead"]
    assert latency_bucket(0.002) == latency_bucket(0.004)  # near-equal: list order decides


class _Member:
    """A chain member as far as ordering sees it: a name and, for HTTP upstreams, a record."""

    def __init__(self, name: str, record: object = None) -> None:
        self.name = name
        self.record = record


def test_fastest_puts_unmeasured_direct_after_healthy_proxies_before_open_ones() -> None:
    reg = HealthRegistry(POLICY, clock=lambda: 0.0)
    slow, dead = reg.get("slow", "proxy"), reg.get("dead", "proxy")
    reg.success(slow, 2.0)  # very slow, but measured and healthy
    for _ in range(3):
        reg.failure(dead, "x")
    direct, a, b = _Member("direct"), _Member("slow", slow), _Member("dead", dead)
    chain = Chain([(direct, True), (b, True), (a, False)], strategy="fastest",  # type: ignore[list-item]
                  health=reg)
    assert [s.name for s, _ in chain.ordered() if s is not None] == ["slow", "direct", "dead"]
    assert [f for _, f in chain.ordered()] == [True, True, False]  # the group's last keeps its flag
