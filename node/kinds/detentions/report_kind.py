"""The ``detention_report`` record kind: what a report is on the generic record engine.

A report (:func:`node.ipr.views.detention_report`) is redacted by the
treaty's allow-list, sealed and queued like any record; this module gives
the engine the kind's own parts: its JSON form (per-node fields left out),
validation, an envelope lifetime, and the ``on_stored`` hook that keeps
``node_ipr_reports``, links a received report to the recordations it names
that this node holds, and counts it in the statistics as the partner's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from sqlalchemy import delete, exists, insert, select, tuple_

from intelshare import errors
from intelshare.v1 import detention_pb2
from node.kinds import ipr_common as ipr
from node.kinds import ipr_stats
from node.schema.alert import ts_to_ms
from node.sharing.record_kind import RecordKind, StoredRecord
from node.storage import tables as t
from node.storage.store import Writer, now_ms

D = detention_pb2

#: Envelope lifetime of a report at the gateway.
REPORT_ENVELOPE_DAYS: Final = 30


def _report_to_record(report: D.DetentionReport) -> dict[str, Any]:
    shared = D.DetentionReport()
    shared.CopyFrom(report)
    # per node: the name is the record's, links and time are the holder's own
    for field in ("name", "linked_recordations", "create_time"):
        shared.ClearField(field)
    return ipr.to_json(shared)


def report_from_record(record: Mapping[str, Any]) -> D.DetentionReport:
    return ipr.from_json(record, D.DetentionReport, "detention report")


def _report_validate(report: D.DetentionReport) -> None:
    if not report.goods:
        raise errors.FieldInvalid(
            "a detention report names the goods", violations={"goods": "required"}
        )


def _report_stored(w: Writer, stored: StoredRecord[D.DetentionReport]) -> None:
    """The kind's ``on_stored`` hook: bookkeeping, links and statistics of a report."""
    rep = t.ipr_reports
    known = w.conn.execute(select(exists().where(rep.c.record_id == stored.record_id))).scalar_one()
    if not known:
        w.conn.execute(
            insert(rep).values(
                record_id=stored.record_id,
                direction=stored.direction,
                detention_id=None,
                create_ms=stored.create_ms,
            )
        )
    if stored.direction != ipr.RECEIVED:
        return
    report = stored.message
    links = t.ipr_report_links
    w.conn.execute(delete(links).where(links.c.record_id == stored.record_id))
    wanted = set()
    for ref in report.recordations:
        try:
            wanted.add((ref.agency_id, ipr.parse_name(ref.recordation, ipr.RECORDATIONS)))
        except errors.InvalidArgument:
            continue
    linked: list[str] = []
    if wanted:
        r = t.recordations
        linked = sorted(
            w.conn.execute(
                select(r.c.recordation_id).where(
                    tuple_(r.c.origin_agency, r.c.origin_name).in_(sorted(wanted))
                )
            ).scalars()
        )
    if linked:
        w.conn.execute(
            insert(links), [{"record_id": stored.record_id, "recordation_id": i} for i in linked]
        )
    detain_ms = ts_to_ms(report.detain_time) if report.HasField("detain_time") else 0
    ipr_stats.replace(
        w.conn,
        ipr_stats.Source(
            source=ipr_stats.REPORTED,
            source_id=stored.record_id,
            partner=stored.origin_agency,
            detain_ms=detain_ms or stored.create_ms,
            country=report.origin_country,
            procedure=ipr_stats.procedure_label(report.procedure),
            rights=[ipr_stats.right_label(r.type) for r in report.rights],
            goods=list(report.goods),
        ),
    )
    change = "received" if not known else "updated"
    ipr.event(w, f"detention_report.{change}", stored.record_id, stored.origin_agency)


def _report_expire_ms(_report: D.DetentionReport) -> int:
    return now_ms() + REPORT_ENVELOPE_DAYS * 86_400_000


DETENTION_REPORT: Final[RecordKind[D.DetentionReport]] = RecordKind(
    name=ipr.REPORT_KIND,
    collection=ipr.REPORTS,
    message=D.DetentionReport,
    to_record=_report_to_record,
    from_record=report_from_record,
    validate=_report_validate,
    categories=lambda _r: [ipr.IPR_CATEGORY],
    expire_ms=_report_expire_ms,
    on_stored=_report_stored,
)
