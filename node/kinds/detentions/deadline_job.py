"""The periodic deadline job: reminders before a deadline ends, and passed deadlines.

Run by the node's maintenance loop or Celery beat's
``intelshare.periodic.ipr_deadlines``; idempotent, because every row
changes state once, in a conditional update.
"""

from __future__ import annotations

import logging

from sqlalchemy import select, update

from intelshare import errors
from intelshare.v1 import detention_pb2
from node.ipr import lifecycle
from node.ipr.lifecycle import Actor
from node.kinds import ipr_common as ipr
from node.kinds.detentions.core import REMIND_BEFORE_MS, DetentionCore, state_label
from node.storage import tables as t
from node.storage.store import Writer, now_ms

log = logging.getLogger(__name__)

D = detention_pb2


class DeadlineJob(DetentionCore):
    """Reminders (``detention.deadline_due``), passed deadlines (``.deadline_passed``)."""

    def check_deadlines(self, limit: int = 500) -> int:
        """Reminders and passed deadlines (see the module docstring); how many rows it handled."""
        at = now_ms()
        dd = t.detention_deadlines
        with self.store.engine.connect() as conn:
            due = conn.execute(
                select(dd.c.detention_id, dd.c.kind, dd.c.due_ms, dd.c.reminded_ms)
                .where(dd.c.state == "open", dd.c.due_ms <= at + REMIND_BEFORE_MS)
                .order_by(dd.c.due_ms)
                .limit(limit)
            ).all()
        handled = 0
        for r in due:
            try:
                with self.store.write() as w:
                    if r.due_ms <= at:
                        handled += self._passed(w, r.detention_id, r.kind, r.due_ms)
                    elif r.reminded_ms is None:
                        handled += self._remind(w, r.detention_id, r.kind, r.due_ms)
            except errors.IntelshareError as exc:
                log.warning("deadline of detentions/%s not handled: %s", r.detention_id, exc.reason)
        return handled

    def _remind(self, w: Writer, detention_id: str, kind: str, due_ms: int) -> int:
        dd = t.detention_deadlines
        claimed = w.conn.execute(
            update(dd)
            .where(
                dd.c.detention_id == detention_id,
                dd.c.kind == kind,
                dd.c.due_ms == due_ms,
                dd.c.state == "open",
                dd.c.reminded_ms.is_(None),
            )
            .values(reminded_ms=now_ms())
        )
        if not claimed.rowcount:
            return 0
        ipr.event(w, "detention.deadline_due", detention_id)
        w.audit(
            "detention_deadline_reminder",
            {"detention": f"{ipr.DETENTIONS}/{detention_id}", "deadline": kind, "due_ms": due_ms},
        )
        return 1

    def _passed(self, w: Writer, detention_id: str, kind: str, due_ms: int) -> int:
        dd = t.detention_deadlines
        claimed = w.conn.execute(
            update(dd)
            .where(
                dd.c.detention_id == detention_id,
                dd.c.kind == kind,
                dd.c.due_ms == due_ms,
                dd.c.state == "open",
            )
            .values(state="passed")
        )
        if not claimed.rowcount:
            return 0
        detention, row = self._load(w, detention_id)
        at = ipr.now()
        target = D.DETENTION_STATE_DEADLINE_PASSED
        allowed = Actor.SYSTEM in lifecycle.DETENTION_MOVES.get(
            (detention.state, target), frozenset()
        )
        if allowed and kind != "notification":
            changed = lifecycle.move_detention(
                detention,
                target,
                actor=Actor.SYSTEM,
                officer="",
                reason=f"the {kind} deadline passed at the end of its last day",
                now=at,
                calendar=self.calendar(),
            )
        else:
            changed = lifecycle.deadlines_as_of(detention, at)
        self._save(w, row, changed)
        ipr.event(w, "detention.deadline_passed", detention_id)
        w.audit(
            "detention_deadline_passed",
            {
                "detention": detention.name,
                "deadline": kind,
                "moved": state_label(changed.state) if allowed else "",
            },
        )
        if allowed and kind != "notification":
            ipr.event(w, "detention.moved", detention_id)
        return 1
