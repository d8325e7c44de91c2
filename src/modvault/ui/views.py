"""Dashboard pages: gather numbers from the service, the operations runtime and the metrics, and
render templates. Admin-only when authentication is on (the routes ask for ``admin``)."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from modvault import __version__
from modvault.errors import NotFound
from modvault.module.dirhash import hash_gomod, hash_zip
from modvault.module.errors import ModuleError
from modvault.module.path import check_path
from modvault.observability import metrics
from modvault.ops.inventory import VersionRecord, scan_module
from modvault.ops.units import format_bytes

if TYPE_CHECKING:
    from jinja2 import Environment

    from modvault.server.app import App
    from modvault.ui.activity import RecentActivity

HERE = Path(__file__).parent


@functools.cache
def templates() -> Environment:
    """The dashboard's templates, loaded (jinja2 imported) when a page is first rendered: a
    worker that only serves modules never pays for them (~2 MiB)."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(HERE / "templates"),
                      autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
    env.filters["bytes"] = format_bytes
    env.filters["when"] = _when
    return env


def _when(t: float | None) -> str:
    if not t:
        return "-"
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


SPARK_POINTS = 60


def sparkline(values: list[float], width: int = 160, height: int = 28) -> str:
    """An inline SVG polyline (server-side: no JavaScript needed)."""
    if len(values) < 2:
        return ""
    top = max(values) or 1.0
    step = width / (len(values) - 1)
    pts = " ".join(f"{i * step:.1f},{height - 2 - (v / top) * (height - 4):.1f}"
                   for i, v in enumerate(values))
    return (f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'role="img"><polyline fill="none" stroke="currentColor" stroke-width="1.5" '
            f'points="{pts}"/></svg>')


class PhaseSampler:
    """Mean upstream latency per (upstream, phase) over each interval, for sparklines."""

    def __init__(self) -> None:
        self.last: dict[tuple[str, str], tuple[float, float]] = {}
        self.series: dict[tuple[str, str], deque[float]] = {}

    def sample(self) -> None:
        hist = getattr(metrics, "UPSTREAM_PHASE", None)
        if hist is None:
            return
        sums: dict[tuple[str, str], float] = {}
        counts: dict[tuple[str, str], float] = {}
        for family in hist.collect():
            for s in family.samples:
                key = (s.labels.get("upstream", ""), s.labels.get("phase", ""))
                if s.name.endswith("_sum"):
                    sums[key] = s.value
                elif s.name.endswith("_count"):
                    counts[key] = s.value
        for key, count in counts.items():
            prev_sum, prev_count = self.last.get(key, (0.0, 0.0))
            n = count - prev_count
            mean = (sums.get(key, 0.0) - prev_sum) / n if n > 0 else 0.0
            self.last[key] = (sums.get(key, 0.0), count)
            self.series.setdefault(key, deque(maxlen=SPARK_POINTS)).append(mean * 1000)


def _counter_total(counter: Any, **match: str) -> float:
    total = 0.0
    for family in counter.collect():
        for s in family.samples:
            if s.name.endswith("_total") and all(s.labels.get(k) == v for k, v in match.items()):
                total += s.value
    return total


