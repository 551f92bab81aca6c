"""Prometheus metrics: a registry per service and an HTTP endpoint when configured.

Every service (gateway, node, worker) builds its metrics on a
:class:`~prometheus_client.CollectorRegistry` of its own rather than on the
library's global default registry, so several services in one process (the
test suite, ``make run`` helpers) never collide on metric names, and each
endpoint exports exactly the service it belongs to. :func:`new_registry`
adds the standard process, platform and garbage-collector collectors.

:func:`serve_metrics` starts the plaintext ``/metrics`` endpoint on the
service's ``metrics_listen`` (``host:port``, port 0 picks a free one);
without that setting nothing listens and metrics are only counted.

What metrics may carry: counts, durations, agency ids and error reasons.
Never payload content, officer tokens or key material — label values come
from fixed sets in the code (reasons, event types, outcomes) or from the
signed directory and CA-vouched certificates (agency ids), and
:func:`reason_label` / :func:`agency_label` fold anything else into one
``OTHER`` value, so a hostile peer cannot mint label values either.

Gauges that are read from a database (queue depths, dead letters) are
computed by :class:`CachedCollector` when scraped, at most once per
``max_age`` seconds, whatever the number of scrapers; a failed refresh keeps
the last values and counts the failure.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from intelshare.config import parse_address

log = logging.getLogger(__name__)

_REASON = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
_AGENCY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
OTHER = "OTHER"


#: Histogram buckets for waits that span milliseconds (a node that keeps up)
#: to a week (a node offline that long): each service takes its range of them.
WAIT_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
    4 * 3600.0,
    86400.0,
    7 * 86400.0,
)


def wait_buckets(low: float, high: float) -> tuple[float, ...]:
    """The :data:`WAIT_BUCKETS` from ``low`` to ``high`` seconds."""
    return tuple(b for b in WAIT_BUCKETS if low <= b <= high)


def new_registry() -> CollectorRegistry:
    """A registry of its own for one service, with process and runtime metrics.

    Counters and histograms are exported without their ``*_created`` series
    (process-wide setting of the client library): they double the series
    count and Prometheus does not need them.
    """
    disable_created_metrics()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def reason_label(reason: str | None) -> str:
    """An UPPER_SNAKE error reason as a label value; anything else is ``OTHER``."""
    return reason if reason and _REASON.fullmatch(reason) else OTHER


def agency_label(agency: str | None) -> str:
    """An agency id as a label value (``""`` for none, ``OTHER`` if not id-shaped)."""
    if not agency:
        return ""
    return agency if _AGENCY.fullmatch(agency) else OTHER


@dataclass
class MetricsServer:
    """A running ``/metrics`` endpoint; ``stop()`` closes its socket."""

    host: str
    port: int
    _server: WSGIServer = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_metrics(
    registry: CollectorRegistry, address: str | None, *, key: str = "metrics_listen"
) -> MetricsServer | None:
    """Serve ``registry`` over HTTP on ``address`` (``host:port``); None if unset.

    ``key`` names the setting in the error raised for a malformed address.
    The endpoint is plaintext and read-only: bind it to an address only the
    monitoring system reaches (a pod or loopback address, a management VLAN).
    """
    if not address:
        return None
    host, port = parse_address(key, address)
    server, thread = start_http_server(port, addr=host, registry=registry)
    bound = int(server.server_address[1])
    log.info("metrics on %s:%d/metrics", host, bound)
    return MetricsServer(host, bound, server, thread)


class CachedCollector(Collector):
    """Metric families computed by ``compute`` when scraped, at most every ``max_age`` s.

    ``compute`` usually runs a few grouped database queries; ``describe``
    returns the same families without samples, so registering this collector
    (or a registry's duplicate check) never touches the database. ``name``
    prefixes the ``<name>_refresh_failures_total`` counter.
    """

    def __init__(
        self,
        name: str,
        compute: Callable[[], Iterable[Metric]],
        describe: Callable[[], Iterable[Metric]],
        max_age: float,
    ) -> None:
        self._name = name
        self._compute = compute
        self._describe = describe
        self.max_age = max_age
        self._lock = threading.Lock()
        self._families: list[Metric] | None = None
        self._at = 0.0
        self._failures = 0

    def describe(self) -> Iterable[Metric]:
        return [*self._describe(), self._failure_family()]

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            now = time.monotonic()
            if self._families is None or now - self._at >= self.max_age:
                try:
                    self._families = list(self._compute())
                    self._at = now
                except Exception as exc:
                    # Keep serving the last values; the failure count says they are stale.
                    self._failures += 1
                    log.warning("metrics refresh %s failed: %s", self._name, type(exc).__name__)
            families = list(self._families or self._describe())
            failures = self._failure_family()
        yield from families
        yield failures

    def _failure_family(self) -> CounterMetricFamily:
        family = CounterMetricFamily(
            f"{self._name}_refresh_failures",
            "Scrape-time refreshes of database gauges that failed (the gauges kept older values)",
        )
        family.add_metric([], self._failures)
        return family
