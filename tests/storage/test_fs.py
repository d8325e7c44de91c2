"""The filesystem store: atomic, immutable-when-asked, and strict about keys."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modvault.storage.fs import FileStore
from modvault.storage.memory import MemoryStore

KEY = "github.com/!acme/x/@v/v1.0.0.zip"


@pytest.fixture(params=["fs", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> FileStore | MemoryStore:
    return FileStore(tmp_path / "data") if request.param == "fs" else MemoryStore()


def test_put_stat_read(store: FileStore | MemoryStore) -> None:
    assert store.stat(KEY) is None
    obj = store.put_atomic(KEY, b"hello world")
    assert obj.size == 11
    st = store.stat(KEY)
    assert st is not None and st.size == 11
    assert store.read(KEY) == b"hello world"
    assert store.read_range(KEY, 6, 11) == b"world"
    assert store.list("github.com/!acme/x/@v/") == [KEY]
    assert store.writable()


def test_put_from_temp_file_and_first_writer_wins(store: FileStore | MemoryStore) -> None:
    tmp = store.temp_path()
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_bytes(b"first")
    assert store.put_atomic(KEY, tmp, overwrite=False).written
    assert not tmp.exists()
    tmp2 = store.temp_path()
    tmp2.write_bytes(b"second!")
    obj = store.put_atomic(KEY, tmp2, overwrite=False)
    assert obj.size == 5 and not obj.written and store.read(KEY) == b"first"
    assert not tmp2.exists()
    store.put_atomic(KEY, b"replaced")  # mutable answers may be replaced
    assert store.read(KEY) == b"replaced"


@pytest.mark.parametrize("key", ["/abs/key", "a/../b", "../b", "a//b", "a/./b", "a\x00b", "."])
def test_bad_keys(tmp_path: Path, key: str) -> None:
    fs = FileStore(tmp_path / "data")
    with pytest.raises(ValueError):
        fs.stat(key)
    with pytest.raises(ValueError):
        fs.put_atomic(key, b"x")


def test_leftover_temp_files_are_swept(tmp_path: Path) -> None:
    fs = FileStore(tmp_path / "data")
    partial = fs.temp_path()
    partial.write_bytes(b"half a zip")
    FileStore(tmp_path / "data")
    assert not partial.exists()
    assert os.listdir(fs.tmp) == []


def test_directories_are_not_objects(tmp_path: Path) -> None:
    fs = FileStore(tmp_path / "data")
    fs.put_atomic(KEY, b"x")
    assert fs.stat("github.com/!acme/x/@v") is None
