"""An alert's names, rows and protos: what every part of :mod:`node.kinds.alerts` reads.

Resource names and their parsing, the listing filter, the statements of the
hot paths (built once), and the one place rows become ``Alert`` protos with
their deliveries, hits and states.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Row,
    bindparam,
    select,
    update,
)

from intelshare import errors
from intelshare.db import Statement
from intelshare.v1 import alert_pb2
from node.kinds.reviews import HELD
from node.schema import alert as rec
from node.schema import names
from node.storage import tables as t

log = logging.getLogger(__name__)


ISSUED = "issued"
RECEIVED = "received"
ACTIVE = "active"
REVOKED = "revoked"

UPDATABLE = ("urgency", "subjects", "description", "handling", "tlp", "evaluation", "expire_time")

DEFAULT_PAGE = 50
MAX_PAGE = 500
#: the key of an acknowledgement's payload: when the recipient's officer acknowledged
#: (RFC 3339 with microseconds); nodes before issue 22 send an empty payload
ACKNOWLEDGED_AT = "acknowledged_at"


def alert_name(alert_id: str) -> str:
    return f"alerts/{alert_id}"


def parse_name(name: str, field: str = "name") -> str:
    """The id of ``alerts/{alert_id}`` (a UUIDv7, see :mod:`node.schema.names`)."""
    return names.assigned_id(name, "alerts", field)


def parse_delivery_name(name: str) -> tuple[str, str]:
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "alerts" or parts[2] != "deliveries" or not all(parts):
        raise errors.NameInvalid(
            f"name must look like alerts/{{alert_id}}/deliveries/{{agency_id}}, got {name!r}",
            violations={"name": "expected alerts/{alert_id}/deliveries/{agency_id}"},
        )
    return parse_name("/".join(parts[:2])), parts[3]


@dataclass(frozen=True)
class ListFilter:
    kind: int = 0
    state: int = 0
    direction: int = 0
    treaty_id: str = ""
    #: Only alerts whose update_ms is after this (0: any).
    updated_after_ms: int = 0

    def fingerprint(self) -> str:
        base = f"{self.kind}:{self.state}:{self.direction}:{self.treaty_id}"
        # Appended only when set, so tokens issued before the filter existed stay valid.
        return f"{base}:{self.updated_after_ms}" if self.updated_after_ms else base


# --- module helpers -----------------------------------------------------------------

# Statements of the hot paths, built once: executing them with a parameter set
# skips building, cache-key hashing and compiling per call.
_d = t.deliveries
# every receipt marks its deliveries: psycopg's own execute on PostgreSQL
MARK_DELIVERED = Statement(
    update(_d)
    .where(
        _d.c.view_id.in_(bindparam("refs", expanding=True)),
        _d.c.agency_id == bindparam("sender"),
        _d.c.treaty_id == bindparam("treaty"),
        _d.c.delivered_ms.is_(None),
    )
    .values(delivered_ms=bindparam("at"))
    .returning(_d.c.view_id, _d.c.alert_id),
    postgresql=f"UPDATE {_d.name} SET delivered_ms = %(at)s "  # noqa: S608
    "WHERE view_id = ANY(%(refs)s) AND agency_id = %(sender)s AND treaty_id = %(treaty)s "
    "AND delivered_ms IS NULL RETURNING view_id, alert_id",
)
DELIVERY_BY_VIEW = select(_d).where(
    _d.c.view_id == bindparam("ref"), _d.c.agency_id == bindparam("sender")
)
_DELIVERY_KEY = (
    _d.c.alert_id == bindparam("b_alert_id"),
    _d.c.agency_id == bindparam("b_agency_id"),
)
SET_DELIVERED = update(_d).where(*_DELIVERY_KEY).values(delivered_ms=bindparam("at"))
SET_ACKNOWLEDGED = update(_d).where(*_DELIVERY_KEY).values(acknowledged_us=bindparam("ack_us"))
COUNT_HIT = (
    update(_d)
    .where(*_DELIVERY_KEY)
    .values(hit_count=_d.c.hit_count + 1, last_hit_us=bindparam("hit_us"))
)

#: columns of a new row that its INSERT leaves to their defaults (NULL)
ALERT_DEFAULTS: dict[str, Any] = {
    "revoke_ms": None,
    "revoke_reason": None,
    "message_id": None,
    "received_ms": None,
    "retain_until_ms": None,
    "acknowledged_us": None,
    "last_change_ms": None,
    "created_by": None,
}
DELIVERY_DEFAULTS: dict[str, Any] = {
    "accepted_ms": None,
    "delivered_ms": None,
    "acknowledged_us": None,
    "last_hit_us": None,
    "failure": None,
}


class Fresh:
    """A row just written, with the attributes a read of it would have."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:  # only for columns it was not given
        raise AttributeError(name)


