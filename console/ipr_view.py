"""What the IPR pages show beyond the API's fields: next moves, deadlines, filters.

The moves a detention may make next, and who may make each, are the
node's own table (:data:`node.ipr.lifecycle.DETENTION_MOVES`, a pure module
the console may import): the buttons a page offers are the moves the node
would accept from this kind of officer, and the node stays the judge (a
move that became impossible meanwhile is refused with its reason). The API
has no call that lists them, so the console reads the table rather than
keeping a copy of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from console.display import ENUMS, enum_key, enum_label, is_set, when
from intelshare.v1 import detention_pb2, recordation_pb2
from node.ipr.lifecycle import Actor, allowed_detention_moves

D = detention_pb2
R = recordation_pb2

#: What each move's button says, as the officer (or holder) does it.
MOVE_VERBS: dict[int, str] = {
    D.DETENTION_STATE_HOLDER_NOTIFIED: "Holder and declarant notified",
    D.DETENTION_STATE_INFRINGEMENT_CONFIRMED: "Confirm the infringement",
    D.DETENTION_STATE_DESTRUCTION_AGREED: "Agree to destruction",
    D.DETENTION_STATE_DECLARANT_OBJECTED: "Declarant objected",
    D.DETENTION_STATE_DEADLINE_PASSED: "Deadline passed",
    D.DETENTION_STATE_DESTROYED: "Goods destroyed",
    D.DETENTION_STATE_RELEASED: "Release the goods",
    D.DETENTION_STATE_PROCEEDINGS_STARTED: "Proceedings started",
}

IN_FORCE = frozenset({R.RECORDATION_STATE_GRANTED, R.RECORDATION_STATE_EXTENDED})


@dataclass(frozen=True)
class Move:
    """One button: the state's form value and what the button says."""

    state: str
    text: str


def next_moves(detention: D.Detention, *, holder: bool) -> list[Move]:
    actor = Actor.RIGHTS_HOLDER if holder else Actor.CUSTOMS
    return [
        Move(enum_key(ENUMS["detention_state"], to), MOVE_VERBS.get(to, str(to)))
        for to in allowed_detention_moves(detention.state, actor)
    ]


@dataclass(frozen=True)
class DeadlineRow:
    kind: str
    last_day: str
    due: str
    working_days: int
    extension_days: int
    state: str
    state_key: str
    overdue: bool
    time_zone: str


def _now() -> datetime:
    return datetime.now(UTC)


def deadline_rows(detention: D.Detention, now: datetime | None = None) -> list[DeadlineRow]:
    """Every deadline, as a row: overdue when it passed, or ended while still open."""
    moment = now or _now()
    rows = []
    for d in detention.deadlines:
        ended = is_set(d.due_time) and d.due_time.ToDatetime(tzinfo=UTC) < moment
        overdue = d.state == D.DEADLINE_STATE_PASSED or (d.state == D.DEADLINE_STATE_OPEN and ended)
        rows.append(
            DeadlineRow(
                kind=enum_label(ENUMS["deadline_kind"], d.kind),
                last_day=d.last_day,
                due=when(d.due_time),
                working_days=d.working_days,
                extension_days=d.extension_working_days if d.extended else 0,
                state=enum_label(ENUMS["deadline_state"], d.state),
                state_key=enum_key(ENUMS["deadline_state"], d.state),
                overdue=overdue,
                time_zone=d.time_zone,
            )
        )
    return rows


def next_deadline(detention: D.Detention) -> D.DetentionDeadline | None:
    """The open deadline that ends first, if any."""
    running = [d for d in detention.deadlines if d.state == D.DEADLINE_STATE_OPEN]
    return min(running, key=lambda d: (d.due_time.seconds, d.due_time.nanos), default=None)


def extendable(detention: D.Detention) -> bool:
    """An open holder's answer deadline not extended yet, goods not perishable (art. 23(4))."""
    if detention.perishable:
        return False
    return any(
        d.kind == D.DEADLINE_KIND_HOLDER_ANSWER
        and d.state == D.DEADLINE_STATE_OPEN
        and not d.extended
        for d in detention.deadlines
    )


def in_force(recordation: R.Recordation) -> bool:
    return recordation.state in IN_FORCE


def right_names(recordation: R.Recordation) -> str:
    return ", ".join(r.name for r in recordation.rights if r.name)


def jinja_globals() -> dict[str, object]:
    return {
        "next_moves": next_moves,
        "deadline_rows": deadline_rows,
        "next_deadline": next_deadline,
        "extendable": extendable,
        "in_force": in_force,
        "right_names": right_names,
    }
