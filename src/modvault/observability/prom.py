"""Prometheus metrics and their text exposition, the part of prometheus_client modvault used.

prometheus_client's package loads its push gateway, WSGI and HTTP servers with it (http.server,
wsgiref, urllib.request and through them email and html: 54 modules, 2.8 MiB resident in every
worker). modvault only needs counters, gauges and histograms with labels, collectors that build
families at scrape time, and the text format Prometheus scrapes, so it keeps those here.

The names and signatures are prometheus_client's (``Counter(name, doc, labelnames)``,
``.labels(...).inc()``, ``CounterMetricFamily.add_metric``) and the output is its text format
0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/), without the optional
``_created`` series. tests/support/metrics.py reads every /metrics with prometheus_client's own
parser.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple, Protocol, Self

CONTENT_TYPE_LATEST = "text/plain; version=0.0.4; charset=utf-8"


class Sample(NamedTuple):
    name: str
    labels: dict[str, str]
    value: float


class Metric:
    """A metric family as a scrape sees it: its name (without a counter's ``_total``), type,
    help text and samples."""

    def __init__(self, name: str, documentation: str, typ: str) -> None:
        self.name, self.documentation, self.type = name, documentation, typ
        self.samples: list[Sample] = []

    def add_sample(self, name: str, labels: dict[str, str], value: float) -> None:
        self.samples.append(Sample(name, labels, value))


class CounterMetricFamily(Metric):
    def __init__(self, name: str, documentation: str, value: float | None = None,
                 labels: Sequence[str] = ()) -> None:
        super().__init__(name.removesuffix("_total"), documentation, "counter")
        self.labelnames = list(labels)
        if value is not None:
            self.add_metric([], value)

    def add_metric(self, labels: Sequence[str], value: float) -> None:
        self.add_sample(self.name + "_total", dict(zip(self.labelnames, labels, strict=True)),
                        value)


class GaugeMetricFamily(Metric):
    def __init__(self, name: str, documentation: str, value: float | None = None,
                 labels: Sequence[str] = ()) -> None:
        super().__init__(name, documentation, "gauge")
        self.labelnames = list(labels)
        if value is not None:
            self.add_metric([], value)

    def add_metric(self, labels: Sequence[str], value: float) -> None:
        self.add_sample(self.name, dict(zip(self.labelnames, labels, strict=True)), value)


class HistogramMetricFamily(Metric):
    def __init__(self, name: str, documentation: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, documentation, "histogram")
        self.labelnames = list(labels)

    def add_metric(self, labels: Sequence[str], buckets: Sequence[tuple[str, float]],
                   sum_value: float) -> None:
        """``buckets``: (upper bound as written, cumulative count), ``+Inf`` last."""
        base = dict(zip(self.labelnames, labels, strict=True))
        for bound, count in buckets:
            self.add_sample(self.name + "_bucket", {**base, "le": bound}, count)
        self.add_sample(self.name + "_count", base, buckets[-1][1] if buckets else 0.0)
        self.add_sample(self.name + "_sum", base, sum_value)


class Collector(Protocol):
    def collect(self) -> Iterable[Metric]: ...


class CollectorRegistry:
    """What one /metrics shows: the registered collectors' families, in registration order."""

    def __init__(self) -> None:
        self._collectors: list[Collector] = []
        self._lock = threading.Lock()

    def register(self, collector: Collector) -> None:
        with self._lock:
            self._collectors.append(collector)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            collectors = list(self._collectors)
        for c in collectors:
            yield from c.collect()


def _label_names(labelnames: Sequence[str]) -> tuple[str, ...]:
    names = tuple(labelnames)
    for n in names:
        if not n.isidentifier() or n.startswith("__") or n == "le":
            raise ValueError(f"invalid label name {n!r}")
    return names


class _Value:
    """One series' number; the lock makes ``inc`` from several threads (the fetch lanes and
    the event loop) lose nothing."""

    __slots__ = ("_lock", "_value")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0.0

    def get(self) -> float:
        return self._value

    def set(self, value: float) -> None:
        with self._lock:
            self._value = float(value)

    def inc(self, amount: float) -> None:
        with self._lock:
            self._value += amount


class _Labelled:
    """A metric with label names: ``labels(*values)`` is the series for those values."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = (),
                 registry: CollectorRegistry | None = None) -> None:
        self.name, self.documentation = name, documentation
        self.labelnames = _label_names(labelnames)
        self._children: dict[tuple[str, ...], Self] = {}
        self._lock = threading.Lock()
        if registry is not None:
            registry.register(self)

    def _child(self) -> Self:
        return type(self)(self.name, self.documentation)

    def collect(self) -> Iterator[Metric]:
        raise NotImplementedError

    def labels(self, *values: object) -> Self:
        if not self.labelnames:
            raise ValueError(f"{self.name} has no labels")
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name} takes {len(self.labelnames)} label values")
        key = tuple(str(v) for v in values)
        child = self._children.get(key)
        if child is None:
            with self._lock:
                child = self._children.setdefault(key, self._child())
        return child

    def _series(self) -> list[tuple[dict[str, str], Self]]:
        if not self.labelnames:
            return [({}, self)]
        with self._lock:
            items = list(self._children.items())
        return [(dict(zip(self.labelnames, key, strict=True)), child) for key, child in items]

    def _check_unlabelled(self) -> None:
        if self.labelnames:
            raise ValueError(f"{self.name} needs label values: use labels()")


class _Single(_Labelled):
    """A counter or a gauge: one number per series."""

    typ = ""
    suffix = ""  # of each sample's name

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = (),
                 registry: CollectorRegistry | None = None) -> None:
        super().__init__(name, documentation, labelnames, registry)
        self._value = _Value()

    def collect(self) -> Iterator[Metric]:
        fam = Metric(self.name, self.documentation, self.typ)
        for labels, child in self._series():
            fam.add_sample(self.name + self.suffix, labels, child._value.get())
        yield fam


class Counter(_Single):
    typ, suffix = "counter", "_total"

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = (),
                 registry: CollectorRegistry | None = None) -> None:
        super().__init__(name.removesuffix("_total"), documentation, labelnames, registry)

    def inc(self, amount: float = 1.0) -> None:
        self._check_unlabelled()
        if amount < 0:
            raise ValueError("counters only go up")
        self._value.inc(amount)


class Gauge(_Single):
    typ = "gauge"

    def set(self, value: float) -> None:
        self._check_unlabelled()
        self._value.set(value)

    def inc(self, amount: float = 1.0) -> None:
        self._check_unlabelled()
        self._value.inc(amount)

    def dec(self, amount: float = 1.0) -> None:
        self.inc(-amount)


DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
                   10.0)


class Histogram(_Labelled):
    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = (),
                 registry: CollectorRegistry | None = None,
                 buckets: Sequence[float] = DEFAULT_BUCKETS) -> None:
        super().__init__(name, documentation, labelnames, registry)
        bounds = sorted(float(b) for b in buckets if not math.isinf(b))
        if not bounds or len(set(bounds)) != len(bounds):
            raise ValueError(f"{name}: buckets must be distinct and finite")
        self.buckets = bounds
        self._counts = [0] * (len(bounds) + 1)  # the last: above every bound (+Inf)
        self._sum = 0.0
        self._hlock = threading.Lock()

    def _child(self) -> Self:
        return type(self)(self.name, self.documentation, buckets=self.buckets)

    def observe(self, value: float) -> None:
        self._check_unlabelled()
        at = bisect.bisect_left(self.buckets, value)  # le: a value on a bound counts in it
        with self._hlock:
            self._counts[at] += 1
            self._sum += value

    def collect(self) -> Iterator[Metric]:
        fam = HistogramMetricFamily(self.name, self.documentation, self.labelnames)
        for labels, child in self._series():
            with child._hlock:
                counts, total = list(child._counts), child._sum
            fam.add_metric([labels[n] for n in self.labelnames],
                           cumulative([format_value(b) for b in self.buckets], counts), total)
        yield fam


def cumulative(bounds: Sequence[str], counts: Sequence[int]) -> list[tuple[str, float]]:
    """(upper bound, observations up to it) for each bound and ``+Inf``, from the count in each
    bucket (``counts`` has one more item than ``bounds``: those above every bound)."""
    out, acc = [], 0
    for bound, n in zip([*bounds, "+Inf"], counts, strict=True):
        acc += n
        out.append((bound, float(acc)))
    return out


def format_value(value: float) -> str:
    """A sample value as the text format (and Go's strconv) writes it."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def generate_latest(registry: CollectorRegistry) -> bytes:
    """The registry in the text format, version 0.0.4."""
    out: list[str] = []
    for fam in registry.collect():
        name = fam.name + "_total" if fam.type == "counter" else fam.name
        out.append(f"# HELP {name} {_escape_help(fam.documentation)}\n# TYPE {name} {fam.type}\n")
        for s in fam.samples:
            if s.labels:
                labels = ",".join(f'{k}="{_escape_label(v)}"'  # in name order, as before
                                  for k, v in sorted(s.labels.items()))
                out.append(f"{s.name}{{{labels}}} {format_value(s.value)}\n")
            else:
                out.append(f"{s.name} {format_value(s.value)}\n")
    return "".join(out).encode()