def by_agency(deliveries: Iterable[Any]) -> list[Any]:
    """Deliveries in the order alerts show them (by agency id)."""

    def key(d: Any) -> str:
        return str(d["agency_id"] if isinstance(d, dict) else d.agency_id)

    return sorted(deliveries, key=key)


def copy_alert(alert: alert_pb2.Alert) -> alert_pb2.Alert:
    out = alert_pb2.Alert()
    out.CopyFrom(alert)
    return out


def is_set(alert: alert_pb2.Alert, path: str) -> bool:
    if path == "subjects":
        return alert.HasField("subjects")
    if path == "evaluation":
        return alert.HasField("evaluation")
    if path == "expire_time":
        return alert.HasField("expire_time")
    return bool(getattr(alert, path))


def alert_state(row: Row[Any] | Fresh, now: int) -> alert_pb2.AlertState.ValueType:
    if row.state == REVOKED:
        return alert_pb2.ALERT_STATE_REVOKED
    if row.state == HELD:
        return alert_pb2.ALERT_STATE_PENDING_REVIEW
    if row.expire_ms <= now:
        return alert_pb2.ALERT_STATE_EXPIRED
    return alert_pb2.ALERT_STATE_ACTIVE


def hit_proto(h: Row[Any]) -> alert_pb2.Hit:
    hit = alert_pb2.Hit(
        agency_id=h.agency_id,
        place=h.place,
        found=h.found,
        report_time=rec.us_to_ts(h.reported_us),
        message_id=h.message_id or "",
    )
    if h.found_us is not None:
        hit.found_time.CopyFrom(rec.us_to_ts(h.found_us))
    return hit


def sent_state(sent: Iterable[Row[Any]], view_id: str) -> str:
    for m in sent:
        if m.message_id == view_id:
            return str(m.state)
    return "pending"


def delivery_status(
    d: Row[Any] | Fresh, *, sent_state: str, failure: str | None = None
) -> alert_pb2.AlertDeliveryStatus:
    status = alert_pb2.AlertDeliveryStatus(
        agency_id=d.agency_id,
        treaty_id=d.treaty_id,
        treaty_version=d.treaty_version,
        message_id=d.view_id,
        hit_count=d.hit_count,
        failure=d.failure or failure or "",
    )
    for attr, field in (("accepted_ms", "accept_time"), ("delivered_ms", "deliver_time")):
        value = getattr(d, attr)
        if value is not None:
            getattr(status, field).CopyFrom(rec.ms_to_ts(value))
    # the recipient's own times, to the microsecond (migration 0011)
    for attr, field in (("acknowledged_us", "acknowledge_time"), ("last_hit_us", "hit_time")):
        value = getattr(d, attr)
        if value is not None:
            getattr(status, field).CopyFrom(rec.us_to_ts(value))
    if d.hit_count:
        status.state = alert_pb2.DELIVERY_STATE_HIT
    elif d.acknowledged_us is not None:
        status.state = alert_pb2.DELIVERY_STATE_ACKNOWLEDGED
    elif d.delivered_ms is not None:
        status.state = alert_pb2.DELIVERY_STATE_DELIVERED
    elif sent_state == "failed" or d.failure:
        status.state = alert_pb2.DELIVERY_STATE_FAILED
    elif d.accepted_ms is not None or sent_state == "accepted":
        status.state = alert_pb2.DELIVERY_STATE_SENT
    else:
        status.state = alert_pb2.DELIVERY_STATE_QUEUED
    return status


