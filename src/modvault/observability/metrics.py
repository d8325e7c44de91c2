"""Prometheus metrics. Label values are bounded sets (kinds, statuses, tiers, configured upstreams).

The per-request metrics (requests, latency, bytes, cache lookups) are plain dictionaries exported by a
custom collector at scrape time: prometheus_client's own counters take a lock and a label lookup per
update, which costs more than the rest of a cached request. Each value sits in a small list (a cell)
that the prebuilt answers (server/hotpath.py) keep and add to in place, without even the lookup.
Everything here is updated from the event loop thread only: the prebuilt answers given on
granian's thread queue what they record, and the queue is settled (:func:`settle`) on the loop's
thread at the latest when these metrics are read.
"""

from __future__ import annotations

import bisect
import weakref
from collections.abc import Callable, Iterator, Sequence

from modvault.observability.prom import (
    Collector,
    CollectorRegistry,
    Counter,
    CounterMetricFamily,
    Gauge,
    Histogram,
    HistogramMetricFamily,
    Metric,
    cumulative,
)

REGISTRY = CollectorRegistry()

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


_SETTLERS: list[weakref.WeakMethod[Callable[[], None]]] = []


def settle_with(method: Callable[[], None]) -> None:
    """Have ``method`` (a bound method: held weakly) run before the per-request metrics are
    read, to add what was queued for them."""
    _SETTLERS.append(weakref.WeakMethod(method))


def settle() -> None:
    """Add what is queued for the per-request metrics (on the loop's thread)."""
    for ref in list(_SETTLERS):
        method = ref()
        if method is None:
            _SETTLERS.remove(ref)
        else:
            method()


class HotCounter:
    def __init__(self, name: str, doc: str, labels: Sequence[str]) -> None:
        self.name, self.doc, self.labels = name, doc, list(labels)
        # label values -> a one-element list holding the value (see cell)
        self.values: dict[tuple[str, ...], list[float]] = {}

    def inc(self, key: tuple[str, ...], amount: float = 1.0) -> None:
        self.cell(key)[0] += amount

    def cell(self, key: tuple[str, ...]) -> list[float]:
        """The list whose only item is the value for ``key``: the prebuilt answers
        (server/hotpath.py) keep it and add to it in place, with no lookup per request."""
        cell = self.values.get(key)
        if cell is None:
            cell = self.values[key] = [0.0]
        return cell

    def total(self) -> float:
        settle()
        return sum(cell[0] for cell in self.values.values())

    def collect(self) -> Metric:
        settle()
        fam = CounterMetricFamily(self.name, self.doc, labels=self.labels)
        for key, cell in self.values.items():
            fam.add_metric(list(key), cell[0])
        return fam


class HotHistogram:
    def __init__(self, name: str, doc: str, labels: Sequence[str], buckets: Sequence[float]) -> None:
        self.name, self.doc, self.labels = name, doc, list(labels)
        self.buckets = list(buckets)
        # per label key: [count per bucket (+Inf last)], sum
        self.values: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}

    def observe(self, key: tuple[str, ...], value: float) -> None:
        counts, total = self.cell(key)
        counts[bisect.bisect_left(self.buckets, value)] += 1
        total[0] += value

    def cell(self, key: tuple[str, ...]) -> tuple[list[int], list[float]]:
        """Counts per bucket and the sum for ``key``, to be added to in place (as observe)."""
        item = self.values.get(key)
        if item is None:
            item = self.values[key] = ([0] * (len(self.buckets) + 1), [0.0])
        return item

    def collect(self) -> Metric:
        settle()
        fam = HistogramMetricFamily(self.name, self.doc, labels=self.labels)
        bounds = [str(b) for b in self.buckets]
        for key, (counts, total) in self.values.items():
            fam.add_metric(list(key), cumulative(bounds, counts), total[0])
        return fam


