"""``GET /api/v1/status``: one JSON document an operator (or a dashboard) reads to see how this
worker is doing: version, uptime, the settings that shape it (never a secret), every upstream's
breaker state and latency percentiles, the store's size and artifact counts, and each checksum
database's latest verified tree size.

``status_document`` is a plain function of the service graph so it can be tested and reused without
HTTP; ``register`` adds the route. Figures are this worker process's (like /metrics).
"""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from modvault import __version__
from modvault.config import Settings, sumdb_settings
from modvault.sources.health import HealthRecord, State
from modvault.sources.redact import redact_url
from modvault.sources.upstream_list import redact_upstream_list

if TYPE_CHECKING:
    from modvault.ops.runtime import OpsRuntime
    from modvault.server.app import App
    from modvault.server.request import Request
    from modvault.server.routes import RouteTable
    from modvault.service import ModuleService

JSON = "application/json"

# Settings shown as they are: none of them can hold a secret. Everything else (credentials, netrc,
# tokens, keys, URLs with passwords) is left out or redacted.
SHOWN_SETTINGS = (
    "listen", "data_dir", "offline", "workers", "upstream_strategy", "sumdb_verify", "private_sumdb",
    "private", "noproxy", "nosumdb", "mutable_ttl", "negative_ttl", "upstream_connect_timeout",
    "upstream_read_timeout", "upstream_total_timeout", "upstream_retries", "upstream_probe_interval",
    "breaker_failures", "breaker_backoff", "unreachable_memory", "refusal_ttl", "log_level",
)


def settings_summary(settings: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {name: getattr(settings, name) for name in SHOWN_SETTINGS
                           if hasattr(settings, name)}
    out["upstream"] = redact_upstream_list(settings.upstream)
    out["tls"] = bool(settings.tls_cert)
    out["sumdb"] = [_redact_sumdb(item) for item in sumdb_settings(settings)]
    return out


def _redact_sumdb(item: str) -> str:
    name_key, _, url = item.partition(" ")
    return name_key + (" " + redact_url(url.strip()) if url.strip() else "")


def _ms(seconds: float | None) -> float | None:
    if seconds is None or math.isnan(seconds):
        return None
    return round(seconds * 1000, 3)


def upstream_entry(rec: HealthRecord, now: float) -> dict[str, Any]:
    b = rec.breaker
    entry: dict[str, Any] = {
        "name": rec.name,
        "kind": rec.kind,
        "state": rec.state.value,
        "consecutive_failures": b.consecutive_failures,
        "successes": rec.successes,
        "failures": rec.failures,
        "skipped": rec.skipped,
        "last_error": rec.last_error,
        "last_success_age_s": None if rec.last_success is None else round(now - rec.last_success, 3),
        "last_failure_age_s": None if rec.last_failure is None else round(now - rec.last_failure, 3),
        "unreachable": rec.unreachable(now),
        "latency_ms": {k: _ms(v) for k, v in rec.percentiles().items()},
        "baseline_ms": _ms(b.baseline),
        "recent_ms": _ms(rec.recent),
        "samples": len(rec.latencies),
    }
    if rec.state is State.OPEN:
        entry["retry_in_s"] = round(max(0.0, b.retry_at() - now), 3)
    return entry


async def store_summary(ops: OpsRuntime | None) -> dict[str, Any]:
    if ops is None:
        return {}
    if ops.totals_at == 0:
        await ops.refresh_store()
    t = ops.totals
    return {"bytes": t.total_bytes, "bytes_by_kind": dict(t.bytes_by_kind),
            "artifacts_by_kind": dict(t.count_by_kind), "artifacts": sum(t.count_by_kind.values()),
            "modules": t.modules, "versions": t.versions, "vcs_mirrors": t.vcs_mirrors,
            "scanned_age_s": round(time.monotonic() - ops.totals_at, 3)}


async def sumdb_summary(service: ModuleService) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    checksums = service.checksums
    verifier = checksums.verifier.name if checksums.verifier is not None else None
    if checksums.proxy is not None:
        for name in checksums.proxy.names:
            fetcher = checksums.proxy.fetcher(name)
            tree = await fetcher.verified_tree()
            out.append({"name": name, "url": redact_url(fetcher.config.url), "role": "proxied",
                        "verifies_public_modules": name == verifier,
                        "latest_verified_tree_size": tree.N if tree is not None else None})
    if checksums.private is not None:
        out.append({"name": checksums.private.name, "role": "private",
                    "verifies_public_modules": False,
                    "latest_verified_tree_size": checksums.private.size})
    return out


async def status_document(service: ModuleService, ops: OpsRuntime | None = None) -> dict[str, Any]:
    settings = service.settings
    now = time.monotonic()
    records = service.health.records.values() if service.health is not None else []
    return {
        "version": __version__,
        "started": datetime.fromtimestamp(service.started, UTC).isoformat(timespec="seconds"),
        "uptime_s": round(time.time() - service.started, 3),
        "settings": settings_summary(settings),
        "upstream_strategy": settings.upstream_strategy,
        "upstreams": [upstream_entry(rec, now) for rec in records],
        "store": await store_summary(ops),
        "sumdb": await sumdb_summary(service),
    }


def register(app: App, table: RouteTable) -> None:
    from modvault.server.routes import METRICS

    async def status(req: Request) -> None:
        doc = await status_document(app.service, app.ops)
        body = (json.dumps(doc, indent=1) + "\n").encode()
        req.send_bytes(200, [("content-type", JSON), ("cache-control", "no-store"),
                             ("content-length", str(len(body)))], body)

    table.add("/api/v1/status", status, kind="api", permission=METRICS)
