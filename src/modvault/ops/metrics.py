"""Store and gc metrics, read at scrape time: store bytes and artifact counts by kind (from the
runtime's last store scan) and gc runs / bytes freed (persisted, so CLI runs count too)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from modvault.observability.metrics import REGISTRY
from modvault.observability.prom import Collector, CounterMetricFamily, GaugeMetricFamily, Metric
from modvault.ops import gc
from modvault.ops.runtime import OpsRuntime

KINDS = ("info", "mod", "zip")


class StoreCollector(Collector):
    def __init__(self) -> None:
        self.runtime: OpsRuntime | None = None

    def collect(self) -> Iterator[Metric]:
        rt = self.runtime
        if rt is None:
            return
        t = rt.totals
        size = GaugeMetricFamily("modvault_store_bytes", "Bytes held in the store by kind "
                                 "(info, mod, zip, vcs for direct mode's git mirrors)",
                                 labels=["kind"])
        count = GaugeMetricFamily("modvault_store_artifacts", "Artifacts held in the store by kind",
                                  labels=["kind"])
        for kind in KINDS:
            size.add_metric([kind], t.bytes_by_kind.get(kind, 0))
            count.add_metric([kind], t.count_by_kind.get(kind, 0))
        size.add_metric(["vcs"], t.vcs_bytes)
        count.add_metric(["vcs"], t.vcs_mirrors)
        yield size
        yield count
        yield GaugeMetricFamily("modvault_store_modules", "Modules with a stored version",
                                value=t.modules)
        yield GaugeMetricFamily("modvault_store_versions", "Stored module versions", value=t.versions)
        try:
            fs = os.statvfs(rt.data_dir)
            yield GaugeMetricFamily("modvault_store_filesystem_size_bytes",
                                    "Size of the filesystem holding the data directory",
                                    value=fs.f_blocks * fs.f_frsize)
            yield GaugeMetricFamily("modvault_store_filesystem_free_bytes",
                                    "Bytes available to modvault on the data directory's filesystem",
                                    value=fs.f_bavail * fs.f_frsize)
        except OSError:
            pass
        stats = gc.read_stats(Path(rt.data_dir))
        yield CounterMetricFamily("modvault_gc_runs", "Garbage-collection runs (CLI and background)",
                                  value=stats.get("runs", 0))
        yield CounterMetricFamily("modvault_gc_freed_bytes", "Bytes freed by garbage collection",
                                  value=stats.get("freed_bytes", 0))
        yield CounterMetricFamily("modvault_gc_removed_versions",
                                  "Module versions removed by garbage collection",
                                  value=stats.get("removed_versions", 0))


STORE_COLLECTOR = StoreCollector()
REGISTRY.register(STORE_COLLECTOR)
