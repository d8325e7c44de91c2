"""Worker deaths: logged and counted.

granian's main process respawns a worker that exits unexpectedly (an OOM kill, a crash); without that
one dead worker stopped the whole server. The main process counts each death from granian's own
"Unexpected exit from worker-N" log record, logs a JSON line, and keeps the count in a small file
under the data directory, which every worker's /metrics exports as ``modvault_worker_deaths_total``
(a worker cannot count its own death, and the main process serves no HTTP).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from modvault.observability.metrics import REGISTRY

DEATHS_FILE = ".modvault/run/worker-deaths"
GRANIAN_LOGGER = "_granian"


def _write(path: Path, count: int) -> None:
    """Best effort (the disk may be full): the count is a metric, not a record."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}")
        tmp.write_text(f"{count}\n")
        os.replace(tmp, path)
    except OSError:
        pass


class DeathCounter(logging.Handler):
    """Installed on granian's logger in the main process."""

    def __init__(self, data_dir: str) -> None:
        super().__init__(logging.ERROR)
        self.path = Path(data_dir) / DEATHS_FILE
        self.count = 0
        _write(self.path, 0)  # per server run

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if not message.startswith("Unexpected exit from worker"):
            return
        self.count += 1
        _write(self.path, self.count)
        worker = message.rsplit(" ", 1)[-1]
        sys.stderr.write(json.dumps({
            "ts": round(time.time(), 3), "level": "error", "logger": "modvault.workers",
            "msg": f"{worker} exited unexpectedly (death {self.count} since start); respawning it"},
            separators=(",", ":")) + "\n")
        sys.stderr.flush()


def install(data_dir: str) -> DeathCounter:
    handler = DeathCounter(data_dir)
    logging.getLogger(GRANIAN_LOGGER).addHandler(handler)
    return handler


class WorkerDeathCollector(Collector):
    def __init__(self) -> None:
        self.data_dir: str | None = None

    def collect(self) -> Iterator[Metric]:
        if self.data_dir is None:
            return
        try:
            value = int((Path(self.data_dir) / DEATHS_FILE).read_text().strip() or 0)
        except (OSError, ValueError):
            value = 0
        yield CounterMetricFamily("modvault_worker_deaths",
                                  "Worker processes that exited unexpectedly and were respawned",
                                  value=value)


WORKER_DEATHS = WorkerDeathCollector()
REGISTRY.register(WORKER_DEATHS)
