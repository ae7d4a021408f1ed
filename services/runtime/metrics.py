"""Prometheus metrics: one registry per service, kernsim_ names in base units.

State-derived metrics (usage, swap slots, message counts) are read from the
owning objects at scrape time by a collector, so /metrics, /statistics and
the cgroupfs files can never disagree about the same instant's state.
Histograms are observed as events happen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

Families = Callable[[], Iterable[Metric]]

RPC_BUCKETS = (5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 5e-2, 0.1, 0.5, 1.0, 5.0)
BIO_BUCKETS = (1e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.5, 1.0)


class _Callback(Collector):
    def __init__(self, fn: Families) -> None:
        self.fn = fn

    def collect(self) -> Iterator[Metric]:
        yield from self.fn()


class Metrics:
    """A service's registry plus the histograms every service may observe."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.rpc_latency = Histogram(
            "kernsim_rpc_latency_seconds",
            "Round trip of one kernel primitive RPC, as the calling CPU sees it.",
            ["op"],
            buckets=RPC_BUCKETS,
            registry=self.registry,
        )
        self.bio_latency = Histogram(
            "kernsim_bio_latency_seconds",
            "Block device completion latency of a swap bio.",
            ["direction"],
            buckets=BIO_BUCKETS,
            registry=self.registry,
        )

    def add(self, fn: Families) -> None:
        """Register a function that yields metric families at scrape time."""
        self.registry.register(_Callback(fn))

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))


def gauge(name: str, doc: str, value: float, labels: dict[str, str] | None = None) -> Metric:
    fam = GaugeMetricFamily(name, doc, labels=list(labels) if labels else None)
    if labels:
        fam.add_metric(list(labels.values()), value)
    else:
        fam = GaugeMetricFamily(name, doc, value=value)
    return fam


def counter_by(name: str, doc: str, label: str, values: dict[str, int]) -> Metric:
    """A counter family with one sample per label value (``name`` without ``_total``)."""
    fam = CounterMetricFamily(name, doc, labels=[label])
    for key, value in sorted(values.items()):
        fam.add_metric([key], value)
    return fam


def build_info(variant: str, scenario: str, faults: str) -> Metric:
    """``kernsim_build_info{version,variant,scenario,faults} 1``: what this service runs, so
    that a query can say ``none`` or ``upstream`` instead of a stack name (join on stack)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("kernsim")
    except PackageNotFoundError:
        ver = "unknown"
    fam = GaugeMetricFamily(
        "kernsim_build_info",
        "Always 1; the labels say the kernsim version, kernel variant, scenario and fault profile.",
        labels=["version", "variant", "scenario", "faults"],
    )
    fam.add_metric([ver, variant, scenario, faults], 1)
    return fam