def to_proto(
    r: Row[Any] | Fresh,
    deliveries: Sequence[Row[Any] | Fresh],
    hits: Sequence[Row[Any]],
    pending: set[str],
    failed: Mapping[str, str],
    envelope_sha256: bytes,
    now: int,
) -> alert_pb2.Alert:
    """The alert of a stored row (its JSON columns read here)."""
    return alert_proto(
        r,
        json.loads(r.record),
        json.loads(r.recipients),
        json.loads(r.categories),
        deliveries,
        hits,
        pending,
        failed,
        envelope_sha256,
        now,
    )


def alert_proto(
    r: Row[Any] | Fresh,
    record: Mapping[str, Any],
    recipients: Sequence[Mapping[str, str]],
    categories: Sequence[str],
    deliveries: Sequence[Row[Any] | Fresh],
    hits: Sequence[Row[Any]],
    pending: set[str],
    failed: Mapping[str, str],
    envelope_sha256: bytes,
    now: int,
) -> alert_pb2.Alert:
    """The alert of row ``r`` with its JSON columns given as values (an alert just written)."""
    try:
        alert = rec.record_to_alert(record)
    except errors.Malformed:  # stored records passed the same check; be safe all the same
        alert = alert_pb2.Alert()
    alert.name = alert_name(r.alert_id)
    if r.kind in rec.KIND_BY_NAME:
        alert.kind = rec.KIND_BY_NAME[r.kind]  # type: ignore[assignment]
    alert.handling = r.handling
    alert.tlp = r.tlp
    alert.treaty_id = r.treaty_id
    alert.recipients.extend(
        alert_pb2.AlertRecipient(agency_id=x["agency_id"], treaty_id=x["treaty_id"])
        for x in recipients
    )
    alert.categories.extend(categories)
    if not alert.HasField("expire_time"):  # the record's keeps its microseconds
        alert.expire_time.CopyFrom(rec.ms_to_ts(r.expire_ms))
    alert.state = alert_state(r, now)
    alert.origin_agency = r.origin_agency
    alert.create_time.CopyFrom(rec.ms_to_ts(r.create_ms))
    alert.update_time.CopyFrom(rec.ms_to_ts(r.update_ms))
    if r.revoke_ms is not None:
        alert.revoke_time.CopyFrom(rec.ms_to_ts(r.revoke_ms))
    alert.revision = r.revision
    alert.hits.extend(hit_proto(h) for h in hits)
    if r.direction == ISSUED:
        alert.direction = alert_pb2.ALERT_DIRECTION_ISSUED
        alert.revoke_reason = r.revoke_reason or ""
        for d in deliveries:
            state = (
                "pending"
                if d.view_id in pending
                else ("failed" if d.view_id in failed else "accepted")
            )
            alert.deliveries.append(
                delivery_status(d, sent_state=state, failure=failed.get(d.view_id))
            )
    else:
        alert.direction = alert_pb2.ALERT_DIRECTION_RECEIVED
        info = alert_pb2.ReceivedInfo(
            message_id=r.message_id or "",
            envelope_sha256=envelope_sha256,
            treaty_id=r.treaty_id,
            treaty_version=r.treaty_version,
            fields=rec.field_paths(record),
        )
        if r.received_ms is not None:
            info.receive_time.CopyFrom(rec.ms_to_ts(r.received_ms))
        if r.retain_until_ms is not None:
            info.retain_until.CopyFrom(rec.ms_to_ts(r.retain_until_ms))
        if r.acknowledged_us is not None:
            info.acknowledge_time.CopyFrom(rec.us_to_ts(r.acknowledged_us))
        alert.received.CopyFrom(info)
    return alert
