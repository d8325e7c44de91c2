"""Caches stay inside their byte bounds whatever is put in them (README "Memory")."""

from __future__ import annotations

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

    log = logs.AccessLog(True, fd=os.open(os.devnull, os.O_WRONLY))
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
