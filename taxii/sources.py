"""What a collection lists: record kinds, each read through the node's own list call.

A collection is a set of :class:`Source` objects, one per record kind it
holds, each a filter on that kind's ``List*`` call of the node plus, where
the node's list has no treaty filter, a test on each record
(``keep``). :func:`read_records` reads them with the caller's token: a
kind the node refuses the officer (``PERMISSION_DENIED``, e.g. alerts for
a rights holder) is left out, and only when every kind is refused is the
request refused (403).

Changes since a time: every record's ``date_added`` is the time its
current version reached the node (its ``update_time``, or ``create_time``
for records that never change, detention reports), so an ``added_after``
poll brings new records *and* new versions of old ones (an update, a
revocation, a withdrawal) with a newer ``modified``. The node filters
alerts on that time (``ListAlertsRequest.update_time_after``); the other
kinds' lists have no such filter, so their records are read and filtered
here (they are far fewer than alerts: recordations, profiles and reports
number in the hundreds or thousands on a node, alerts in the hundreds of
thousands).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from intelshare.errors import PermissionDenied
from intelshare.v1 import (
    alert_pb2,
    detention_pb2,
    recordation_pb2,
    risk_profile_pb2,
)
from taxii.nodeclients import TaxiiNodeClient

#: Records per list call (the node's maximum).
NODE_PAGE = 500


@dataclass(frozen=True)
class Source:
    """One record kind of a collection: the node's list filters, and a test per record."""

    kind: str
    filters: dict[str, Any] = field(default_factory=dict)
    keep: Callable[[Any], bool] | None = None


@dataclass(frozen=True)
class Listed:
    kind: str
    data: bytes
    date_added_us: int
    name: str


def _us(ts: Timestamp) -> int:
    return ts.seconds * 1_000_000 + ts.nanos // 1000


def date_added_us(record: Any) -> int:
    """When the record's current version reached the node (update_time, else create_time)."""
    created = _us(record.create_time)
    if record.DESCRIPTOR.fields_by_name.get("update_time") and record.HasField("update_time"):
        return max(created, _us(record.update_time))
    return created


_LISTS: dict[str, tuple[str, str]] = {
    # kind: (client method, response field)
    "alert": ("list_alerts", "alerts"),
    "recordation": ("list_recordations", "recordations"),
    "detention": ("list_detentions", "detentions"),
    "detention_report": ("list_reports", "detention_reports"),
    "risk_profile": ("list_profiles", "risk_profiles"),
}


def _pages(client: TaxiiNodeClient, source: Source, added_after_us: int | None) -> Iterator[Any]:
    method_name, field_name = _LISTS[source.kind]
    method = getattr(client, method_name)
    filters = dict(source.filters)
    if source.kind == "alert" and added_after_us is not None:
        after = Timestamp(
            seconds=added_after_us // 1_000_000, nanos=(added_after_us % 1_000_000) * 1000
        )
        filters["update_time_after"] = after
    token = ""
    while True:
        page = method(page_size=NODE_PAGE, page_token=token, **filters)
        yield from getattr(page, field_name)
        token = page.next_page_token
        if not token:
            return


def read_records(
    client: TaxiiNodeClient, sources: tuple[Source, ...], added_after_us: int | None
) -> list[Listed]:
    """The records of ``sources`` added or changed after ``added_after_us``, oldest first."""
    out: list[Listed] = []
    refused = 0
    for source in sources:
        try:
            for record in _pages(client, source, added_after_us):
                at = date_added_us(record)
                if added_after_us is not None and at <= added_after_us:
                    continue
                if source.keep is not None and not source.keep(record):
                    continue
                out.append(Listed(source.kind, record.SerializeToString(), at, record.name))
        except PermissionDenied:
            refused += 1
    if sources and refused == len(sources):
        raise PermissionDenied("the node lets this officer read none of this collection's records")
    out.sort(key=lambda r: (r.date_added_us, r.kind, r.name))
    return out


# --- what each collection holds ---------------------------------------------------------


def own_sources(agency_id: str) -> tuple[Source, ...]:
    """The agency's own records: what it issued, granted, detained, reported and wrote."""
    return (
        Source("alert", {"direction": alert_pb2.ALERT_DIRECTION_ISSUED}),
        Source("recordation", {"direction": recordation_pb2.RECORDATION_DIRECTION_ISSUED}),
        Source("detention"),
        Source(
            "detention_report",
            keep=lambda r: r.reporting_agency in ("", agency_id),
        ),
        Source("risk_profile", {"direction": risk_profile_pb2.RISK_PROFILE_DIRECTION_ISSUED}),
    )


def treaty_sources(agency_id: str, treaty_id: str) -> tuple[Source, ...]:
    """Records shared or received under ``treaty_id`` (detentions never leave the node)."""

    def recordation_under(r: recordation_pb2.Recordation) -> bool:
        if r.direction == recordation_pb2.RECORDATION_DIRECTION_RECEIVED:
            return any(a.agency_id == agency_id and a.treaty_id == treaty_id for a in r.agencies)
        return any(a.treaty_id == treaty_id for a in r.agencies)

    def report_under(r: detention_pb2.DetentionReport) -> bool:
        return r.treaty_id == treaty_id

    def profile_under(p: risk_profile_pb2.RiskProfile) -> bool:
        return p.treaty_id == treaty_id or any(x.treaty_id == treaty_id for x in p.recipients)

    return (
        Source("alert", {"treaty_id": treaty_id}),
        Source("recordation", keep=recordation_under),
        Source("detention_report", keep=report_under),
        Source("risk_profile", keep=profile_under),
    )


def decode(kind: str, data: bytes) -> Message:
    """A listed record back as its message."""
    from intelshare.interop.kinds import EXPORTERS

    return EXPORTERS[kind][0].FromString(data)
