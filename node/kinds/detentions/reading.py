"""Officers' and holders' reads of detentions, audited; which ones a feed may show.

A rights holder reads only the detentions naming its own recordations, in
its view (:func:`node.ipr.views.holder_view`); every read is audited.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from sqlalchemy import select, tuple_

from intelshare import errors
from intelshare.v1 import detention_pb2, ipr_service_pb2
from node.ipr import views
from node.kinds import ipr_common as ipr
from node.kinds import ipr_stats
from node.kinds.detentions.core import DetentionCore, build_detention, state_label
from node.schema.alert import ts_to_ms
from node.storage import tables as t
from node.storage.officers import RIGHTS_HOLDER, Officer

D = detention_pb2
S = ipr_service_pb2


class DetentionReading(DetentionCore):
    """GetDetention, ListDetentions, the feed's visibility, the statistics."""

    def get(self, officer: Officer, name: str) -> D.Detention:
        """One detention (to a rights holder: its view, HOLDER_MISMATCH if not its own)."""
        with self.store.write() as w:
            shown = self._shown(w, officer, ipr.parse_name(name, ipr.DETENTIONS))
            w.audit(
                "detention_read",
                {"officer_id": officer.officer_id, "detentions": [shown.name]},
            )
        return shown

    def list_page(
        self, officer: Officer, request: S.ListDetentionsRequest
    ) -> tuple[list[D.Detention], str]:
        """A page of detentions, newest first (to a holder: its own, in its view)."""
        size = ipr.page_size(request.page_size)
        due_ms = ts_to_ms(request.due_before) if request.HasField("due_before") else 0
        listing = json.dumps(
            [
                request.state,
                request.procedure,
                request.recordation,
                due_ms,
                officer.holder_key,
            ],
            separators=(",", ":"),
        )
        after = ipr.decode_token(self.store, officer, request.page_token, listing)
        d = t.detentions
        links = t.detention_recordations
        query = select(d)
        with self.store.write() as w:
            if officer.role == RIGHTS_HOLDER:
                own = [
                    ipr.parse_name(n, ipr.RECORDATIONS)
                    for n in ipr.holder_names(w.conn, officer.holder_key)
                ]
                query = query.where(
                    d.c.detention_id.in_(
                        select(links.c.detention_id).where(links.c.recordation_id.in_(own))
                    )
                )
            if request.recordation:
                ident = ipr.parse_name(request.recordation, ipr.RECORDATIONS, "recordation")
                query = query.where(
                    d.c.detention_id.in_(
                        select(links.c.detention_id).where(links.c.recordation_id == ident)
                    )
                )
            if request.state:
                query = query.where(d.c.state == state_label(request.state))
            if request.procedure:
                query = query.where(d.c.procedure == ipr_stats.procedure_label(request.procedure))
            if due_ms:
                dd = t.detention_deadlines
                query = query.where(
                    d.c.detention_id.in_(
                        select(dd.c.detention_id).where(dd.c.state == "open", dd.c.due_ms < due_ms)
                    )
                )
            if after is not None:
                query = query.where(tuple_(d.c.create_ms, d.c.detention_id) < tuple_(*after))
            query = query.order_by(d.c.create_ms.desc(), d.c.detention_id.desc()).limit(size + 1)
            rows = w.conn.execute(query).all()
            more = len(rows) > size
            rows = rows[:size]
            out = [build_detention(r, as_of=True) for r in rows]
            if officer.role == RIGHTS_HOLDER:
                own_names = ipr.holder_names(w.conn, officer.holder_key)
                out = [views.holder_view(x, own_names) for x in out]
            if out:
                w.audit(
                    "detention_read",
                    {"officer_id": officer.officer_id, "detentions": [x.name for x in out][:200]},
                )
        token = (
            ipr.encode_token(
                self.store, officer, [rows[-1].create_ms, rows[-1].detention_id], listing
            )
            if more and rows
            else ""
        )
        return out, token

    def visible_ids(self, officer: Officer, ids: Collection[str]) -> dict[str, str]:
        """Of ``ids``, the detentions ``officer`` may see, with their state (for feeds)."""
        if not ids:
            return {}
        d = t.detentions
        query = select(d.c.detention_id, d.c.state).where(d.c.detention_id.in_(sorted(ids)))
        with self.store.engine.connect() as conn:
            rows = conn.execute(query).all()
            if officer.role == RIGHTS_HOLDER:
                seen, _ = ipr.holder_sees(conn, officer.holder_key, detention_ids=ids)
                rows = [r for r in rows if r.detention_id in seen]
        return {r.detention_id: r.state for r in rows}

    def webhook_summary(self, detention_id: str, holder_key: str | None) -> dict[str, Any] | None:
        """What a webhook POST says of a detention, as its owner's view shows it.

        ``holder_key``: a rights holder's webhook, which gets the holder's
        view, or None when the detention names none of its recordations
        (nor when the detention is gone).
        """
        d = t.detentions
        with self.store.engine.connect() as conn:
            row = conn.execute(select(d).where(d.c.detention_id == detention_id)).first()
            if row is None:
                return None
            detention = build_detention(row, as_of=True)
            if holder_key is not None:
                try:
                    detention = views.holder_view(detention, ipr.holder_names(conn, holder_key))
                except errors.HolderMismatch:
                    return None
        return {"resource": detention.name, "detention": views.event_summary(detention)}

    # --- statistics ----------------------------------------------------------------------

    def statistics(self, request: S.GetEnforcementStatisticsRequest) -> S.EnforcementStatistics:
        with self.store.engine.connect() as conn:
            return ipr_stats.statistics(conn, request)
