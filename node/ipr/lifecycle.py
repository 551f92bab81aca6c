"""The lifecycles of detentions and recordations: which moves exist, and who makes them.

Detentions
----------
::

    DETAINED -> HOLDER_NOTIFIED -+-> INFRINGEMENT_CONFIRMED -+-> DESTROYED
                                 +-> DESTRUCTION_AGREED      +-> RELEASED
                                 +-> DECLARANT_OBJECTED      +-> PROCEEDINGS_STARTED
                                 +-> DEADLINE_PASSED

:data:`DETENTION_MOVES` is the exact table. Beyond the straight path it
holds what the regulation needs: customs may release goods at any point
before a decision (the suspicion is dispelled, an ex-officio application
never comes: 608/2013 arts. 17-18); a holder who confirmed the infringement
may agree to destruction afterwards; a declarant may object after the
holder agreed (the holder's answer is then due again: it must start
proceedings within the same period, art. 23(3)); proceedings end in
destruction or release. DESTROYED and
RELEASED are final. For a small consignment HOLDER_NOTIFIED means the
declarant was notified (the holder is told only of an objection, art. 26).

Who moves: customs officers make every move (they also record answers that
arrive by post or e-mail). A rights holder (role ``rights_holder``) makes
only its own answers: INFRINGEMENT_CONFIRMED, DESTRUCTION_AGREED and
PROCEEDINGS_STARTED, and only while its deadline runs (DEADLINE_PASSED
otherwise; an officer can still record an answer that arrived in time).
The node itself (``system``) moves a detention to DEADLINE_PASSED when a
deadline ends, and a recordation to EXPIRED. Which customs roles may call
the moving methods at all is the role matrix's business
(:mod:`node.storage.officers`); here every customs role is one actor.

Every move needs a reason, is appended to the history with the officer and
the time, and updates the deadlines: notification starts those of the
procedure (:mod:`node.ipr.deadlines`), an answer meets the deadline it was
waiting for, a declarant's objection in a small consignment starts the
holder's proceedings deadline, a final state closes what still runs.

Recordations
------------
GRANTED -> EXTENDED (again and again, a year at most each time) ->
EXPIRED | WITHDRAWN | SUSPENDED; SUSPENDED -> back to GRANTED or EXTENDED
(whichever it was), WITHDRAWN or EXPIRED. EXPIRED and WITHDRAWN are final;
only the node expires a recordation, and only once its expire_time has
passed (an officer who wants it to end early withdraws it).

Invalid moves raise :class:`~intelshare.errors.DetentionMoveInvalid` or
:class:`~intelshare.errors.RecordationMoveInvalid` (FAILED_PRECONDITION),
whose message and metadata name both states. Everything here is pure: the
functions return new messages and never change their arguments.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final, TypeAlias

from google.protobuf.timestamp_pb2 import Timestamp

from intelshare.errors import (
    DeadlinePassed,
    DetentionMoveInvalid,
    ExtensionRefused,
    FieldInvalid,
    RecordationExpired,
    RecordationMoveInvalid,
    RoleNotPermitted,
)
from intelshare.v1 import detention_pb2, recordation_pb2
from node.ipr import deadlines as dl
from node.ipr.validate import add_one_year

D = detention_pb2
R = recordation_pb2
DetentionState: TypeAlias = D.DetentionState.ValueType
RecordationState: TypeAlias = R.RecordationState.ValueType

MAX_REASON_CHARS: Final = 2000


class Actor(enum.StrEnum):
    """Who makes a move."""

    CUSTOMS = "customs"
    RIGHTS_HOLDER = "rights_holder"
    SYSTEM = "system"


#: The node's officer roles that act for customs.
CUSTOMS_ROLES: Final = frozenset({"admin", "liaison", "analyst"})


def actor_of_role(role: str) -> Actor:
    """The actor an officer's role makes moves as."""
    if role in CUSTOMS_ROLES:
        return Actor.CUSTOMS
    if role == Actor.RIGHTS_HOLDER.value:
        return Actor.RIGHTS_HOLDER
    if role == Actor.SYSTEM.value:
        return Actor.SYSTEM
    raise RoleNotPermitted(
        f"role {role!r} cannot move detentions or recordations", metadata={"role": role}
    )


