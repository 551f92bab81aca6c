"""One small export module per record kind, and the table that finds them.

Each module maps its record message to subject objects and a record
object through the engine (:mod:`intelshare.interop.stix`), which does
what is common (identities, times, markings, ids, bundles). The command
line and the TAXII server look a record's export up here by the record's
message type, so a new kind is one module and one line below.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final

from google.protobuf.message import Message
from stix2.v21 import Bundle

from intelshare.errors import InvalidArgument
from intelshare.interop.kinds.alert import alert_objects
from intelshare.interop.kinds.detention import detention_objects, detention_report_objects
from intelshare.interop.kinds.recordation import recordation_objects
from intelshare.interop.kinds.risk_profile import risk_profile_objects
from intelshare.interop.stix import ExportContext, RecordObjects, bundle_of
from intelshare.v1 import alert_pb2, detention_pb2, recordation_pb2, risk_profile_pb2

__all__ = [
    "EXPORTERS",
    "alert_objects",
    "detention_objects",
    "detention_report_objects",
    "export_alerts",
    "export_records",
    "record_objects",
    "recordation_objects",
    "risk_profile_objects",
]

Exporter = Callable[[Any, ExportContext], RecordObjects]

#: Record kind -> (its message type, its export).
EXPORTERS: Final[dict[str, tuple[type[Message], Exporter]]] = {
    "alert": (alert_pb2.Alert, alert_objects),
    "recordation": (recordation_pb2.Recordation, recordation_objects),
    "detention": (detention_pb2.Detention, detention_objects),
    "detention_report": (detention_pb2.DetentionReport, detention_report_objects),
    "risk_profile": (risk_profile_pb2.RiskProfile, risk_profile_objects),
}
_BY_MESSAGE: Final = {msg.DESCRIPTOR.full_name: fn for msg, fn in EXPORTERS.values()}


def record_objects(record: Message, ctx: ExportContext) -> RecordObjects:
    """The STIX objects of any exportable record."""
    fn = _BY_MESSAGE.get(record.DESCRIPTOR.full_name)
    if fn is None:
        raise InvalidArgument(
            f"a {record.DESCRIPTOR.name} cannot be exported to STIX",
            violations={
                "record": "alert, recordation, detention, detention report or risk profile"
            },
        )
    return fn(record, ctx)


def export_records(records: Iterable[Message], ctx: ExportContext) -> Bundle:
    """A STIX 2.1 bundle of ``records`` (of any kinds, mixed)."""
    return bundle_of(record_objects(r, ctx) for r in records)


def export_alerts(alerts: Iterable[alert_pb2.Alert], ctx: ExportContext) -> Bundle:
    """A STIX 2.1 bundle of ``alerts``."""
    return bundle_of(alert_objects(a, ctx) for a in alerts)
