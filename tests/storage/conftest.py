"""Store implementations for the conformance suite: each param builds two handles on one backing
store (two "processes" or replicas sharing it) so races between them are tested too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modvault.storage.base import Store
from modvault.storage.fs import FileStore
from modvault.storage.memory import MemoryStore

STORES = ["fs", "memory"]


@pytest.fixture(params=STORES)
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    if request.param == "fs":
        yield FileStore(tmp_path / "data"), FileStore(tmp_path / "data")
    else:
        one = MemoryStore()
        yield one, one


@pytest.fixture
def store(stores: tuple[Store, Store]) -> Store:
    return stores[0]