_C = frozenset({Actor.CUSTOMS})
_CH = frozenset({Actor.CUSTOMS, Actor.RIGHTS_HOLDER})
_CS = frozenset({Actor.CUSTOMS, Actor.SYSTEM})

#: (from, to) -> who may make the move. Anything not listed is invalid.
DETENTION_MOVES: Final[Mapping[tuple[DetentionState, DetentionState], frozenset[Actor]]] = {
    (D.DETENTION_STATE_DETAINED, D.DETENTION_STATE_HOLDER_NOTIFIED): _C,
    (D.DETENTION_STATE_DETAINED, D.DETENTION_STATE_RELEASED): _C,
    (D.DETENTION_STATE_HOLDER_NOTIFIED, D.DETENTION_STATE_INFRINGEMENT_CONFIRMED): _CH,
    (D.DETENTION_STATE_HOLDER_NOTIFIED, D.DETENTION_STATE_DESTRUCTION_AGREED): _CH,
    (D.DETENTION_STATE_HOLDER_NOTIFIED, D.DETENTION_STATE_DECLARANT_OBJECTED): _C,
    (D.DETENTION_STATE_HOLDER_NOTIFIED, D.DETENTION_STATE_DEADLINE_PASSED): _CS,
    (D.DETENTION_STATE_HOLDER_NOTIFIED, D.DETENTION_STATE_RELEASED): _C,
    (D.DETENTION_STATE_INFRINGEMENT_CONFIRMED, D.DETENTION_STATE_DESTRUCTION_AGREED): _CH,
    (D.DETENTION_STATE_INFRINGEMENT_CONFIRMED, D.DETENTION_STATE_DECLARANT_OBJECTED): _C,
    (D.DETENTION_STATE_INFRINGEMENT_CONFIRMED, D.DETENTION_STATE_DEADLINE_PASSED): _CS,
    (D.DETENTION_STATE_INFRINGEMENT_CONFIRMED, D.DETENTION_STATE_PROCEEDINGS_STARTED): _CH,
    (D.DETENTION_STATE_INFRINGEMENT_CONFIRMED, D.DETENTION_STATE_RELEASED): _C,
    (D.DETENTION_STATE_DESTRUCTION_AGREED, D.DETENTION_STATE_DESTROYED): _C,
    (D.DETENTION_STATE_DESTRUCTION_AGREED, D.DETENTION_STATE_DECLARANT_OBJECTED): _C,
    (D.DETENTION_STATE_DESTRUCTION_AGREED, D.DETENTION_STATE_PROCEEDINGS_STARTED): _CH,
    (D.DETENTION_STATE_DECLARANT_OBJECTED, D.DETENTION_STATE_PROCEEDINGS_STARTED): _CH,
    (D.DETENTION_STATE_DECLARANT_OBJECTED, D.DETENTION_STATE_DEADLINE_PASSED): _CS,
    (D.DETENTION_STATE_DECLARANT_OBJECTED, D.DETENTION_STATE_RELEASED): _C,
    (D.DETENTION_STATE_DEADLINE_PASSED, D.DETENTION_STATE_DESTROYED): _C,
    (D.DETENTION_STATE_DEADLINE_PASSED, D.DETENTION_STATE_RELEASED): _C,
    (D.DETENTION_STATE_PROCEEDINGS_STARTED, D.DETENTION_STATE_DESTROYED): _C,
    (D.DETENTION_STATE_PROCEEDINGS_STARTED, D.DETENTION_STATE_RELEASED): _C,
}

#: States no move leaves.
FINAL_DETENTION_STATES: Final = frozenset({D.DETENTION_STATE_DESTROYED, D.DETENTION_STATE_RELEASED})
#: States after which no deadline of the regulation runs any more.
DECIDED_DETENTION_STATES: Final = FINAL_DETENTION_STATES | {D.DETENTION_STATE_PROCEEDINGS_STARTED}

