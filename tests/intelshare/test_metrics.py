"""intelshare.metrics: registries per service, the HTTP endpoint, label hygiene, cached gauges.

``Scrape`` (used by the gateway and node metrics tests too) reads a real
``/metrics`` endpoint over HTTP and parses it with the Prometheus text
parser, so what is asserted is what a Prometheus server would see.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from intelshare.errors import ConfigError
from intelshare.metrics import (
    OTHER,
    CachedCollector,
    agency_label,
    new_registry,
    reason_label,
    serve_metrics,
)


class Scrape:
    """One scrape of a ``/metrics`` endpoint: samples by name and labels."""

    def __init__(self, url: str) -> None:
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
            self.content_type = response.headers.get("Content-Type", "")
            self.text = response.read().decode()
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(self.text):
            for s in family.samples:
                self.samples[(s.name, frozenset(s.labels.items()))] = s.value

    def get(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, frozenset(labels.items())))

    def value(self, name: str, **labels: str) -> float:
        """The sample's value; 0 when the series does not exist (yet)."""
        return self.get(name, **labels) or 0.0

    def series(self, name: str) -> dict[frozenset[tuple[str, str]], float]:
        return {labels: v for (n, labels), v in self.samples.items() if n == name}


def test_each_registry_is_its_own_and_served_over_http() -> None:
    a, b = new_registry(), new_registry()
    # The same metric name on two registries: no "Duplicated timeseries" error.
    ca = Counter("intelshare_test_things", "things", ["reason"], registry=a)
    cb = Counter("intelshare_test_things", "things", ["reason"], registry=b)
    ca.labels(reason="X").inc(3)
    cb.labels(reason="X").inc(5)
    server = serve_metrics(a, "127.0.0.1:0")
    assert server is not None
    try:
        assert server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}/metrics"
        scrape = Scrape(server.url)
        assert scrape.content_type.startswith("text/plain")
        assert scrape.value("intelshare_test_things_total", reason="X") == 3
        # the standard process metrics come with every registry
        assert scrape.get("process_cpu_seconds_total") is not None
    finally:
        server.stop()


def test_no_address_no_endpoint_and_bad_address_names_the_key() -> None:
    assert serve_metrics(new_registry(), None) is None
    assert serve_metrics(new_registry(), "") is None
    with pytest.raises(ConfigError, match=r"node\.metrics_listen"):
        serve_metrics(new_registry(), "nonsense", key="node.metrics_listen")


def test_labels_keep_only_reasons_and_agency_ids() -> None:
    assert reason_label("CATEGORY_NOT_PERMITTED") == "CATEGORY_NOT_PERMITTED"
    for bad in ("", None, "lower", "A" * 65, "BAD REASON", '{"payload": 1}', "X\n"):
        assert reason_label(bad) == OTHER
    assert agency_label("nl-customs") == "nl-customs"
    assert agency_label(None) == ""
    assert agency_label("-----BEGIN PRIVATE KEY-----") == OTHER
    assert agency_label("a b") == OTHER


def _family(value: float) -> Iterator[Metric]:
    family = GaugeMetricFamily("intelshare_test_depth", "depth", labels=["agency"])
    family.add_metric(["nl-customs"], value)
    yield family


def test_cached_collector_refreshes_at_most_every_max_age_and_survives_failures() -> None:
    calls: list[int] = []
    fail = False

    def compute() -> Iterator[Metric]:
        if fail:
            raise RuntimeError("database down")
        calls.append(1)
        return _family(len(calls))

    def describe() -> list[Metric]:
        return [GaugeMetricFamily("intelshare_test_depth", "depth", labels=["agency"])]

    registry = new_registry()
    collector = CachedCollector("intelshare_test", compute, describe, max_age=3600)
    registry.register(collector)
    assert calls == []  # registering never computes (describe is used)
    assert registry.get_sample_value("intelshare_test_depth", {"agency": "nl-customs"}) == 1
    assert registry.get_sample_value("intelshare_test_depth", {"agency": "nl-customs"}) == 1
    assert len(calls) == 1  # cached within max_age
    collector.max_age = 0
    assert registry.get_sample_value("intelshare_test_depth", {"agency": "nl-customs"}) == 2
    fail = True
    # a failed refresh keeps the last values and is counted
    assert registry.get_sample_value("intelshare_test_depth", {"agency": "nl-customs"}) == 2
    assert registry.get_sample_value("intelshare_test_refresh_failures_total") == 2
