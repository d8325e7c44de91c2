"""What only the filesystem store promises: GOPROXY layout, ETag kept with the file, crash leftovers."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

from modvault.storage.base import etag_of
from modvault.storage.fs import XATTR, FileStore

KEY = "github.com/!acme/x/@v/v1.0.0.zip"


def test_layout_is_a_file_goproxy_and_etag_is_kept_with_the_file(tmp_path: Path) -> None:
    fs = FileStore(tmp_path / "data")
    info, _ = asyncio.run(fs.put_if_absent(KEY, b"zip bytes"))
    path = tmp_path / "data" / KEY
    assert path.read_bytes() == b"zip bytes" and info.local_path == str(path)
    assert os.getxattr(path, XATTR).decode() == etag_of(b"zip bytes")
    # The ETag is read back, not recomputed: a changed attribute shows through.
    os.setxattr(path, XATTR, b'"kept"')
    st = asyncio.run(fs.stat(KEY))
    assert st is not None and st.etag == '"kept"'


def test_files_placed_by_hand_get_an_etag_once(tmp_path: Path) -> None:
    fs = FileStore(tmp_path / "data")
    path = tmp_path / "data" / KEY
    path.parent.mkdir(parents=True)
    path.write_bytes(b"copied in")
    st = asyncio.run(fs.stat(KEY))
    assert st is not None and st.etag == etag_of(b"copied in")
    assert os.getxattr(path, XATTR).decode() == st.etag


def test_leftover_temp_files_of_dead_writers_are_swept(tmp_path: Path) -> None:
    fs = FileStore(tmp_path / "data")
    proc = subprocess.Popen(["true"])
    proc.wait()
    orphan = fs.tmp / f"dl-{proc.pid}-abc"  # its writer is gone (kill -9, crash)
    live = fs.tmp / f"dl-{os.getpid()}-def"  # a download in progress in a running worker
    old, fresh = fs.tmp / "old-junk", fs.tmp / "fresh-junk"  # no pid: judged by age
    for p in (orphan, live, old, fresh):
        p.write_bytes(b"half a zip")
    past = time.time() - 7200
    os.utime(old, (past, past))
    FileStore(tmp_path / "data")
    assert not orphan.exists() and not old.exists()
    assert live.exists() and fresh.exists()


def test_directories_are_not_objects(tmp_path: Path) -> None:
    fs = FileStore(tmp_path / "data")
    asyncio.run(fs.put_if_absent(KEY, b"x"))
    assert asyncio.run(fs.stat("github.com/!acme/x/@v")) is None
    assert asyncio.run(fs.get("github.com/!acme/x/@v")) is None