#: For each answer a holder gives, the deadline it must come within.
_HOLDER_DEADLINES: Final = frozenset(
    {
        D.DEADLINE_KIND_HOLDER_ANSWER,
        D.DEADLINE_KIND_HOLDER_APPLICATION,
        D.DEADLINE_KIND_HOLDER_PROCEEDINGS,
    }
)
#: Deadlines each state meets when it is entered in time.
_MEETS: Final[Mapping[DetentionState, frozenset[D.DeadlineKind.ValueType]]] = {
    D.DETENTION_STATE_HOLDER_NOTIFIED: frozenset({D.DEADLINE_KIND_NOTIFICATION}),
    D.DETENTION_STATE_DESTRUCTION_AGREED: frozenset({D.DEADLINE_KIND_HOLDER_ANSWER}),
    D.DETENTION_STATE_DECLARANT_OBJECTED: frozenset(
        {D.DEADLINE_KIND_DECLARANT_ANSWER, D.DEADLINE_KIND_DECLARANT_OBJECTION}
    ),
    D.DETENTION_STATE_PROCEEDINGS_STARTED: frozenset(
        {D.DEADLINE_KIND_HOLDER_ANSWER, D.DEADLINE_KIND_HOLDER_PROCEEDINGS}
    ),
}


def detention_state_label(state: DetentionState) -> str:
    """ "holder_notified" for DETENTION_STATE_HOLDER_NOTIFIED, and so on."""
    return _label(D.DetentionState, "DETENTION_STATE_", state)


def recordation_state_label(state: RecordationState) -> str:
    """ "granted" for RECORDATION_STATE_GRANTED, and so on."""
    return _label(R.RecordationState, "RECORDATION_STATE_", state)


def allowed_detention_moves(state: DetentionState, actor: Actor) -> list[DetentionState]:
    """The states ``actor`` may move a detention in ``state`` to (for menus and errors)."""
    return [to for (frm, to), who in DETENTION_MOVES.items() if frm == state and actor in who]


# --- detentions ------------------------------------------------------------------------


def check_detention_move(
    detention: D.Detention, target: DetentionState, actor: Actor, now: datetime
) -> None:
    """Raise unless ``actor`` may move ``detention`` to ``target`` at ``now``."""
    if target == D.DETENTION_STATE_UNSPECIFIED or target not in D.DetentionState.values():
        raise FieldInvalid(
            "the state to move to is missing", violations={"state": "must be a detention state"}
        )
    frm = detention.state
    who = DETENTION_MOVES.get((frm, target))
    if who is None or actor not in who:
        _refuse_detention_move(frm, target, actor, known=who is not None)
    if actor == Actor.RIGHTS_HOLDER:
        for running in detention.deadlines:
            if running.kind in _HOLDER_DEADLINES and dl.is_passed(running, now):
                if running.state in (D.DEADLINE_STATE_MET, D.DEADLINE_STATE_CLOSED):
                    continue
                raise DeadlinePassed(
                    f"your {dl.kind_label(running.kind)} was due by the end of "
                    f"{running.last_day}; ask the customs officer",
                    metadata={
                        "deadline": dl.kind_label(running.kind),
                        "due_time": _iso(running.due_time),
                    },
                )
    if target == D.DETENTION_STATE_DEADLINE_PASSED:
        ended = [
            x
            for x in detention.deadlines
            if x.state in (D.DEADLINE_STATE_OPEN, D.DEADLINE_STATE_PASSED)
            and x.kind != D.DEADLINE_KIND_NOTIFICATION
            and dl.is_passed(x, now)
        ]
        if not ended:
            running_now = [
                f"{dl.kind_label(x.kind)} due by the end of {x.last_day}"
                for x in detention.deadlines
                if x.state == D.DEADLINE_STATE_OPEN
            ]
            raise DetentionMoveInvalid(
                "no deadline has passed yet"
                + (f" ({'; '.join(running_now)})" if running_now else ""),
                metadata={
                    "from_state": detention_state_label(frm),
                    "to_state": detention_state_label(target),
                    "role": actor.value,
                },
            )


