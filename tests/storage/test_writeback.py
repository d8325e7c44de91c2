"""start_writeback: the kernel is really asked (a bad descriptor is refused), and a file whose
batches were handed to it is whole and durable after the one fsync, as before; WriteBehind asks
from its helper thread, never holding up the download's writer."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from modvault.storage import writeback
from modvault.storage.writeback import WriteBehind, start_writeback


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


def _settle(wb: WriteBehind) -> None:
    deadline = time.monotonic() + 30
    while wb._busy and time.monotonic() < deadline:
        time.sleep(0.005)
    assert not wb._busy


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range is Linux's")
def test_write_behind_asks_from_the_helper_thread_and_merges(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer never waits for the call: it is made from the helper thread, on a duplicate
    descriptor (the file may be closed meanwhile), and growth asked while one runs is merged."""
    calls: list[tuple[str, int, int]] = []
    gate = threading.Event()

    def slow_call(fd: int, offset: int, length: int) -> bool:
        gate.wait(30)
        calls.append((threading.current_thread().name, offset, length))
        return start_writeback(fd, offset, length)

    monkeypatch.setattr(writeback, "start_writeback", slow_call)
    wb = WriteBehind()
    p = tmp_path / "f"
    fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for i in range(1, 6):
            os.write(fd, b"x" * 100_000)
            wb.grown(fd, i * 100_000)  # returns at once although the first call is held
        gate.set()
        _settle(wb)
        assert calls == [(calls[0][0], 0, 100_000)] and calls[0][0].startswith("modvault-writeback")
        wb.grown(fd, 500_000)  # what grew meanwhile, in one request
        os.close(fd)  # the helper has its own descriptor
        fd = -1
        _settle(wb)
        assert calls[1][1:] == (100_000, 400_000) and wb.requested == 500_000
    finally:
        if fd >= 0:
            os.close(fd)
    assert p.read_bytes() == b"x" * 500_000
