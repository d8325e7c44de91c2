"""Store implementations for the conformance suite: each param builds two handles on one backing
store (two processes or replicas sharing it) so races between them are tested too. The S3 store
runs against a real SeaweedFS started for the session (a fresh key prefix per test)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from modvault.storage.base import Store
from modvault.storage.fs import FileStore
from modvault.storage.memory import MemoryStore
from tests.support.moto_s3 import MotoS3, moto_binary
from tests.support.seaweed import REGION, SeaweedS3, s3_credentials_env

STORES = ["fs", "memory", "s3",
          pytest.param("moto", marks=pytest.mark.skipif(
              moto_binary() is None, reason="moto_server not installed (optional second S3 server)"))]


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    server = SeaweedS3(tmp_path_factory.mktemp("seaweed"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3]:
    server = MotoS3(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()


def s3_store(server: SeaweedS3 | MotoS3, prefix: str) -> Store:
    from modvault.storage.s3 import S3Store

    return S3Store(server.bucket, prefix=prefix, endpoint=server.endpoint, region=REGION)


@pytest.fixture(params=STORES)
def stores(request: pytest.FixtureRequest, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Store, Store]]:
    if request.param == "fs":
        yield FileStore(tmp_path / "data"), FileStore(tmp_path / "data")
    elif request.param == "memory":
        one = MemoryStore()
        yield one, one
    else:
        if request.param == "moto" and "under_concurrency" in request.node.name:
            # Seen here: moto lost one of 30 concurrent If-Match updates (its conditional writes
            # are check-then-write), so it is no store for the private log; SeaweedFS holds.
            request.applymarker(pytest.mark.xfail(reason="moto's If-Match is not atomic under "
                                                         "concurrency", strict=False))
        server: SeaweedS3 | MotoS3 = request.getfixturevalue(
            "moto" if request.param == "moto" else "seaweed")
        for k, v in s3_credentials_env().items():
            monkeypatch.setenv(k, v)
        prefix = f"t-{uuid.uuid4().hex[:12]}"
        yield s3_store(server, prefix), s3_store(server, prefix)


@pytest.fixture
def store(stores: tuple[Store, Store]) -> Store:
    return stores[0]