def move_detention(
    detention: D.Detention,
    target: DetentionState,
    *,
    actor: Actor,
    officer: str,
    reason: str,
    now: datetime,
    calendar: dl.Calendar,
) -> D.Detention:
    """The detention after the move, with its history and deadlines brought along."""
    text = _reason(reason)
    check_detention_move(detention, target, actor, now)
    moved = D.Detention()
    moved.CopyFrom(detention)
    moved.state = target
    moved.history.append(
        D.DetentionMove(
            state=target, reason=text, officer=officer, role=actor.value, move_time=_ts(now)
        )
    )
    for running in moved.deadlines:
        if running.state != D.DEADLINE_STATE_OPEN:
            continue
        if running.kind in _MEETS.get(target, frozenset()):
            running.state = (
                D.DEADLINE_STATE_PASSED if dl.is_passed(running, now) else D.DEADLINE_STATE_MET
            )
        elif target in DECIDED_DETENTION_STATES:
            running.state = D.DEADLINE_STATE_CLOSED
        elif dl.is_passed(running, now):
            running.state = D.DEADLINE_STATE_PASSED
    if target == D.DETENTION_STATE_HOLDER_NOTIFIED:
        moved.notify_time.CopyFrom(_ts(now))
        moved.deadlines.extend(
            dl.deadlines_on_notification(detention.procedure, detention.perishable, now, calendar)
        )
    if target == D.DETENTION_STATE_DECLARANT_OBJECTED:
        if detention.procedure == D.DETENTION_PROCEDURE_SMALL_CONSIGNMENT:
            moved.deadlines.append(dl.proceedings_deadline(now, calendar))
        else:
            # The holder who agreed to destruction must now start proceedings,
            # within the same period (art. 23(3)): its answer is due again.
            for running in moved.deadlines:
                if (
                    running.kind == D.DEADLINE_KIND_HOLDER_ANSWER
                    and running.state == D.DEADLINE_STATE_MET
                ):
                    running.state = (
                        D.DEADLINE_STATE_PASSED
                        if dl.is_passed(running, now)
                        else D.DEADLINE_STATE_OPEN
                    )
    return moved


def detention_created(
    detention: D.Detention, *, officer: str, now: datetime, calendar: dl.Calendar
) -> D.Detention:
    """A new detention in state DETAINED, with its first history entry and notification deadline."""
    created = D.Detention()
    created.CopyFrom(detention)
    if not created.HasField("detain_time"):
        created.detain_time.CopyFrom(_ts(now))
    created.state = D.DETENTION_STATE_DETAINED
    del created.history[:]
    del created.deadlines[:]
    created.history.append(
        D.DetentionMove(
            state=D.DETENTION_STATE_DETAINED,
            reason="goods detained",
            officer=officer,
            role=Actor.CUSTOMS.value,
            move_time=_ts(now),
        )
    )
    detained_at = created.detain_time.ToDatetime(tzinfo=UTC)
    created.deadlines.append(dl.notification_deadline(detained_at, calendar))
    return created


def application_granted(
    detention: D.Detention,
    recordation_name: str,
    *,
    notify_time: datetime,
    now: datetime,
) -> D.Detention:
    """An ex-officio detention once the holder's application was granted.

    The application deadline is met (or recorded as passed, if it came
    late), the detention follows the standard procedure from then on, and
    the holder's and declarant's answers run from ``notify_time``, when
    they were told of the grant (see :mod:`node.ipr.deadlines`).
    """
    if detention.procedure != D.DETENTION_PROCEDURE_EX_OFFICIO:
        raise DetentionMoveInvalid(
            "only an ex-officio detention waits for an application",
            metadata={"from_state": detention_state_label(detention.state)},
        )
    if detention.state in DECIDED_DETENTION_STATES:
        raise DetentionMoveInvalid(
            f"the detention is already {detention_state_label(detention.state)}",
            metadata={"from_state": detention_state_label(detention.state)},
        )
    converted = D.Detention()
    converted.CopyFrom(detention)
    converted.procedure = D.DETENTION_PROCEDURE_STANDARD
    if recordation_name not in converted.recordations:
        converted.recordations.append(recordation_name)
    calendar: dl.Calendar | None = None
    for running in converted.deadlines:
        if running.kind == D.DEADLINE_KIND_HOLDER_APPLICATION:
            calendar = dl.calendar_of(running)
            if running.state == D.DEADLINE_STATE_OPEN:
                running.state = (
                    D.DEADLINE_STATE_PASSED if dl.is_passed(running, now) else D.DEADLINE_STATE_MET
                )
    if calendar is None:
        raise DetentionMoveInvalid(
            "the holder was not notified yet: move the detention to holder_notified first",
            metadata={"from_state": detention_state_label(detention.state)},
        )
    converted.deadlines.extend(dl.answer_deadlines(notify_time, detention.perishable, calendar))
    return converted


