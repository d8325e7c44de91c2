"""Memory tier (byte-bounded LRU) and single-flight."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modvault.cache.memory import ByteLRU
from modvault.cache.singleflight import SingleFlight


def test_lru_evicts_least_recent_by_bytes() -> None:
    lru: ByteLRU[str] = ByteLRU(10)
    lru.put("a", "A", 4)
    lru.put("b", "B", 4)
    assert lru.get("a") == "A"  # a is now most recent
    lru.put("c", "C", 4)  # over budget: b goes
    assert lru.get("b") is None and lru.get("a") == "A" and lru.get("c") == "C"
    lru.put("big", "X", 11)  # larger than the whole budget: not kept
    assert lru.get("big") is None and lru.size == 8


@given(st.lists(st.tuples(st.sampled_from("abcdefgh"), st.integers(0, 30)), max_size=60))
def test_lru_never_exceeds_budget(ops: list[tuple[str, int]]) -> None:
    lru: ByteLRU[int] = ByteLRU(50)
    for key, size in ops:
        lru.put(key, size, size)
        assert lru.size <= 50
        assert lru.size == sum(lru._items[k][1] for k in lru._items)


def test_single_flight_shares_result_and_error() -> None:
    calls = 0

    async def main() -> None:
        nonlocal calls
        sf: SingleFlight[int] = SingleFlight()

        async def work() -> int:
            nonlocal calls
            calls += 1
            await asyncio.sleep(0.05)
            return 42

        results = await asyncio.gather(*(sf.do("k", work) for _ in range(20)))
        assert [r for r, _ in results] == [42] * 20
        assert sum(1 for _, shared in results if shared) == 19
        assert sf.coalesced == 19

        async def fail() -> int:
            await asyncio.sleep(0.01)
            raise ValueError("boom")

        outcomes = await asyncio.gather(*(sf.do("e", fail) for _ in range(5)),
                                        return_exceptions=True)
        assert all(isinstance(o, ValueError) for o in outcomes)
        assert not sf.inflight("e")  # a later call fetches again

    asyncio.run(main())
    assert calls == 1


def test_single_flight_survives_a_cancelled_caller() -> None:
    async def main() -> None:
        sf: SingleFlight[str] = SingleFlight()

        async def work() -> str:
            await asyncio.sleep(0.05)
            return "done"

        first = asyncio.ensure_future(sf.do("k", work))
        await asyncio.sleep(0.01)
        second = asyncio.ensure_future(sf.do("k", work))
        await asyncio.sleep(0)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert await second == ("done", True)

    asyncio.run(main())
