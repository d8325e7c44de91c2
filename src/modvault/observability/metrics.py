"""Prometheus metrics. Label values are bounded sets (kinds, statuses, tiers, configured upstreams)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "modvault_requests_total", "HTTP requests by artifact kind and status",
    ["kind", "status"], registry=REGISTRY)
REQUEST_LATENCY = Histogram(
    "modvault_request_duration_seconds", "Request handling time by artifact kind",
    ["kind"], registry=REGISTRY,
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
BYTES_SERVED = Counter(
    "modvault_bytes_served_total", "Response body bytes by artifact kind", ["kind"], registry=REGISTRY)
CACHE_LOOKUPS = Counter(
    "modvault_cache_lookups_total", "Cache lookups by tier and result (hit, miss, stale)",
    ["tier", "result"], registry=REGISTRY)
UPSTREAM_REQUESTS = Counter(
    "modvault_upstream_requests_total", "Upstream fetches by upstream, kind and outcome",
    ["upstream", "kind", "outcome"], registry=REGISTRY)
UPSTREAM_RETRIES = Counter(
    "modvault_upstream_retries_total", "Upstream retries", ["upstream"], registry=REGISTRY)
UPSTREAM_LATENCY = Histogram(
    "modvault_upstream_duration_seconds", "Upstream fetch time including retries", ["upstream"],
    registry=REGISTRY, buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600))
UPSTREAM_BYTES = Counter(
    "modvault_upstream_bytes_total", "Zip bytes received from upstreams", ["upstream"],
    registry=REGISTRY)
SINGLEFLIGHT_WAITS = Counter(
    "modvault_singleflight_coalesced_total", "Requests that waited on another request's fetch",
    ["kind"], registry=REGISTRY)
REJECTED_CONTENT = Counter(
    "modvault_rejected_content_total", "Upstream answers refused by a check", ["kind"],
    registry=REGISTRY)