def extend_deadline(
    detention: D.Detention,
    kind: D.DeadlineKind.ValueType,
    working_days: int,
    *,
    now: datetime,
) -> D.Detention:
    """The detention with one deadline extended (art. 23(4)), or why not."""
    if detention.state in DECIDED_DETENTION_STATES:
        raise ExtensionRefused(
            f"the detention is {detention_state_label(detention.state)}: nothing to extend",
            metadata={"rule": "state"},
        )
    for index, running in enumerate(detention.deadlines):
        if running.kind == kind and running.state == D.DEADLINE_STATE_OPEN:
            extended = D.Detention()
            extended.CopyFrom(detention)
            extended.deadlines[index].CopyFrom(
                dl.extend(running, working_days, perishable=detention.perishable, now=now)
            )
            return extended
    raise ExtensionRefused(
        f"the detention has no running {dl.kind_label(kind)} deadline",
        metadata={"rule": "not_running"},
    )


def deadlines_as_of(detention: D.Detention, now: datetime) -> D.Detention:
    """The detention as a read at ``now`` shows it (ended open deadlines PASSED)."""
    shown = D.Detention()
    shown.CopyFrom(detention)
    for index, running in enumerate(detention.deadlines):
        shown.deadlines[index].CopyFrom(dl.as_of(running, now))
    return shown


# --- recordations ------------------------------------------------------------------------

_IN_FORCE: Final = frozenset({R.RECORDATION_STATE_GRANTED, R.RECORDATION_STATE_EXTENDED})

#: (from, to) -> who may make the move. Anything not listed is invalid.
RECORDATION_MOVES: Final[Mapping[tuple[RecordationState, RecordationState], frozenset[Actor]]] = {
    (R.RECORDATION_STATE_GRANTED, R.RECORDATION_STATE_EXTENDED): _C,
    (R.RECORDATION_STATE_GRANTED, R.RECORDATION_STATE_EXPIRED): frozenset({Actor.SYSTEM}),
    (R.RECORDATION_STATE_GRANTED, R.RECORDATION_STATE_WITHDRAWN): _C,
    (R.RECORDATION_STATE_GRANTED, R.RECORDATION_STATE_SUSPENDED): _C,
    (R.RECORDATION_STATE_EXTENDED, R.RECORDATION_STATE_EXTENDED): _C,
    (R.RECORDATION_STATE_EXTENDED, R.RECORDATION_STATE_EXPIRED): frozenset({Actor.SYSTEM}),
    (R.RECORDATION_STATE_EXTENDED, R.RECORDATION_STATE_WITHDRAWN): _C,
    (R.RECORDATION_STATE_EXTENDED, R.RECORDATION_STATE_SUSPENDED): _C,
    (R.RECORDATION_STATE_SUSPENDED, R.RECORDATION_STATE_GRANTED): _C,
    (R.RECORDATION_STATE_SUSPENDED, R.RECORDATION_STATE_EXTENDED): _C,
    (R.RECORDATION_STATE_SUSPENDED, R.RECORDATION_STATE_WITHDRAWN): _C,
    (R.RECORDATION_STATE_SUSPENDED, R.RECORDATION_STATE_EXPIRED): frozenset({Actor.SYSTEM}),
}


