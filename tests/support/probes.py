"""Measuring a running server from outside: memory of its process group, event-loop lag, leftovers."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import httpx


def group_pids(pgid: int) -> list[int]:
    """Every live process in process group ``pgid`` (the server and its granian workers)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getpgid(int(entry)) == pgid:
                pids.append(int(entry))
        except OSError:
            continue
    return pids


def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_mb(pgid: int) -> float:
    """Summed VmRSS of the group, in MiB."""
    return sum(_status_kb(p, "VmRSS") for p in group_pids(pgid)) / 1024


def worker_pids(pgid: int) -> list[int]:
    """The group's processes other than its leader (granian's workers)."""
    return [p for p in group_pids(pgid) if p != pgid]


class LagProbe:
    """A thread that GETs /healthz in a loop and keeps the worst latency: the event-loop lag an
    unrelated client sees while something else runs."""

    def __init__(self, url: str, interval: float = 0.02) -> None:
        self.url = url
        self.interval = interval
        self.worst = 0.0
        self.samples = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    client.get(self.url + "/healthz").raise_for_status()
                except httpx.HTTPError:
                    self.failures += 1
                self.worst = max(self.worst, time.perf_counter() - started)
                self.samples += 1
                self._stop.wait(self.interval)

    def __enter__(self) -> LagProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def leftovers(data_dir: Path) -> list[Path]:
    """Files in the store's temp directory: a finished or failed operation leaves none."""
    tmp = data_dir / ".modvault" / "tmp"
    return sorted(tmp.iterdir()) if tmp.exists() else []
