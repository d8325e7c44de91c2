"""One conformance suite for every Store (see conftest.STORES): atomicity, first writer wins under
concurrency, compare-and-swap conflicts, range reads and streams, listing, large objects."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

import pytest

from modvault.storage.base import StagedFile, Store, VersionConflict, etag_of

T = TypeVar("T")


def is_strong_etag(etag: str) -> bool:
    return len(etag) > 2 and etag[0] == etag[-1] == '"' and not etag.startswith("W/")
KEY = "github.com/!acme/x/@v/v1.0.0.zip"


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


def test_missing_objects_are_none(store: Store) -> None:
    async def main() -> None:
        assert await store.stat(KEY) is None
        assert await store.open(KEY) is None
        assert await store.get(KEY) is None
        assert await store.list("github.com/!acme/x/@v/") == []
        await store.delete(KEY)  # deleting nothing is fine

    run(main())


def test_put_if_absent_then_read_whole_ranged_streamed(store: Store) -> None:
    async def main() -> None:
        info, written = await store.put_if_absent(KEY, b"hello world")
        assert written and info.size == 11 and is_strong_etag(info.etag)
        st = await store.stat(KEY)
        assert st is not None and (st.size, st.etag) == (11, info.etag)
        body = await store.open(KEY)
        assert body is not None and body.info.etag == info.etag
        assert await body.read() == b"hello world"
        assert await body.read(6, 11) == b"world"
        assert await body.read(6) == b"world"
        assert await body.read(3, 3) == b""
        assert [c async for c in body.stream(2, 9, chunk=3)] == [b"llo", b" wo", b"r"]
        got = await store.get(KEY)
        assert got is not None and got[0] == b"hello world" and got[1].etag == info.etag
        assert await store.writable()

    run(main())


def test_first_writer_wins_from_bytes_and_from_files(store: Store, tmp_path: Path) -> None:
    async def main() -> None:
        tmp = tmp_path / "dl-1"
        tmp.write_bytes(b"first")
        info, written = await store.put_if_absent(KEY, tmp)
        assert written and info.size == 5
        assert tmp.read_bytes() == b"first"  # the caller still owns its temp file
        tmp2 = tmp_path / "dl-2"
        tmp2.write_bytes(b"second!")
        info2, written2 = await store.put_if_absent(KEY, tmp2)
        assert not written2 and info2.size == 5 and info2.etag == info.etag
        info3, written3 = await store.put_if_absent(KEY, b"third")
        assert not written3 and info3.etag == info.etag
        got = await store.get(KEY)
        assert got is not None and got[0] == b"first"

    run(main())


def test_staged_file_is_stored_with_its_digest(store: Store, tmp_path: Path) -> None:
    """A download hashed as it was written (StagedFile): same bytes, a strong ETag (the one of
    that digest where the store keeps its own), the caller keeps its temp file, first writer wins."""
    tmp = tmp_path / "dl-staged"
    tmp.write_bytes(b"staged bytes")
    digest = hashlib.sha256(b"staged bytes").hexdigest()

    async def main() -> None:
        info, written = await store.put_if_absent(KEY, StagedFile(tmp, digest))
        assert written and info.size == 12 and is_strong_etag(info.etag)
        if not hasattr(store, "bucket"):  # an S3 server's ETag is its own
            assert info.etag == etag_of(b"staged bytes")
        assert tmp.read_bytes() == b"staged bytes"
        got = await store.get(KEY)
        assert got is not None and got[0] == b"staged bytes"
        other = tmp_path / "dl-other"
        other.write_bytes(b"other")
        again, written2 = await store.put_if_absent(
            KEY, StagedFile(other, hashlib.sha256(b"other").hexdigest()))
        assert not written2 and again.etag == info.etag

    run(main())


def test_first_writer_wins_under_concurrency(stores: tuple[Store, Store]) -> None:
    """Forty writers on two handles race for one key: exactly one wins, everyone sees its bytes."""

    async def main() -> None:
        payloads = [f"payload {i} ".encode() * (i + 1) for i in range(40)]
        results = await asyncio.gather(*(stores[i % 2].put_if_absent(KEY, p)
                                         for i, p in enumerate(payloads)))
        winners = [i for i, (_, w) in enumerate(results) if w]
        assert len(winners) == 1
        won = payloads[winners[0]]
        assert len({info.etag for info, _ in results}) == 1
        got = await stores[1].get(KEY)
        assert got is not None and got[0] == won

    run(main())


def test_put_replaces_atomically(store: Store) -> None:
    async def main() -> None:
        await store.put("m/@v/list", b"v1.0.0\n")
        info = await store.put("m/@v/list", b"v1.0.0\nv1.1.0\n")
        got = await store.get("m/@v/list")
        assert got is not None and got[0] == b"v1.0.0\nv1.1.0\n" and got[1].etag == info.etag
        first = await store.put("m/@v/other", b"v1.0.0\n")
        assert first.etag != info.etag  # other content, other ETag

    run(main())


def test_compare_and_swap(store: Store) -> None:
    async def main() -> None:
        k = ".modvault/state/head"
        first = await store.put_if_version(k, b"one", None)
        with pytest.raises(VersionConflict):
            await store.put_if_version(k, b"again", None)  # exists already
        with pytest.raises(VersionConflict):
            await store.put_if_version(k, b"two", etag_of(b"other"))
        second = await store.put_if_version(k, b"two", first.etag)
        with pytest.raises(VersionConflict):
            await store.put_if_version(k, b"three", first.etag)  # stale version
        got = await store.get(k)
        assert got is not None and got == (b"two", got[1]) and got[1].etag == second.etag

    run(main())


def test_compare_and_swap_under_concurrency(stores: tuple[Store, Store]) -> None:
    """Thirty increments of one counter through two handles, each a read-CAS-retry loop: no
    increment is lost, and conflicts really happened."""
    k = ".modvault/state/counter"
    conflicts = 0

    async def increment(s: Store) -> None:
        nonlocal conflicts
        while True:
            got = await s.get(k)
            value, version = (0, None) if got is None else (int(got[0]), got[1].etag)
            await asyncio.sleep(0)  # let the others read the same version
            try:
                await s.put_if_version(k, str(value + 1).encode(), version)
                return
            except VersionConflict:
                conflicts += 1
                await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(*(increment(stores[i % 2]) for i in range(30)))
        got = await stores[0].get(k)
        assert got is not None and int(got[0]) == 30

    run(main())
    assert conflicts > 0


def test_listing_is_one_level_and_sorted(store: Store) -> None:
    async def main() -> None:
        for name in ("v1.1.0.mod", "v1.0.0.info", "v1.0.0.zip", "list"):
            await store.put_if_absent(f"a/b/@v/{name}", b"x")
        await store.put_if_absent("a/b/c/@v/v2.0.0.mod", b"x")
        await store.put_if_absent("a/bb/@v/v1.0.0.mod", b"x")
        assert await store.list("a/b/@v/") == [f"a/b/@v/{n}" for n in
                                               ("list", "v1.0.0.info", "v1.0.0.zip", "v1.1.0.mod")]
        assert await store.list("a/b/") == []  # nothing directly under a/b/
        await store.delete("a/b/@v/list")
        assert "a/b/@v/list" not in await store.list("a/b/@v/")
        assert await store.stat("a/b/@v/list") is None

    run(main())


def test_large_object_from_file(store: Store, tmp_path: Path) -> None:
    """A 24 MiB file (several multipart parts for a network store): same bytes, same ETag,
    ranges across part boundaries."""
    big = tmp_path / "big.zip"
    block = os.urandom(1 << 20)
    with open(big, "wb") as fh:
        for i in range(24):
            fh.write(bytes([i]) + block[1:])
    want = hashlib.sha256(big.read_bytes()).hexdigest()

    async def main() -> None:
        info, written = await store.put_if_absent(KEY, big)
        assert written and info.size == 24 << 20 and is_strong_etag(info.etag)
        body = await store.open(KEY)
        assert body is not None
        h = hashlib.sha256()
        async for chunk in body.stream():
            h.update(chunk)
        assert h.hexdigest() == want
        edge = (8 << 20) - 3
        assert await body.read(edge, edge + 6) == big.read_bytes()[edge:edge + 6]
        st = await store.stat(KEY)
        assert st is not None and st.etag == info.etag

    run(main())


@pytest.mark.parametrize("key", ["/abs/key", "a/../b", "../b", "a//b", "a/./b", "a\x00b", ".", ""])
def test_bad_keys_are_refused(store: Store, key: str) -> None:
    async def main() -> None:
        with pytest.raises(ValueError):
            await store.stat(key)
        with pytest.raises(ValueError):
            await store.put_if_absent(key, b"x")
        with pytest.raises(ValueError):
            await store.put_if_version(key, b"x", None)

    run(main())