def in_force(recordation: R.Recordation, now: datetime) -> bool:
    """Whether customs act on the recordation at ``now``."""
    if recordation.state not in _IN_FORCE:
        return False
    start = recordation.grant_time.ToDatetime(tzinfo=UTC)
    end = recordation.expire_time.ToDatetime(tzinfo=UTC)
    return start <= now < end


def require_in_force(recordation: R.Recordation, now: datetime) -> None:
    """Raise RecordationExpired unless the recordation is in force at ``now``."""
    if in_force(recordation, now):
        return
    state = recordation_state_label(recordation.state)
    if recordation.state in _IN_FORCE:
        end = recordation.expire_time.ToDatetime(tzinfo=UTC)
        why = (
            f"expired at {_iso(recordation.expire_time)}"
            if now >= end
            else f"not in force before {_iso(recordation.grant_time)}"
        )
        state = "expired" if now >= end else state
    else:
        why = f"is {state}"
    raise RecordationExpired(
        f"recordation {recordation.name or '(new)'} {why}",
        metadata={"recordation": recordation.name, "state": state},
    )


def _resume_target(recordation: R.Recordation) -> RecordationState:
    return R.RECORDATION_STATE_EXTENDED if recordation.extensions else R.RECORDATION_STATE_GRANTED


def move_recordation(
    recordation: R.Recordation,
    target: RecordationState,
    *,
    actor: Actor,
    officer: str,
    reason: str,
    now: datetime,
) -> R.Recordation:
    """The recordation after a state move (withdraw, suspend, resume, expire).

    Extensions go through :func:`extend_recordation`, which also moves the
    validity. Resuming goes back to the state before the suspension:
    EXTENDED if it was ever extended, else GRANTED.
    """
    text = _reason(reason)
    frm = recordation.state
    if target == R.RECORDATION_STATE_EXTENDED and frm != R.RECORDATION_STATE_SUSPENDED:
        raise RecordationMoveInvalid(
            "extend a recordation with a new expire_time (ExtendRecordation)",
            metadata=_rec_meta(frm, target),
        )
    who = RECORDATION_MOVES.get((frm, target))
    if who is None or actor not in who:
        if who is not None and target == R.RECORDATION_STATE_EXPIRED:
            message = (
                "only the node expires a recordation, when its validity ends; "
                "withdraw it to end it early"
            )
        else:
            message = (
                f"a recordation cannot move from {recordation_state_label(frm)} to "
                f"{recordation_state_label(target)}"
                + ("" if who is None else f" by a {actor.value} officer")
            )
        raise RecordationMoveInvalid(message, metadata=_rec_meta(frm, target))
    if frm == R.RECORDATION_STATE_SUSPENDED and target in _IN_FORCE:
        if target != _resume_target(recordation):
            raise RecordationMoveInvalid(
                f"a resumed recordation goes back to "
                f"{recordation_state_label(_resume_target(recordation))}",
                metadata=_rec_meta(frm, target),
            )
        if now >= recordation.expire_time.ToDatetime(tzinfo=UTC):
            raise RecordationExpired(
                f"recordation {recordation.name} expired at {_iso(recordation.expire_time)}",
                metadata={"recordation": recordation.name, "state": "expired"},
            )
    if target == R.RECORDATION_STATE_EXPIRED and now < recordation.expire_time.ToDatetime(
        tzinfo=UTC
    ):
        raise RecordationMoveInvalid(
            f"recordation {recordation.name} is valid until {_iso(recordation.expire_time)}",
            metadata=_rec_meta(frm, target),
        )
    moved = R.Recordation()
    moved.CopyFrom(recordation)
    moved.state = target
    moved.history.append(
        R.RecordationMove(state=target, reason=text, officer=officer, move_time=_ts(now))
    )
    return moved


