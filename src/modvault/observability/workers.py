"""Worker deaths, as a metric.

The supervisor (server/supervisor.py) respawns a worker that exits unexpectedly (an OOM kill, a
crash), logs it and keeps the count in a small file under the data directory, which every
worker's /metrics exports as ``modvault_worker_deaths_total`` (a worker cannot count its own
death, and the supervisor serves no HTTP).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from modvault.observability.metrics import REGISTRY
from modvault.observability.prom import Collector, CounterMetricFamily, Metric
from modvault.server.supervisor import DEATHS_FILE


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
