"""start_writeback: the kernel is really asked (a bad descriptor is refused), and a file whose
batches were handed to it is whole and durable after the one fsync, as before."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from modvault.storage.writeback import start_writeback


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range is Linux's")
def test_the_kernel_takes_the_request(tmp_path: Path) -> None:
    p = tmp_path / "f"
    fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.write(fd, b"x" * 3_000_000)
        assert start_writeback(fd, 0, 3_000_000)
        assert start_writeback(fd, 1_000_000, 0) is False  # nothing to write out
        os.fsync(fd)
    finally:
        os.close(fd)
    assert p.read_bytes() == b"x" * 3_000_000
    r, w = os.pipe()
    try:
        assert start_writeback(r, 0, 10) is False  # ESPIPE: the call reached the kernel
    finally:
        os.close(r)
        os.close(w)