def recordation_granted(
    recordation: R.Recordation, *, officer: str, now: datetime
) -> R.Recordation:
    """A new recordation in state GRANTED with its first history entry."""
    granted = R.Recordation()
    granted.CopyFrom(recordation)
    granted.state = R.RECORDATION_STATE_GRANTED
    del granted.history[:]
    del granted.extensions[:]
    granted.history.append(
        R.RecordationMove(
            state=R.RECORDATION_STATE_GRANTED,
            reason="application granted",
            officer=officer,
            move_time=_ts(now),
        )
    )
    return granted


def extend_recordation(
    recordation: R.Recordation,
    new_expire_time: datetime,
    *,
    officer: str,
    reason: str,
    now: datetime,
) -> R.Recordation:
    """The recordation with its validity extended (608/2013 art. 12).

    Only a recordation in force can be extended (an expired one needs a
    new application), to a later time at most one year after the current
    expire_time.
    """
    text = _reason(reason)
    frm = recordation.state
    if frm not in _IN_FORCE:
        if frm == R.RECORDATION_STATE_EXPIRED:
            require_in_force(recordation, now)
        raise RecordationMoveInvalid(
            f"a {recordation_state_label(frm)} recordation cannot be extended",
            metadata=_rec_meta(frm, R.RECORDATION_STATE_EXTENDED),
        )
    require_in_force(recordation, now)
    current_end = recordation.expire_time.ToDatetime(tzinfo=UTC)
    if new_expire_time <= current_end:
        raise FieldInvalid(
            "the new expire_time must be after the current one",
            violations={"expire_time": f"must be after {_iso(recordation.expire_time)}"},
        )
    if new_expire_time > add_one_year(current_end):
        raise ExtensionRefused(
            "a recordation is extended by at most one year at a time (608/2013 art. 12(1))",
            metadata={"rule": "one_year"},
        )
    extended = R.Recordation()
    extended.CopyFrom(recordation)
    extended.state = R.RECORDATION_STATE_EXTENDED
    extended.expire_time.CopyFrom(_ts(new_expire_time))
    extended.extensions.append(
        R.RecordationExtension(
            extend_time=_ts(now),
            previous_expire_time=recordation.expire_time,
            expire_time=_ts(new_expire_time),
            reason=text,
        )
    )
    extended.history.append(
        R.RecordationMove(
            state=R.RECORDATION_STATE_EXTENDED, reason=text, officer=officer, move_time=_ts(now)
        )
    )
    return extended


# --- helpers ------------------------------------------------------------------------------


def _refuse_detention_move(
    frm: DetentionState, target: DetentionState, actor: Actor, *, known: bool
) -> None:
    meta = {
        "from_state": detention_state_label(frm),
        "to_state": detention_state_label(target),
        "role": actor.value,
    }
    if known:
        raise DetentionMoveInvalid(
            f"a {actor.value} officer cannot move a detention from {meta['from_state']} "
            f"to {meta['to_state']}; a customs officer can",
            metadata=meta,
        )
    options = ", ".join(detention_state_label(s) for s in allowed_detention_moves(frm, actor))
    raise DetentionMoveInvalid(
        f"a detention cannot move from {meta['from_state']} to {meta['to_state']}"
        + (f" (from {meta['from_state']}: {options})" if options else ""),
        metadata=meta,
    )


def _rec_meta(frm: RecordationState, target: RecordationState) -> dict[str, str]:
    return {"from_state": recordation_state_label(frm), "to_state": recordation_state_label(target)}


def _reason(reason: str) -> str:
    text = reason.strip()
    if not text:
        raise FieldInvalid("a reason is required", violations={"reason": "must not be empty"})
    if len(text) > MAX_REASON_CHARS:
        raise FieldInvalid(
            "the reason is too long",
            violations={"reason": f"at most {MAX_REASON_CHARS} characters"},
        )
    return text


def _label(enum_type: object, prefix: str, value: int) -> str:
    try:
        return str(enum_type.Name(value)).removeprefix(prefix).lower()  # type: ignore[attr-defined]
    except ValueError:
        return str(value)


def _ts(instant: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(instant.astimezone(UTC))
    return stamp


def _iso(stamp: Timestamp) -> str:
    return stamp.ToDatetime(tzinfo=UTC).isoformat().replace("+00:00", "Z")
