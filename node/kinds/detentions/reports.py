"""Detention reports to partners: on an officer's request and on confirmation.

A report goes out through the generic record engine (kind
``detention_report``, :mod:`.report_kind`). Automatically, when a holder
confirms the infringement or agrees to destruction, it goes to the agency
that granted each confirmed recordation this node received, under the
treaty its copy came under, when that treaty lets a report through (else
nothing is sent, and the audit says why).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from sqlalchemy import exists, select, tuple_, update

from intelshare import errors
from intelshare.v1 import detention_pb2, envelope_pb2, ipr_service_pb2
from node.ipr import validate, views
from node.kinds import ipr_common as ipr
from node.kinds.detentions.core import DetentionCore
from node.kinds.detentions.report_kind import DETENTION_REPORT, report_from_record
from node.schema.alert import ms_to_ts
from node.storage import tables as t
from node.storage.officers import Officer
from node.storage.store import Writer

D = detention_pb2
S = ipr_service_pb2


class DetentionReports(DetentionCore):
    """ShareDetentionReport, the automatic report, GetDetentionReport, ListDetentionReports."""

    def share_report(
        self,
        w: Writer,
        officer: Officer,
        name: str,
        recipients: Sequence[S.DetentionReportRecipient],
        summary: str,
    ) -> D.DetentionReport:
        """Share a report of a detention with partners under treaties (ShareDetentionReport)."""
        detention, row = self._load(w, ipr.parse_name(name, ipr.DETENTIONS))
        groups: dict[str, list[str]] = {}
        bad: dict[str, str] = {}
        for i, r in enumerate(recipients):
            if not r.agency_id or not r.treaty_id:
                bad[f"recipients[{i}]"] = "agency_id and treaty_id are required"
            elif r.agency_id == self.agency_id:
                bad[f"recipients[{i}].agency_id"] = "this agency holds the detention itself"
            else:
                groups.setdefault(r.treaty_id, []).append(r.agency_id)
        if not recipients:
            bad["recipients"] = "name at least one agency and its treaty"
        if len(summary) > validate.MAX_TEXT:
            bad["summary"] = f"at most {validate.MAX_TEXT} characters"
        if bad:
            raise errors.FieldInvalid("the report cannot be shared as asked", violations=bad)
        return self._report(w, officer, row.detention_id, detention, groups, summary, False)

    def _report(
        self,
        w: Writer,
        officer: Officer,
        detention_id: str,
        detention: D.Detention,
        groups: Mapping[str, Sequence[str]],
        summary: str,
        automatic: bool,
    ) -> D.DetentionReport:
        ids = [ipr.parse_name(n, ipr.RECORDATIONS) for n in detention.recordations]
        held = ipr.held_by_names(w.conn, ids)
        report = views.detention_report(
            detention, [h.message for h in held.values()], summary=summary
        )
        by_local = {h.name: h for h in held.values()}
        for ref in report.recordations:
            h = by_local.get(ref.recordation)
            if h is not None:  # partners know it by its grantor's name
                ref.recordation = f"{ipr.RECORDATIONS}/{h.origin_name}"
                ref.agency_id = h.origin_agency
        report.handling = envelope_pb2.HANDLING_CODE_H1
        report.tlp = envelope_pb2.TLP_AMBER
        stored = self.records.create(
            w,
            officer,
            DETENTION_REPORT,
            report,
            recipients={k: list(v) for k, v in groups.items()},
            handling=report.handling,
            tlp=report.tlp,
        )
        w.conn.execute(
            update(t.ipr_reports)
            .where(t.ipr_reports.c.record_id == stored.record_id)
            .values(detention_id=detention_id)
        )
        ipr.event(w, "detention_report.shared", stored.record_id)
        w.audit(
            "detention_report_shared",
            {
                "detention": detention.name,
                "record_id": stored.record_id,
                "officer_id": officer.officer_id,
                "automatic": automatic,
                "recipients": sorted(a for v in groups.values() for a in v),
            },
        )
        return self._report_message(w, stored.record_id)

    def _report_on_confirmation(
        self, w: Writer, officer: Officer, detention_id: str, detention: D.Detention
    ) -> None:
        """The automatic report to the grantors of the received recordations concerned."""
        done = w.conn.execute(
            select(exists().where(t.ipr_reports.c.detention_id == detention_id))
        ).scalar_one()
        if done:
            return
        ids = [ipr.parse_name(n, ipr.RECORDATIONS) for n in detention.recordations]
        groups: dict[str, list[str]] = {}
        for h in ipr.held_by_names(w.conn, ids).values():
            if h.direction != ipr.RECEIVED:
                continue
            treaty_id = w.conn.execute(
                select(t.records.c.treaty_id).where(t.records.c.record_id == h.record_id)
            ).scalar_one()
            refusal = self._refusal(treaty_id, h.origin_agency)
            if refusal:
                w.audit(
                    "detention_report_not_sent",
                    {
                        "detention": detention.name,
                        "agency_id": h.origin_agency,
                        "treaty": treaty_id,
                        "reason": refusal,
                    },
                )
                continue
            if h.origin_agency not in groups.setdefault(treaty_id, []):
                groups[treaty_id].append(h.origin_agency)
        if groups:
            self._report(
                w,
                officer,
                detention_id,
                detention,
                groups,
                "reported on confirmation of the infringement",
                True,
            )

    def _refusal(self, treaty_id: str, agency_id: str) -> str:
        """Why a report may not go to ``agency_id`` under ``treaty_id`` ("" when it may)."""
        try:
            treaty = self.sharing.current(treaty_id)
        except errors.IntelshareError as exc:
            return exc.reason
        decision = self.sharing.decision(
            treaty,
            kind=ipr.REPORT_KIND,
            recipients=[agency_id],
            categories=[ipr.IPR_CATEGORY],
            handling=envelope_pb2.HANDLING_CODE_H1,
            tlp=envelope_pb2.TLP_AMBER,
        )
        return "" if decision else decision.reason

    def _report_message(self, w: Writer, record_id: str) -> D.DetentionReport:
        rec = w.conn.execute(select(t.records).where(t.records.c.record_id == record_id)).one()
        report = report_from_record(json.loads(rec.record))
        report.name = f"{ipr.REPORTS}/{record_id}"
        report.create_time.CopyFrom(ms_to_ts(rec.create_ms))
        if rec.direction == ipr.RECEIVED:
            report.reporting_agency = rec.origin_agency
            report.treaty_id = rec.treaty_id
        links = t.ipr_report_links
        report.linked_recordations.extend(
            f"{ipr.RECORDATIONS}/{i}"
            for i in w.conn.execute(
                select(links.c.recordation_id)
                .where(links.c.record_id == record_id)
                .order_by(links.c.recordation_id)
            ).scalars()
        )
        return report

    def get_report(self, officer: Officer, name: str) -> D.DetentionReport:
        record_id = ipr.parse_name(name, ipr.REPORTS)
        with self.store.write() as w:
            known = w.conn.execute(
                select(t.ipr_reports.c.direction).where(t.ipr_reports.c.record_id == record_id)
            ).scalar_one_or_none()
            if known is None:
                raise errors.RecordNotFound(f"{name} does not exist", metadata={"name": name})
            report = self._report_message(w, record_id)
            if known == ipr.RECEIVED:
                w.audit(
                    "read",
                    {
                        "officer_id": officer.officer_id,
                        "record_ids": [record_id],
                        "kind": ipr.REPORT_KIND,
                    },
                )
        return report

    def list_reports(
        self, officer: Officer, request: S.ListDetentionReportsRequest
    ) -> tuple[list[D.DetentionReport], str]:
        size = ipr.page_size(request.page_size)
        listing = json.dumps([request.recordation], separators=(",", ":"))
        after = ipr.decode_token(self.store, officer, request.page_token, listing)
        rep = t.ipr_reports
        query = select(rep.c.record_id, rep.c.create_ms, rep.c.direction)
        if request.recordation:
            ident = ipr.parse_name(request.recordation, ipr.RECORDATIONS, "recordation")
            links = t.ipr_report_links
            query = query.where(
                rep.c.record_id.in_(
                    select(links.c.record_id).where(links.c.recordation_id == ident)
                )
            )
        if after is not None:
            query = query.where(tuple_(rep.c.create_ms, rep.c.record_id) < tuple_(*after))
        query = query.order_by(rep.c.create_ms.desc(), rep.c.record_id.desc()).limit(size + 1)
        with self.store.write() as w:
            rows = w.conn.execute(query).all()
            more = len(rows) > size
            rows = rows[:size]
            out = [self._report_message(w, r.record_id) for r in rows]
            received = [r.record_id for r in rows if r.direction == ipr.RECEIVED]
            w.audit_reads(officer.officer_id, "record_ids", received, kind=ipr.REPORT_KIND)
        token = (
            ipr.encode_token(self.store, officer, [rows[-1].create_ms, rows[-1].record_id], listing)
            if more and rows
            else ""
        )
        return out, token
