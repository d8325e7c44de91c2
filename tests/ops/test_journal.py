"""The access journal: memory per request, one append per flush, compaction keeps the latest time."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from modvault.ops.journal import AccessJournal, access_dir, read_access_times


def test_touch_writes_nothing_until_flush(tmp_path: Path) -> None:
    j = AccessJournal(tmp_path)
    j.now = 1000.0
    for _ in range(1000):
        j.touch("example.com/a/@v/v1.0.0.zip")
    assert not access_dir(tmp_path).exists()
    assert j.flush() == 1
    assert read_access_times(tmp_path) == {"example.com/a/@v/v1.0.0.zip": 1000.0}
    assert j.flush() == 0


def test_latest_time_wins_across_processes_and_compaction(tmp_path: Path) -> None:
    a, b = AccessJournal(tmp_path), AccessJournal(tmp_path)
    a.now, b.now = 100.0, 200.0
    a.touch("k1")
    b.touch("k1")
    b.touch("k2")
    a.flush()
    b.flush()
    a.now = 300.0
    a.touch("k2")
    a.flush()
    want = {"k1": 200.0, "k2": 300.0}
    assert read_access_times(tmp_path) == want
    kept = a.compact()
    assert kept == 2
    names = sorted(os.listdir(access_dir(tmp_path)))
    assert [n for n in names if n.startswith(("journal-", "sealed-"))] == []
    assert read_access_times(tmp_path) == want
    # Writers keep appending after their file was compacted away.
    b.now = 400.0
    b.touch("k1")
    b.flush()
    assert read_access_times(tmp_path)["k1"] == 400.0
    a.compact(forget=["k2"])
    assert read_access_times(tmp_path) == {"k1": 400.0}


def test_concurrent_flush_and_compaction_lose_nothing(tmp_path: Path) -> None:
    writers = [AccessJournal(tmp_path) for _ in range(3)]
    compactor = AccessJournal(tmp_path)
    stop = threading.Event()

    def compact_loop() -> None:
        while not stop.is_set():
            compactor.compact()

    t = threading.Thread(target=compact_loop)
    t.start()
    try:
        for i in range(300):
            w = writers[i % 3]
            w.now = float(i)
            w.touch(f"key{i}")
            w.flush()
    finally:
        stop.set()
        t.join()
    got = read_access_times(tmp_path)
    assert got == {f"key{i}": float(i) for i in range(300)}
