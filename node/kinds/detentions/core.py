"""The part of a node's detentions every other part stands on.

:class:`DetentionCore` holds the collaborators (store, generic records,
sharing engine, the agency's working-day calendar), loads a detention's
row and builds its proto, shows it as the caller may see it (a rights
holder: :func:`node.ipr.views.holder_view`), and writes a change together
with its facts: the links to recordations, one row per deadline and the
statistics rows.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Sequence
from typing import Any, Final

from sqlalchemy import delete, insert, select, update

from intelshare import errors
from intelshare.v1 import detention_pb2
from node.ipr import deadlines as dl
from node.ipr import lifecycle, views
from node.kinds import ipr_common as ipr
from node.kinds import ipr_stats
from node.kinds.detentions.report_kind import DETENTION_REPORT
from node.schema.alert import ms_to_ts, ts_to_ms
from node.sharing.engine import Sharing
from node.sharing.records import Records
from node.storage import tables as t
from node.storage.officers import RIGHTS_HOLDER, Officer
from node.storage.store import Store, Writer, now_ms

D = detention_pb2

#: A reminder goes out when a deadline ends within this time (and once only).
REMIND_BEFORE_MS: Final = 24 * 3600 * 1000
#: Envelope lifetime of a report at the gateway.
#: Moves after which a report goes to the grantors of the recordations concerned.
CONFIRMED: Final = frozenset(
    {D.DETENTION_STATE_INFRINGEMENT_CONFIRMED, D.DETENTION_STATE_DESTRUCTION_AGREED}
)
#: Fields UpdateDetention may change.
UPDATABLE: Final = frozenset(
    {
        "goods",
        "transport",
        "parties",
        "origin_country",
        "destination_country",
        "recordations",
        "customs_office",
        "internal_notes",
    }
)


def state_label(state: int) -> str:
    return lifecycle.detention_state_label(state)  # type: ignore[arg-type]


class DetentionCore(abc.ABC):
    """What every part of a node's detentions shares: collaborators, rows, views, facts.

    Abstract: one part calls what another provides (:meth:`_report_on_confirmation`),
    so only a class with every part (:class:`node.kinds.detentions.Detentions`) is made.
    """

    def __init__(
        self,
        *,
        agency_id: str,
        store: Store,
        records: Records,
        sharing: Sharing,
        calendar: Callable[[], dl.Calendar],
    ) -> None:
        self.agency_id = agency_id
        self.store = store
        self.records = records
        self.sharing = sharing
        self.calendar = calendar
        records.register(DETENTION_REPORT)

    # --- helpers of the changes ---------------------------------------------------------

    def _confirmed_in_force(self, w: Writer, names: Sequence[str]) -> None:
        ids = [ipr.parse_name(n, ipr.RECORDATIONS, "detention.recordations") for n in names]
        found = ipr.held_by_names(w.conn, ids)
        missing = {
            f"detention.recordations[{i}]": f"{n} is not a recordation this node holds"
            for i, (n, ident) in enumerate(zip(names, ids, strict=True))
            if ident not in found
        }
        if missing:
            raise errors.FieldInvalid(
                "the detention names recordations this node does not hold", violations=missing
            )
        for ident in ids:
            ipr.require_in_force_now(found[ident])

    def _suggest(self, w: Writer, detention: D.Detention) -> list[str]:
        keys: set[tuple[str, str]] = set()
        for goods in detention.goods:
            for gtin in goods.gtins:
                try:
                    keys.add((views.GTIN, views.gtin_key(gtin)))
                except errors.InvalidArgument:
                    continue
            if goods.hs_code:
                with contextlib.suppress(errors.InvalidArgument):
                    keys.add((views.HS_CODE, views.hs_key(goods.hs_code)))
            brand = views.right_name_key(goods.brand)
            if brand:
                keys.add((views.RIGHT_NAME, brand))
        candidates = ipr.held_by_keys(w.conn, keys, at_ms=now_ms())
        matches = views.match_detention(detention, [h.message for h in candidates], now=ipr.now())
        return [m.recordation.name for m in matches]

    def _save(self, w: Writer, row: Any, detention: D.Detention) -> None:
        stamp = now_ms()
        changed = w.conn.execute(
            update(t.detentions)
            .where(
                t.detentions.c.detention_id == row.detention_id,
                t.detentions.c.revision == row.revision,
            )
            .values(
                record=ipr.dumps_message(stored_form(detention)),
                state=state_label(detention.state),
                update_ms=stamp,
                revision=row.revision + 1,
            )
        )
        if not changed.rowcount:
            raise errors.ChangedMeanwhile(
                f"{detention.name} changed while this change was prepared; retry",
                metadata={"name": detention.name},
            )
        self._facts(w, row.detention_id, detention)

    def _facts(self, w: Writer, detention_id: str, detention: D.Detention) -> None:
        """Links to recordations, deadline rows and statistics rows of a detention."""
        links = t.detention_recordations
        w.conn.execute(delete(links).where(links.c.detention_id == detention_id))
        ids = sorted({ipr.parse_name(n, ipr.RECORDATIONS) for n in detention.recordations})
        if ids:
            w.conn.execute(
                insert(links), [{"detention_id": detention_id, "recordation_id": i} for i in ids]
            )
        dd = t.detention_deadlines
        existing = {
            r.kind: r for r in w.conn.execute(select(dd).where(dd.c.detention_id == detention_id))
        }
        for deadline in detention.deadlines:
            kind = dl.kind_label(deadline.kind)
            due = ts_to_ms(deadline.due_time)
            state = deadline_label(deadline.state)
            old = existing.pop(kind, None)
            if old is None:
                w.conn.execute(
                    insert(dd).values(detention_id=detention_id, kind=kind, due_ms=due, state=state)
                )
            elif (old.due_ms, old.state) != (due, state):
                w.conn.execute(
                    update(dd)
                    .where(dd.c.detention_id == detention_id, dd.c.kind == kind)
                    .values(
                        due_ms=due,
                        state=state,
                        # an extended deadline is reminded of again
                        reminded_ms=None if due != old.due_ms else old.reminded_ms,
                    )
                )
        held = ipr.held_by_names(w.conn, ids)
        rights = sorted(
            {ipr_stats.right_label(r.type) for h in held.values() for r in h.message.rights}
        )
        ipr_stats.replace(
            w.conn,
            ipr_stats.Source(
                source=ipr_stats.OWN,
                source_id=detention_id,
                partner=self.agency_id,
                detain_ms=ts_to_ms(detention.detain_time),
                country=detention.origin_country,
                procedure=ipr_stats.procedure_label(detention.procedure),
                rights=rights,
                goods=list(detention.goods),
            ),
        )

    # --- reading ---------------------------------------------------------------------------

    def _load(self, w: Writer, detention_id: str) -> tuple[D.Detention, Any]:
        row = w.conn.execute(
            select(t.detentions).where(t.detentions.c.detention_id == detention_id)
        ).first()
        if row is None:
            name = f"{ipr.DETENTIONS}/{detention_id}"
            raise errors.RecordNotFound(f"{name} does not exist", metadata={"name": name})
        return build_detention(row, as_of=False), row

    def _read(self, w: Writer, detention_id: str) -> D.Detention:
        """A detention as a read shows it now (ended open deadlines PASSED)."""
        return lifecycle.deadlines_as_of(self._load(w, detention_id)[0], ipr.now())

    def _visible(self, w: Writer, officer: Officer, name: str) -> tuple[D.Detention, Any]:
        """A detention the caller may act on (a holder: only one naming its recordations)."""
        detention, row = self._load(w, ipr.parse_name(name, ipr.DETENTIONS))
        if officer.role == RIGHTS_HOLDER:
            views.check_holder_may_see(detention, ipr.holder_names(w.conn, officer.holder_key))
        return detention, row

    def _shown(self, w: Writer, officer: Officer, detention_id: str) -> D.Detention:
        detention = self._read(w, detention_id)
        if officer.role == RIGHTS_HOLDER:
            return views.holder_view(detention, ipr.holder_names(w.conn, officer.holder_key))
        return detention

    @abc.abstractmethod
    def _report_on_confirmation(
        self, w: Writer, officer: Officer, detention_id: str, detention: D.Detention
    ) -> None:
        """The automatic report on confirmation, made by :class:`~.reports.DetentionReports`.

        A move (:class:`~.changes.DetentionChanges`) calls it; abstract, so
        that a class putting the parts together without the reports fails
        when it is instantiated, not at the first confirmation.
        """


def deadline_label(state: int) -> str:
    try:
        return str(D.DeadlineState.Name(state)).removeprefix("DEADLINE_STATE_").lower()  # type: ignore[arg-type]
    except ValueError:
        return "open"


def stored_form(detention: D.Detention) -> D.Detention:
    kept = D.Detention()
    kept.CopyFrom(detention)
    for output in ("create_time", "update_time", "revision", "related"):
        kept.ClearField(output)
    return kept


def build_detention(row: Any, *, as_of: bool) -> D.Detention:
    """A stored detention; ``as_of``: as a read shows it now (ended open deadlines PASSED).

    Changes start from the stored form, so that a deadline that ended is
    still open for the periodic job, which moves the detention.
    """
    detention = ipr.loads_message(row.record, D.Detention, "detention")
    detention.create_time.CopyFrom(ms_to_ts(row.create_ms))
    detention.update_time.CopyFrom(ms_to_ts(row.update_ms))
    detention.revision = row.revision
    return lifecycle.deadlines_as_of(detention, ipr.now()) if as_of else detention