class _HotCollector(Collector):
    def __init__(self, metrics: Sequence[HotCounter | HotHistogram]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        for m in self.metrics:
            yield m.collect()


REQUESTS = HotCounter("modvault_requests", "HTTP requests by artifact kind and status",
                      ["kind", "status"])
REQUEST_LATENCY = HotHistogram("modvault_request_duration_seconds",
                               "Request handling time by artifact kind", ["kind"], LATENCY_BUCKETS)
BYTES_SERVED = HotCounter("modvault_bytes_served", "Response body bytes by artifact kind", ["kind"])
CACHE_LOOKUPS = HotCounter("modvault_cache_lookups",
                           "Cache lookups by tier and result (hit, miss, stale)", ["tier", "result"])
PREBUILT_ANSWERS = HotCounter("modvault_prebuilt_answers",
                              "Requests answered from prebuilt responses (server/hotpath.py), by kind",
                              ["kind"])
REGISTRY.register(_HotCollector([REQUESTS, REQUEST_LATENCY, BYTES_SERVED, CACHE_LOOKUPS,
                                 PREBUILT_ANSWERS]))


HOT_ZIP_BYTES = Gauge(
    "modvault_hot_zip_bytes", "Bytes of small zips this worker holds in memory to answer from "
    "(server/hotpath.py; at most hot_zip_bytes)", registry=REGISTRY)


def cache_lookup(tier: str, result: str) -> None:
    CACHE_LOOKUPS.inc((tier, result))


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

# Checksum database (sumdb/): verification outcomes, security alarms, traffic to databases.
ZIP_ENTRIES_CHECKED = Counter(
    "modvault_zip_entries_checked_total", "Entries of new zips whose content was checked, by where"
    " it was read: while the zip downloaded (download) or again from the file (file)", ["read"],
    registry=REGISTRY)
SUMDB_VERIFICATIONS = Counter(
    "modvault_sumdb_verifications_total",
    "Checksum-database verifications of module versions by database and result "
    "(ok, mismatch, notfound, unavailable, error)",
    ["db", "result"], registry=REGISTRY)
SECURITY_ERRORS = Counter(
    "modvault_security_errors_total",
    "Security alarms by database and kind: checksum_mismatch, fork, inconsistent_tile, "
    "bad_signature, bad_record",
    ["db", "kind"], registry=REGISTRY)
SUMDB_UPSTREAM_REQUESTS = Counter(
    "modvault_sumdb_upstream_requests_total",
    "Requests to checksum databases by database, kind (latest, lookup, tile) and outcome",
    ["db", "kind", "outcome"], registry=REGISTRY)
SUMDB_CACHE = Counter(
    "modvault_sumdb_cache_total",
    "Checksum-database answers by kind and where they came from (hit, miss, stale)",
    ["kind", "result"], registry=REGISTRY)
SUMDB_PRIVATE_RECORDS = Counter(
    "modvault_sumdb_private_records_total", "Records appended to a private checksum database",
    ["db"], registry=REGISTRY)

# Health of upstreams, checksum databases and git hosts (sources/health.py). The upstream label is a
# configured name (redacted URL, database name, git host; the excess folds into "other").
PHASE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
UPSTREAM_PHASE = Histogram(
    "modvault_upstream_phase_seconds",
    "Round-trip time to upstreams by phase: dns (probes), connect (TCP; includes name resolution on "
    "request traffic), tls (handshake), ttfb (request sent to response headers), total; git hosts: "
    "total (ls-remote), fetch (a mirror's fetch)",
    ["upstream", "phase"], registry=REGISTRY, buckets=PHASE_BUCKETS)
BREAKER_STATE = Gauge(
    "modvault_upstream_breaker_state",
    "Circuit breaker state per upstream: 1 for the current state (closed, open, half_open)",
    ["upstream", "kind", "state"], registry=REGISTRY)
BREAKER_TRANSITIONS = Counter(
    "modvault_upstream_breaker_transitions_total", "Circuit breaker transitions by new state",
    ["upstream", "to"], registry=REGISTRY)
UPSTREAM_SKIPPED = Counter(
    "modvault_upstream_skipped_total",
    "Requests not sent to an upstream because its breaker was open or it was unreachable moments ago",
    ["upstream"], registry=REGISTRY)
READINESS_CHECKS = Counter(
    "modvault_readiness_checks_total",
    "/readyz answers by result (ready, not_ready): an alert fires when every check in a window failed",
    ["result"], registry=REGISTRY)
for _result in ("ready", "not_ready"):
    READINESS_CHECKS.labels(_result)  # both series exist from the start, so rules can compare them
UPSTREAM_PROBES = Counter(
    "modvault_upstream_probes_total", "Active health probes by upstream and outcome (ok, error)",
    ["upstream", "outcome"], registry=REGISTRY)
REFUSALS = Counter(
    "modvault_refusals_total",
    "Refused (tampered or rule-breaking) artifacts: remembered, or answered from memory (hit)",
    ["event"], registry=REGISTRY)
# Access control (label values are a fixed set; never identities or credentials).
AUTH_DENIALS = Counter(
    "modvault_auth_denials_total",
    "Requests refused by access control: authentication, authorization, client_address, rate_limit",
    ["reason"], registry=REGISTRY)
PUBLISHES = Counter("modvault_publishes_total", "Module versions published, by result",
                    ["result"], registry=REGISTRY)
