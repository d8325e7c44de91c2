"""Caches stay inside their byte bounds whatever is put in them (README "Memory")."""

from __future__ import annotations

import gc
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from modvault.sources.vcs.git import Blob
from modvault.sources.vcs.source import _Files

blobs = st.lists(st.tuples(st.integers(0, 50), st.integers(0, 300_000)), max_size=80)


@settings(max_examples=60, deadline=None)
@given(blobs)
def test_git_blob_cache_stays_within_its_byte_bound(puts: list[tuple[int, int]]) -> None:
    files = _Files(entries=1000, max_bytes=1 << 20)
    for name, size in puts:
        key = ("https://example.com/repo", "c0ffee", f"f{name}", 0)
        files.put(key, Blob(size, b"x" * size))
        assert files.size <= files.max_bytes
        assert files.size == sum(files._cost(k, v) for k, v in files.items())


def test_git_blob_cache_keeps_recent_small_blobs_and_drops_the_oldest() -> None:
    files = _Files(entries=1000, max_bytes=64 << 10)
    keys = [("r", "c", f"go.mod{i}", 0) for i in range(40)]
    for key in keys:
        files.put(key, Blob(4096, b"m" * 4096))
    assert files.get(keys[-1]) == (True, Blob(4096, b"m" * 4096))
    assert files.get(keys[0]) == (False, None)
    files.put(("r", "c", "missing", 0), None)  # a path absent at that commit is remembered too
    assert files.get(("r", "c", "missing", 0)) == (True, None)


def test_access_log_remembers_a_bounded_number_of_short_lines() -> None:
    """The general path's access lines keep their fixed parts in a memo: bounded in entries and
    in the length of the paths it holds, whatever paths clients send; a repeated line reuses its
    parts."""
    import os

    from modvault.observability import logs

    fd = os.open(os.devnull, os.O_WRONLY)
    log = logs.AccessLog(True, fd=fd)
    for i in range(3 * logs._MEMO_LINES):
        log("GET", f"/example.com/m{i}/@v/list", 404, 10, 0.0, "", "")
        assert len(log._parts) <= logs._MEMO_LINES
    log._parts.clear()
    log("GET", "/x" * logs._MEMO_PATH, 404, 10, 0.0, "", "")
    assert not log._parts
    log("GET", "/example.com/m/@v/list", 200, 10, 0.0, "memory", "")
    parts = next(iter(log._parts.values()))
    log("GET", "/example.com/m/@v/list", 200, 10, 0.0, "memory", "")
    assert len(log._parts) == 1 and next(iter(log._parts.values())) is parts
    os.close(fd)


def test_prebuilt_range_answers_stay_within_their_bound(tmp_path: Path) -> None:
    """Zip entries keep the 206 answers of the Range headers they are asked (hotpath._PARTIALS
    each), at most hotpath._MEMO in the whole table, whatever ranges clients ask; a dropped
    entry gives its share back. In-process, through the app's RSGI entry point."""
    import asyncio

    from modvault.config import Settings
    from modvault.server import hotpath
    from modvault.server.app import App
    from modvault.wiring import build_service
    from tests.support.rsgi import Proto, Scope

    zips = hotpath._MEMO // hotpath._PARTIALS + 20
    d = tmp_path / "data" / "example.com" / "m" / "@v"
    d.mkdir(parents=True)
    for i in range(zips):
        (d / f"v1.0.{i}.zip").write_bytes(bytes(range(256)) * 8)
    settings = Settings(data_dir=str(tmp_path / "data"), upstream="off", offline=True,
                        sumdb_verify=False, access_log=False)

    async def main() -> None:
        app = App(settings)
        app.setup(build_service(settings))
        hot = app.hot
        assert hot is not None
        proto = Proto()
        for i in range(zips):
            path = f"/example.com/m/@v/v1.0.{i}.zip"
            for _ in range(2):  # from the store, then learned
                await app.__rsgi__(Scope(path, {}), proto)
            for n in range(hotpath._PARTIALS + 3):
                await app.__rsgi__(Scope(path, {"range": f"bytes={n}-{n + 9}"}), proto)
                assert proto.status == 206
        kept = sum(len(e.partials) for e in hot.entries.values())
        assert kept == hot.partials_kept == hotpath._MEMO
        assert all(len(e.partials) <= hotpath._PARTIALS for e in hot.entries.values())
        first = "/example.com/m/@v/v1.0.0.zip"
        share = len(hot.entries[first].partials)
        hot.drop(first)
        assert hot.partials_kept == hotpath._MEMO - share
        hot.clear()
        assert hot.partials_kept == 0
        # What a worker leaves to its exit: the descriptors and the service (no fd outlives
        # this test in the test process).
        files = app.renderer.files
        for path in list(files._fds):
            files.forget(path)
        await app.service.aclose()

    asyncio.run(main())
    gc.collect()
