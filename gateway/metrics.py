"""The gateway's Prometheus metrics.

Counted where things happen (one registry per gateway process):

``intelshare_gateway_envelopes_accepted_total{sender}``
    submissions accepted and queued (first submit of a message id);
``intelshare_gateway_envelopes_duplicate_total``
    resubmissions of an accepted message id, answered with the first receipt;
``intelshare_gateway_envelopes_refused_total{reason,peer}``
    submissions answered with an error, by ``ErrorInfo`` reason
    (``SENDER_MISMATCH``, ``CATEGORY_NOT_PERMITTED``, ``SIGNATURE_INVALID``
    …; ``INTERNAL`` for an unexpected failure) and the calling agency named
    by its certificate (empty without one);
``intelshare_gateway_submit_seconds``
    time to answer a submission (admission, storage, audit, receipt);
``intelshare_gateway_delivery_lag_seconds{recipient}``
    from acceptance to the first delivery of the entry on the recipient's
    inbox stream: how long messages wait for their recipient;
``intelshare_gateway_inbox_streams{agency}``
    inbox streams open on this process (0: the agency's node is not
    connected here);
``intelshare_gateway_inbox_expired_total``
    queue entries dropped because their envelope expired unacknowledged.

Read from the database when scraped (at most every ``metrics_refresh_seconds``,
one grouped query; the same on every replica, since they share the database):

``intelshare_gateway_inbox_depth{agency}``
    entries queued and not yet acknowledged by the agency's node;
``intelshare_gateway_inbox_undelivered{agency}``
    of those, entries never streamed to the node yet.

No label ever holds message content: agency ids come from certificates the
federation CA issued and from the signed directory, reasons from the fixed
set of error classes.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextvars import ContextVar
from typing import Any, Protocol

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from sqlalchemy import func, select

from gateway.store import GatewayStore, InboxRow
from gateway.tables import inbox
from intelshare.errors import IntelshareError
from intelshare.metrics import (
    CachedCollector,
    agency_label,
    new_registry,
    reason_label,
    wait_buckets,
)
from intelshare.tls import peer_agency_id

#: Delivery lag spans a node that is streaming (milliseconds) and one that was
#: offline for a week (the queue keeps entries until they expire).
LAG_BUCKETS = wait_buckets(0.01, 7 * 86400.0)
SUBMIT_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class GatewayMetrics:
    """The metrics of one gateway process (see the module docstring)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = new_registry() if registry is None else registry
        r = self.registry
        self.accepted = Counter(
            "intelshare_gateway_envelopes_accepted",
            "Envelopes accepted and queued for their recipients, by sending agency",
            ["sender"],
            registry=r,
        )
        self.duplicates = Counter(
            "intelshare_gateway_envelopes_duplicate",
            "Resubmissions of an accepted message id, answered with the first receipt",
            registry=r,
        )
        self.refused = Counter(
            "intelshare_gateway_envelopes_refused",
            "Submissions refused, by ErrorInfo reason and calling agency (certificate)",
            ["reason", "peer"],
            registry=r,
        )
        self.submit_seconds = Histogram(
            "intelshare_gateway_submit_seconds",
            "Time to answer SubmitEnvelope (admission, storage, audit entry, receipt)",
            buckets=SUBMIT_BUCKETS,
            registry=r,
        )
        self.delivery_lag = Histogram(
            "intelshare_gateway_delivery_lag_seconds",
            "From acceptance of an envelope to its first delivery on the recipient's stream",
            ["recipient"],
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.streams = Gauge(
            "intelshare_gateway_inbox_streams",
            "Inbox streams open on this gateway process, by agency",
            ["agency"],
            registry=r,
        )
        self.streams_limited = Counter(
            "intelshare_gateway_inbox_streams_limited",
            "Inbox streams replaced by a newer one of their agency (STREAM_REPLACED) or "
            "refused at a limit (TOO_MANY_STREAMS), by reason and agency",
            ["reason", "agency"],
            registry=r,
        )
        self.expired = Counter(
            "intelshare_gateway_inbox_expired",
            "Queue entries dropped because their envelope expired before it was acknowledged",
            registry=r,
        )
        self._inbox: CachedCollector | None = None

    # --- hooks called by the servicer -------------------------------------------------

    def stream_opened(self, agency: str, context: grpc.ServicerContext) -> None:
        """Count an inbox stream until its call ends (however it ends)."""
        gauge = self.streams.labels(agency=agency_label(agency))
        gauge.inc()
        if not context.add_callback(gauge.dec):
            gauge.dec()  # the call already ended

    def stream_limited(self, reason: str, agency: str) -> None:
        self.streams_limited.labels(reason=reason, agency=agency_label(agency)).inc()

    def delivered(
        self, agency: str, rows: Sequence[InboxRow], fresh: Iterable[int], now_ms: int
    ) -> None:
        """Observe the delivery lag of the entries delivered for the first time."""
        first = set(fresh)
        if not first:
            return
        histogram = self.delivery_lag.labels(recipient=agency_label(agency))
        for row in rows:
            if row.sequence in first:
                histogram.observe(max(0, now_ms - row.accept_ms) / 1000)

    # --- database gauges ----------------------------------------------------------------

    def watch_inbox(
        self, store: GatewayStore, agencies: Callable[[], Iterable[str]], max_age: float
    ) -> None:
        """Export inbox depth per agency, read from ``store`` when scraped.

        ``agencies`` names the agencies to report even with an empty queue
        (those of the directory), so a drained queue reads 0 rather than
        vanishing.
        """
        if self._inbox is not None:
            self._inbox.max_age = max_age
            return

        def compute() -> Iterator[Metric]:
            with store.engine.connect() as conn:
                rows = conn.execute(
                    select(
                        inbox.c.agency_id, func.count(), func.count(inbox.c.delivered_ms)
                    ).group_by(inbox.c.agency_id)
                ).all()
            depth, undelivered = _inbox_families()
            seen: set[str] = set()
            for agency, total, delivered in rows:
                seen.add(agency)
                depth.add_metric([agency_label(agency)], int(total))
                undelivered.add_metric([agency_label(agency)], int(total) - int(delivered))
            for agency in sorted(set(_safe(agencies)) - seen):
                depth.add_metric([agency_label(agency)], 0)
                undelivered.add_metric([agency_label(agency)], 0)
            yield depth
            yield undelivered

        self._inbox = CachedCollector(
            "intelshare_gateway_metrics", compute, _inbox_families, max_age
        )
        self.registry.register(self._inbox)


def _inbox_families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
    return (
        GaugeMetricFamily(
            "intelshare_gateway_inbox_depth",
            "Entries queued for the agency and not yet acknowledged by its node",
            labels=["agency"],
        ),
        GaugeMetricFamily(
            "intelshare_gateway_inbox_undelivered",
            "Queued entries never streamed to the agency's node yet",
            labels=["agency"],
        ),
    )


def _safe(agencies: Callable[[], Iterable[str]]) -> list[str]:
    try:
        return list(agencies())
    except IntelshareError:
        return []  # no directory yet


# --- SubmitEnvelope -------------------------------------------------------------------


class _HasMetrics(Protocol):
    @property
    def metrics(self) -> GatewayMetrics: ...


class _Servicer(Protocol):
    @property
    def s(self) -> _HasMetrics: ...


#: what SubmitEnvelope receives (gateway.submit.SubmitRequest); Any: no import of gateway.submit
Request = Any
#: what it answers (gateway.submit.SubmitAnswer: a receipt's bytes and ``duplicate``)
Response = Any
SubmitMethod = Callable[[Any, Request, grpc.ServicerContext], Response]


def instrument_submit(method: SubmitMethod) -> SubmitMethod:
    """Count and time ``SubmitEnvelope``, inside the server's error translation.

    The server's :class:`~intelshare.grpc_errors.TranslateErrors` interceptor
    turns exceptions into statuses outside this wrapper: here the project
    exception is still an exception with its reason, so every refusal —
    admission, ``MESSAGE_ID_REUSED`` after storage, missing directory — is
    counted by reason in one place.
    """

    @functools.wraps(method)
    def wrapper(self: _Servicer, request: Request, context: grpc.ServicerContext) -> Response:
        metrics = self.s.metrics
        started = time.perf_counter()
        caller.set(None)
        try:
            response = method(self, request, context)
        except IntelshareError as exc:
            metrics.refused.labels(reason=reason_label(exc.reason), peer=_peer(context)).inc()
            raise
        except Exception:
            metrics.refused.labels(reason="INTERNAL", peer=_peer(context)).inc()
            raise
        finally:
            metrics.submit_seconds.observe(time.perf_counter() - started)
        if response.duplicate:
            metrics.duplicates.inc()
        else:
            metrics.accepted.labels(sender=_peer(context)).inc()
        return response

    return wrapper


#: The calling agency once the servicer identified it (the certificate's
#: agency, matched against the directory), so that counting a call does not
#: parse its certificate again. gRPC runs each call in a context of its own.
caller: ContextVar[str | None] = ContextVar("gateway_caller", default=None)


def _peer(context: grpc.ServicerContext) -> str:
    known = caller.get()
    if known is not None:
        return agency_label(known)
    try:
        return agency_label(peer_agency_id(context))
    except Exception:
        return ""
