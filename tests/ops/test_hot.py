"""Hotness (decayed request counts) and the shared upstream refresh budget."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modvault.ops.hot import Hotness, TokenBucket


def test_scores_decay_by_half_life_and_rank() -> None:
    h = Hotness(half_life=100.0)
    h.add({"a": 8, "b": 3}, now=0.0)
    assert h.score("a", 100.0) == pytest.approx(4.0)
    h.add({"b": 2}, now=100.0)  # b: 1.5 decayed + 2
    assert h.score("b", 100.0) == pytest.approx(3.5)
    assert [k for k, _ in h.ranked(100.0)] == ["a", "b"]
    assert h.score("a", 300.0) == pytest.approx(1.0) and h.score("b", 300.0) == pytest.approx(0.875)
    h.add({"b": 1}, now=300.0)  # recent requests outweigh old ones
    assert [k for k, _ in h.ranked(300.0)] == ["b", "a"]
    assert h.ranked(5000.0) == [] and h.scores == {}  # cooled keys are forgotten


@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(1, 50)), min_size=1, max_size=20),
       st.floats(1.0, 1e5))
def test_decay_is_monotone(hits: list[tuple[str, int]], later: float) -> None:
    h = Hotness(half_life=600.0)
    for i, (key, n) in enumerate(hits):
        h.add({key: n}, now=float(i))
    t = float(len(hits))
    for key in "abc":
        assert h.score(key, t + later) <= h.score(key, t)


def test_token_bucket_budget() -> None:
    clock = [0.0]
    b = TokenBucket(60, clock=lambda: clock[0])
    assert sum(b.take() for _ in range(100)) == 60  # a minute's worth banked, no more
    clock[0] += 1.0
    assert b.take() and not b.take()  # one token a second
    clock[0] += 3600.0
    assert sum(b.take() for _ in range(100)) == 60
    assert not TokenBucket(0, clock=lambda: 0.0).take()
