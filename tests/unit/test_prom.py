"""observability/prom.py against prometheus_client, which it replaced in the server: the same
operations give the same samples once each /metrics is read back with prometheus_client's parser
(its optional ``_created`` series aside), and what Prometheus scrapes is the text format."""

from __future__ import annotations

import threading
from typing import Any

import prometheus_client as ref
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from modvault.observability import prom

LABEL_VALUES = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
AMOUNTS = st.floats(min_value=0, max_value=1e12, allow_nan=False)
OBSERVED = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
BUCKETS = (0.001, 0.5, 1, 2.5, 60)


def parsed(text: str) -> dict[str, Any]:
    """{family name: (type, help, sorted samples)}, without ``_created`` series."""
    out: dict[str, Any] = {}
    for fam in text_string_to_metric_families(text):
        samples = sorted((s.name, tuple(sorted(s.labels.items())), s.value) for s in fam.samples
                         if not s.name.endswith("_created"))
        if fam.name.endswith("_created"):
            continue
        out[fam.name] = (fam.type, fam.documentation, samples)
    return out


def build(lib: Any, registry: Any) -> dict[str, Any]:
    return {
        "c": lib.Counter("t_events_total", 'Events "quoted" \\ and\nnewline', ["kind", "v"],
                         registry=registry),
        "c0": lib.Counter("t_plain", "A counter without labels", registry=registry),
        "g": lib.Gauge("t_level", "A gauge", ["kind"], registry=registry),
        "h": lib.Histogram("t_seconds", "A histogram", ["kind"], registry=registry,
                           buckets=BUCKETS),
        "h0": lib.Histogram("t_plain_seconds", "Unlabelled", registry=registry, buckets=BUCKETS),
    }


OPS = st.lists(st.one_of(
    st.tuples(st.just("c"), LABEL_VALUES, LABEL_VALUES, AMOUNTS),
    st.tuples(st.just("c0"), AMOUNTS),
    st.tuples(st.just("g"), LABEL_VALUES, st.floats(allow_nan=False, allow_infinity=False)),
    st.tuples(st.just("h"), LABEL_VALUES, OBSERVED),
    st.tuples(st.just("h0"), OBSERVED),
), max_size=30)


def apply(metrics: dict[str, Any], ops: list[tuple[Any, ...]]) -> None:
    for op in ops:
        name, args = op[0], op[1:]
        m = metrics[name]
        if name == "c":
            m.labels(args[0], args[1]).inc(args[2])
        elif name == "c0":
            m.inc(args[0])
        elif name == "g":
            m.labels(args[0]).set(args[1])
        elif name == "h":
            m.labels(args[0]).observe(args[1])
        else:
            m.observe(args[0])


@given(OPS)
def test_same_samples_as_prometheus_client(ops: list[tuple[Any, ...]]) -> None:
    ours, theirs = prom.CollectorRegistry(), ref.CollectorRegistry()
    apply(build(prom, ours), ops)
    apply(build(ref, theirs), ops)
    mine = parsed(prom.generate_latest(ours).decode())
    assert mine == parsed(ref.generate_latest(theirs).decode())
    assert set(mine) == {"t_events", "t_plain", "t_level", "t_seconds", "t_plain_seconds"}


@given(st.lists(st.tuples(LABEL_VALUES, st.floats(allow_nan=False)), max_size=8))
def test_families_built_at_scrape_time_read_back(series: list[tuple[str, float]]) -> None:
    class Scraped:
        def collect(self) -> Any:
            c = prom.CounterMetricFamily("t_runs", "Runs", labels=["who"])
            g = prom.GaugeMetricFamily("t_free_bytes", "Free", labels=["who"])
            for who, value in dict(series).items():
                c.add_metric([who], abs(value))
                g.add_metric([who], value)
            yield c
            yield g
            yield prom.GaugeMetricFamily("t_total_items", "Unlabelled", value=3)

    reg = prom.CollectorRegistry()
    reg.register(Scraped())
    got = parsed(prom.generate_latest(reg).decode())
    want = dict(series)
    assert got["t_runs"][2] == sorted(("t_runs_total", (("who", w),), abs(v))
                                      for w, v in want.items())
    assert got["t_free_bytes"][2] == sorted(("t_free_bytes", (("who", w),), v)
                                            for w, v in want.items())
    assert got["t_total_items"] == ("gauge", "Unlabelled", [("t_total_items", (), 3.0)])


def test_the_text_format_as_prometheus_reads_it() -> None:
    reg = prom.CollectorRegistry()
    c = prom.Counter("t_hits_total", "Hits", ["path"], registry=reg)
    c.labels('a"b\\c\nd').inc(2)
    h = prom.Histogram("t_latency_seconds", "Latency", registry=reg, buckets=(0.5, 1))
    h.observe(0.5)  # on a bound: counted in it (le)
    h.observe(3)
    assert prom.generate_latest(reg).decode() == (
        "# HELP t_hits_total Hits\n"
        "# TYPE t_hits_total counter\n"
        't_hits_total{path="a\\"b\\\\c\\nd"} 2.0\n'
        "# HELP t_latency_seconds Latency\n"
        "# TYPE t_latency_seconds histogram\n"
        't_latency_seconds_bucket{le="0.5"} 1.0\n'
        't_latency_seconds_bucket{le="1.0"} 1.0\n'
        't_latency_seconds_bucket{le="+Inf"} 2.0\n'
        "t_latency_seconds_count 2.0\n"
        "t_latency_seconds_sum 3.5\n")
    assert prom.CONTENT_TYPE_LATEST == "text/plain; version=0.0.4; charset=utf-8"


def test_misuse_is_refused() -> None:
    reg = prom.CollectorRegistry()
    c = prom.Counter("t_x_total", "X", ["a"], registry=reg)
    with pytest.raises(ValueError):
        c.inc()  # a labelled counter needs its labels
    with pytest.raises(ValueError):
        c.labels("1", "2")
    with pytest.raises(ValueError):
        c.labels("1").inc(-1)
    with pytest.raises(ValueError):
        prom.Counter("t_y", "Y").labels("a")
    with pytest.raises(ValueError):
        prom.Histogram("t_z", "Z", ["le"])
    with pytest.raises(ValueError):
        prom.Histogram("t_z", "Z", buckets=(1, 1))


def test_increments_from_threads_are_not_lost() -> None:
    reg = prom.CollectorRegistry()
    c = prom.Counter("t_n_total", "N", ["k"], registry=reg)
    h = prom.Histogram("t_h", "H", registry=reg, buckets=(1,))

    def work() -> None:
        for _ in range(20000):
            c.labels("x").inc()
            h.observe(0.5)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = parsed(prom.generate_latest(reg).decode())
    assert got["t_n"][2] == [("t_n_total", (("k", "x"),), 80000.0)]
    assert ("t_h_count", (), 80000.0) in got["t_h"][2]