class Dashboard:
    def __init__(self, app: App, activity: RecentActivity) -> None:
        self.app = app
        self.activity = activity
        self.sampler = PhaseSampler()
        self._sums: dict[tuple[str, float], str] = {}

    def render(self, name: str, **ctx: Any) -> bytes:
        ctx.setdefault("version", __version__)
        return templates().get_template(name).render(**ctx).encode()

    # -- numbers ------------------------------------------------------------------------------

    def overview(self) -> dict[str, Any]:
        requests = metrics.REQUESTS.total()
        served = metrics.BYTES_SERVED.total()
        lookups = metrics.CACHE_LOOKUPS.values
        hits = sum(c[0] for (tier, result), c in lookups.items() if result == "hit")
        misses = sum(c[0] for (tier, result), c in lookups.items()
                     if result == "miss" and tier == "store")
        ops = self.app.ops
        totals = ops.totals if ops is not None else None
        return {"version": __version__, "uptime": time.time() - self.app.started,
                "requests": requests, "bytes_served": served, "hits": hits, "misses": misses,
                "hit_ratio": hits / (hits + misses) if hits + misses else None,
                "store_bytes": totals.total_bytes if totals else 0,
                "modules": totals.modules if totals else 0,
                "versions": totals.versions if totals else 0,
                "errors": len(self.activity.errors), "time": time.time()}

    def upstreams(self) -> list[dict[str, Any]]:
        health = getattr(self.app.service, "health", None)
        rows: list[dict[str, Any]] = []
        records = list(health.records.values()) if health is not None else []
        for rec in records:
            pct = rec.percentiles() if rec.latencies else {}
            phases = []
            for (up, phase), series in sorted(self.sampler.series.items()):
                if up == rec.name:
                    phases.append({"phase": phase, "last": series[-1] if series else 0.0,
                                   "svg": sparkline(list(series))})
            rows.append({"name": rec.name, "kind": rec.kind, "state": rec.state.value,
                         "p50": pct.get("p50"), "p90": pct.get("p90"), "p99": pct.get("p99"),
                         "successes": rec.successes, "failures": rec.failures,
                         "last_error": rec.last_error, "phases": phases,
                         "latency_svg": sparkline([x * 1000 for x in list(rec.latencies)[-60:]])})
        return rows

    def records(self) -> list[VersionRecord]:
        ops = self.app.ops
        return list(ops.records) if ops is not None else []

    def search(self, query: str) -> list[dict[str, Any]]:
        q = query.strip().lower()
        by_module: dict[str, list[VersionRecord]] = {}
        for r in self.records():
            if not q or q in r.module.lower():
                by_module.setdefault(r.module, []).append(r)
        return [{"module": m, "versions": len(rs), "bytes": sum(r.bytes for r in rs),
                 "latest": rs[-1].version, "source": rs[0].source}
                for m, rs in sorted(by_module.items())][:200]

    def _sum(self, path: Path, kind: str) -> str:
        """go.sum hash of a stored file, memoized by (path, mtime)."""
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return ""
        key = (str(path), mtime)
        if key not in self._sums:
            if len(self._sums) > 10_000:
                self._sums.clear()
            self._sums[key] = hash_zip(path) if kind == "zip" else hash_gomod(path.read_bytes())
        return self._sums[key]

    def module(self, module: str) -> dict[str, Any]:
        try:
            check_path(module)
        except ModuleError as exc:
            raise NotFound(f"invalid module path: {exc}") from None
        policy = self.app.service.policy
        versions = scan_module(self.app.settings.data_dir, module, policy=policy)
        if not versions:
            raise NotFound(f"{module} is not in the store")
        root = Path(self.app.settings.data_dir)
        supply = self.app.service.supply
        rows = []
        for r in reversed(versions):
            row: dict[str, Any] = {"version": r.version, "bytes": r.bytes, "sizes": r.sizes,
                                   "stored": r.stored, "source": r.source,
                                   "zip_h1": self._sum(root / r.key("zip"), "zip") if "zip" in r.sizes
                                   else "",
                                   "mod_h1": self._sum(root / r.key("mod"), "mod") if "mod" in r.sizes
                                   else "",
                                   "provenance": self._provenance(root, r),
                                   # imported OSV advisories affecting this version (supply/osv.py)
                                   "advisories": supply.advisories.affecting(module, r.version)
                                   if supply is not None else []}
            rows.append(row)
        return {"module": module, "versions": rows}

    @staticmethod
    def _provenance(root: Path, r: VersionRecord) -> dict[str, Any] | None:
        try:
            from modvault.supply.admission import record_key
        except ImportError:
            return None
        try:
            doc = json.loads((root / record_key(r.module, r.version)).read_bytes())
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    def sumdb(self) -> dict[str, Any]:
        private = self.app.service.checksums.private
        proxy = self.app.service.checksums.proxy
        public = sorted(getattr(proxy, "_fetchers", {})) if proxy is not None else []
        if private is None:
            return {"private": None, "public": public}
        return {"private": {"name": private.name, "size": private.size, "vkeys": private.vkeys,
                            "note": private.latest_note().decode("utf-8", "replace")},
                "public": public}


def query_param(query: str, name: str) -> str:
    values = parse_qs(query, max_num_fields=20).get(name)
    return values[0][:200] if values else ""


async def in_thread(fn: Any, *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)
