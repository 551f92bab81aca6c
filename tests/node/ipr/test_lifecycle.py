"""Every detention and recordation move, valid and invalid, by every actor."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from intelshare.errors import (
    DeadlinePassed,
    DetentionMoveInvalid,
    ExtensionRefused,
    InvalidArgument,
    PermissionDenied,
    RecordationExpired,
    RecordationMoveInvalid,
)
from intelshare.v1 import detention_pb2 as D
from intelshare.v1 import recordation_pb2 as R
from node.ipr import deadlines as dl
from node.ipr import lifecycle as lc
from node.ipr.lifecycle import Actor
from tests.node.ipr import samples

DE = dl.calendar_for("DE")
C, H, S = Actor.CUSTOMS, Actor.RIGHTS_HOLDER, Actor.SYSTEM
NOTIFIED_AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # Monday; answers due 16 March

# The detention moves as the regulation reads, written out independently of
# the module's table: (from, to) -> who may make the move.
ST = D.DetentionState
EXPECTED_DETENTION_MOVES: dict[tuple[str, str], set[Actor]] = {
    ("DETAINED", "HOLDER_NOTIFIED"): {C},
    ("DETAINED", "RELEASED"): {C},
    ("HOLDER_NOTIFIED", "INFRINGEMENT_CONFIRMED"): {C, H},
    ("HOLDER_NOTIFIED", "DESTRUCTION_AGREED"): {C, H},
    ("HOLDER_NOTIFIED", "DECLARANT_OBJECTED"): {C},
    ("HOLDER_NOTIFIED", "DEADLINE_PASSED"): {C, S},
    ("HOLDER_NOTIFIED", "RELEASED"): {C},
    ("INFRINGEMENT_CONFIRMED", "DESTRUCTION_AGREED"): {C, H},
    ("INFRINGEMENT_CONFIRMED", "DECLARANT_OBJECTED"): {C},
    ("INFRINGEMENT_CONFIRMED", "DEADLINE_PASSED"): {C, S},
    ("INFRINGEMENT_CONFIRMED", "PROCEEDINGS_STARTED"): {C, H},
    ("INFRINGEMENT_CONFIRMED", "RELEASED"): {C},
    ("DESTRUCTION_AGREED", "DESTROYED"): {C},
    ("DESTRUCTION_AGREED", "DECLARANT_OBJECTED"): {C},
    ("DESTRUCTION_AGREED", "PROCEEDINGS_STARTED"): {C, H},
    ("DECLARANT_OBJECTED", "PROCEEDINGS_STARTED"): {C, H},
    ("DECLARANT_OBJECTED", "DEADLINE_PASSED"): {C, S},
    ("DECLARANT_OBJECTED", "RELEASED"): {C},
    ("DEADLINE_PASSED", "DESTROYED"): {C},
    ("DEADLINE_PASSED", "RELEASED"): {C},
    ("PROCEEDINGS_STARTED", "DESTROYED"): {C},
    ("PROCEEDINGS_STARTED", "RELEASED"): {C},
}
STATES = [n.removeprefix("DETENTION_STATE_") for n in ST.keys()][1:]  # noqa: SIM118


def state(label: str) -> int:
    return ST.Value(f"DETENTION_STATE_{label}")


def notified(procedure: int = D.DETENTION_PROCEDURE_STANDARD, **kw: object) -> D.Detention:
    """A detention whose holder and declarant were notified at NOTIFIED_AT."""
    created = lc.detention_created(
        samples.detention(procedure=procedure, **kw),  # type: ignore[arg-type]
        officer="k.weber",
        now=NOTIFIED_AT - timedelta(hours=2),
        calendar=DE,
    )
    return lc.move_detention(
        created,
        D.DETENTION_STATE_HOLDER_NOTIFIED,
        actor=C,
        officer="k.weber",
        reason="holder and declarant notified",
        now=NOTIFIED_AT,
        calendar=DE,
    )


def in_state(label: str) -> D.Detention:
    d = notified()
    d.state = state(label)
    return d


def deadline(d: D.Detention, kind: int) -> D.DetentionDeadline:
    (found,) = [x for x in d.deadlines if x.kind == kind]
    return found


# --- the whole table ---------------------------------------------------------------------


def test_the_table_is_the_regulations() -> None:
    got = {
        (lc.detention_state_label(f).upper(), lc.detention_state_label(t).upper()): set(who)
        for (f, t), who in lc.DETENTION_MOVES.items()
    }
    assert got == EXPECTED_DETENTION_MOVES


@pytest.mark.parametrize(
    ("frm", "to", "actor"),
    list(itertools.product(STATES, STATES, list(Actor))),
)
def test_every_move_by_every_actor(frm: str, to: str, actor: Actor) -> None:
    d = in_state(frm)
    # Before the answers are due, except for moves to DEADLINE_PASSED (which
    # need one to have passed): then after.
    now = NOTIFIED_AT + (timedelta(days=30) if to == "DEADLINE_PASSED" else timedelta(days=1))
    allowed = actor in EXPECTED_DETENTION_MOVES.get((frm, to), set())
    if allowed:
        moved = lc.move_detention(
            d, state(to), actor=actor, officer="o", reason="because", now=now, calendar=DE
        )
        assert moved.state == state(to)
        assert moved.history[-1].state == state(to)
        assert moved.history[-1].role == actor.value
        assert d.state == state(frm)  # the argument is not changed
    else:
        with pytest.raises(DetentionMoveInvalid) as info:
            lc.move_detention(
                d, state(to), actor=actor, officer="o", reason="because", now=now, calendar=DE
            )
        assert info.value.reason == "DETENTION_MOVE_INVALID"
        assert info.value.grpc_code == "FAILED_PRECONDITION"
        assert info.value.metadata["from_state"] == frm.lower()
        assert info.value.metadata["to_state"] == to.lower()
        assert frm.lower() in info.value.message
        assert to.lower() in info.value.message


def test_final_states_are_final() -> None:
    for final in ("DESTROYED", "RELEASED"):
        for actor in Actor:
            assert lc.allowed_detention_moves(state(final), actor) == []


def test_invalid_move_lists_the_options() -> None:
    with pytest.raises(DetentionMoveInvalid) as info:
        lc.move_detention(
            in_state("DETAINED"),
            D.DETENTION_STATE_DESTROYED,
            actor=C,
            officer="o",
            reason="x",
            now=NOTIFIED_AT,
            calendar=DE,
        )
    assert "from detained: holder_notified, released" in info.value.message


def test_holder_is_told_a_customs_officer_can() -> None:
    with pytest.raises(DetentionMoveInvalid, match="a customs officer can") as info:
        lc.check_detention_move(
            in_state("HOLDER_NOTIFIED"), D.DETENTION_STATE_RELEASED, H, NOTIFIED_AT
        )
    assert info.value.metadata["role"] == "rights_holder"


def test_move_needs_a_state_and_a_reason() -> None:
    d = in_state("HOLDER_NOTIFIED")
    with pytest.raises(InvalidArgument) as info:
        lc.move_detention(
            d,
            D.DETENTION_STATE_UNSPECIFIED,
            actor=C,
            officer="o",
            reason="x",
            now=NOTIFIED_AT,
            calendar=DE,
        )
    assert "state" in info.value.violations
    with pytest.raises(InvalidArgument) as info:
        lc.move_detention(
            d,
            D.DETENTION_STATE_RELEASED,
            actor=C,
            officer="o",
            reason="   ",
            now=NOTIFIED_AT,
            calendar=DE,
        )
    assert "reason" in info.value.violations


def test_roles() -> None:
    assert lc.actor_of_role("liaison") is C
    assert lc.actor_of_role("admin") is C
    assert lc.actor_of_role("rights_holder") is H
    with pytest.raises(PermissionDenied):
        lc.actor_of_role("visitor")


# --- what moves do to history and deadlines ----------------------------------------------------


def test_created_detention_has_its_notification_deadline() -> None:
    created = lc.detention_created(
        samples.detention(),
        officer="k.weber",
        now=datetime(2026, 12, 24, 10, tzinfo=UTC),
        calendar=DE,
    )
    assert created.state == D.DETENTION_STATE_DETAINED
    assert [(m.state, m.officer) for m in created.history] == [
        (D.DETENTION_STATE_DETAINED, "k.weber")
    ]
    (notify,) = created.deadlines
    assert (notify.kind, notify.last_day) == (D.DEADLINE_KIND_NOTIFICATION, "2026-12-28")


def test_standard_path_to_destruction() -> None:
    d = notified()
    assert d.notify_time.ToDatetime(tzinfo=UTC) == NOTIFIED_AT
    assert deadline(d, D.DEADLINE_KIND_NOTIFICATION).state == D.DEADLINE_STATE_MET
    answer = deadline(d, D.DEADLINE_KIND_HOLDER_ANSWER)
    assert (answer.working_days, answer.last_day) == (10, "2026-03-16")
    assert deadline(d, D.DEADLINE_KIND_DECLARANT_ANSWER).last_day == "2026-03-16"

    d = lc.move_detention(
        d,
        D.DETENTION_STATE_DESTRUCTION_AGREED,
        actor=H,
        officer="acme.legal",
        reason="counterfeit: no hologram; we agree to destruction",
        now=NOTIFIED_AT + timedelta(days=3),
        calendar=DE,
    )
    assert deadline(d, D.DEADLINE_KIND_HOLDER_ANSWER).state == D.DEADLINE_STATE_MET
    assert deadline(d, D.DEADLINE_KIND_DECLARANT_ANSWER).state == D.DEADLINE_STATE_OPEN
    d = lc.move_detention(
        d,
        D.DETENTION_STATE_DESTROYED,
        actor=C,
        officer="k.weber",
        reason="declarant agreed",
        now=NOTIFIED_AT + timedelta(days=5),
        calendar=DE,
    )
    assert deadline(d, D.DEADLINE_KIND_DECLARANT_ANSWER).state == D.DEADLINE_STATE_CLOSED
    assert [lc.detention_state_label(m.state) for m in d.history] == [
        "detained",
        "holder_notified",
        "destruction_agreed",
        "destroyed",
    ]


def test_perishable_goods_have_three_days() -> None:
    d = notified(perishable=True)
    assert deadline(d, D.DEADLINE_KIND_HOLDER_ANSWER).last_day == "2026-03-05"


def test_holder_answer_after_its_deadline() -> None:
    d = notified()
    late = NOTIFIED_AT + timedelta(days=20)
    with pytest.raises(DeadlinePassed) as info:
        lc.move_detention(
            d,
            D.DETENTION_STATE_INFRINGEMENT_CONFIRMED,
            actor=H,
            officer="acme.legal",
            reason="fake",
            now=late,
            calendar=DE,
        )
    assert info.value.metadata["deadline"] == "holder_answer"
    assert "2026-03-16" in info.value.message
    # An answer that arrived in time by post is recorded by the officer.
    moved = lc.move_detention(
        d,
        D.DETENTION_STATE_INFRINGEMENT_CONFIRMED,
        actor=C,
        officer="k.weber",
        reason="holder's letter of 13 March",
        now=late,
        calendar=DE,
    )
    assert moved.state == D.DETENTION_STATE_INFRINGEMENT_CONFIRMED
    assert deadline(moved, D.DEADLINE_KIND_HOLDER_ANSWER).state == D.DEADLINE_STATE_PASSED


def test_deadline_passed_needs_a_passed_deadline() -> None:
    d = notified()
    with pytest.raises(DetentionMoveInvalid, match="no deadline has passed yet") as info:
        lc.move_detention(
            d,
            D.DETENTION_STATE_DEADLINE_PASSED,
            actor=S,
            officer="",
            reason="deadline",
            now=NOTIFIED_AT + timedelta(days=3),
            calendar=DE,
        )
    assert "holder_answer due by the end of 2026-03-16" in info.value.message
    due = deadline(d, D.DEADLINE_KIND_HOLDER_ANSWER).due_time.ToDatetime(tzinfo=UTC)
    moved = lc.move_detention(
        d,
        D.DETENTION_STATE_DEADLINE_PASSED,
        actor=S,
        officer="",
        reason="holder did not answer",
        now=due,
        calendar=DE,
    )
    assert moved.history[-1].role == "system"
    assert deadline(moved, D.DEADLINE_KIND_HOLDER_ANSWER).state == D.DEADLINE_STATE_PASSED


def test_declarant_objects_after_holder_agreed() -> None:
    d = lc.move_detention(
        notified(),
        D.DETENTION_STATE_DESTRUCTION_AGREED,
        actor=H,
        officer="acme.legal",
        reason="agree",
        now=NOTIFIED_AT + timedelta(days=1),
        calendar=DE,
    )
    d = lc.move_detention(
        d,
        D.DETENTION_STATE_DECLARANT_OBJECTED,
        actor=C,
        officer="k.weber",
        reason="declarant objects in writing",
        now=NOTIFIED_AT + timedelta(days=2),
        calendar=DE,
    )
    # The holder must now start proceedings within the same period (art. 23(3)).
    assert deadline(d, D.DEADLINE_KIND_HOLDER_ANSWER).state == D.DEADLINE_STATE_OPEN
    assert deadline(d, D.DEADLINE_KIND_DECLARANT_ANSWER).state == D.DEADLINE_STATE_MET
    d = lc.move_detention(
        d,
        D.DETENTION_STATE_PROCEEDINGS_STARTED,
        actor=H,
        officer="acme.legal",
        reason="summons served at the Rotterdam court",
        now=NOTIFIED_AT + timedelta(days=8),
        calendar=DE,
    )
    assert deadline(d, D.DEADLINE_KIND_HOLDER_ANSWER).state == D.DEADLINE_STATE_MET


def test_small_consignment_objection_starts_the_holders_proceedings_deadline() -> None:
    d = notified(procedure=D.DETENTION_PROCEDURE_SMALL_CONSIGNMENT)
    assert [x.kind for x in d.deadlines] == [
        D.DEADLINE_KIND_NOTIFICATION,
        D.DEADLINE_KIND_DECLARANT_OBJECTION,
    ]
    objected_at = datetime(2026, 3, 6, 10, tzinfo=UTC)  # Friday
    d = lc.move_detention(
        d,
        D.DETENTION_STATE_DECLARANT_OBJECTED,
        actor=C,
        officer="k.weber",
        reason="declarant objects",
        now=objected_at,
        calendar=DE,
    )
    assert deadline(d, D.DEADLINE_KIND_DECLARANT_OBJECTION).state == D.DEADLINE_STATE_MET
    proceedings = deadline(d, D.DEADLINE_KIND_HOLDER_PROCEEDINGS)
    assert (proceedings.working_days, proceedings.last_day) == (10, "2026-03-20")


def test_ex_officio_application_granted() -> None:
    d = notified(procedure=D.DETENTION_PROCEDURE_EX_OFFICIO, recordations=())
    application = deadline(d, D.DEADLINE_KIND_HOLDER_APPLICATION)
    assert application.last_day == "2026-03-06"
    told = datetime(2026, 3, 5, 14, tzinfo=UTC)
    converted = lc.application_granted(d, "recordations/acme-2026", notify_time=told, now=told)
    assert converted.procedure == D.DETENTION_PROCEDURE_STANDARD
    assert list(converted.recordations) == ["recordations/acme-2026"]
    assert deadline(converted, D.DEADLINE_KIND_HOLDER_APPLICATION).state == D.DEADLINE_STATE_MET
    assert deadline(converted, D.DEADLINE_KIND_HOLDER_ANSWER).last_day == "2026-03-19"
    with pytest.raises(DetentionMoveInvalid):
        lc.application_granted(converted, "recordations/x", notify_time=told, now=told)


def test_extend_deadline_on_a_detention() -> None:
    d = notified()
    now = NOTIFIED_AT + timedelta(days=2)
    extended = lc.extend_deadline(d, D.DEADLINE_KIND_HOLDER_ANSWER, 10, now=now)
    answer = deadline(extended, D.DEADLINE_KIND_HOLDER_ANSWER)
    assert (answer.extended, answer.working_days, answer.last_day) == (True, 20, "2026-03-30")
    assert not deadline(d, D.DEADLINE_KIND_HOLDER_ANSWER).extended
    with pytest.raises(ExtensionRefused) as info:
        lc.extend_deadline(extended, D.DEADLINE_KIND_HOLDER_ANSWER, 1, now=now)
    assert info.value.metadata["rule"] == "once"
    with pytest.raises(ExtensionRefused) as info:
        lc.extend_deadline(notified(perishable=True), D.DEADLINE_KIND_HOLDER_ANSWER, 1, now=now)
    assert info.value.metadata["rule"] == "perishable"
    with pytest.raises(ExtensionRefused) as info:
        lc.extend_deadline(d, D.DEADLINE_KIND_HOLDER_PROCEEDINGS, 1, now=now)
    assert info.value.metadata["rule"] == "not_running"
    released = lc.move_detention(
        d, D.DETENTION_STATE_RELEASED, actor=C, officer="o", reason="genuine", now=now, calendar=DE
    )
    with pytest.raises(ExtensionRefused) as info:
        lc.extend_deadline(released, D.DEADLINE_KIND_HOLDER_ANSWER, 1, now=now)
    assert info.value.metadata["rule"] == "state"


def test_reads_show_passed_deadlines() -> None:
    d = notified()
    shown = lc.deadlines_as_of(d, NOTIFIED_AT + timedelta(days=30))
    assert deadline(shown, D.DEADLINE_KIND_HOLDER_ANSWER).state == D.DEADLINE_STATE_PASSED
    assert deadline(d, D.DEADLINE_KIND_HOLDER_ANSWER).state == D.DEADLINE_STATE_OPEN


# --- recordations ----------------------------------------------------------------------------------

RS = R.RecordationState
REC_STATES = [n.removeprefix("RECORDATION_STATE_") for n in RS.keys()][1:]  # noqa: SIM118
EXPECTED_RECORDATION_MOVES: dict[tuple[str, str], set[Actor]] = {
    ("GRANTED", "EXTENDED"): {C},
    ("GRANTED", "EXPIRED"): {S},
    ("GRANTED", "WITHDRAWN"): {C},
    ("GRANTED", "SUSPENDED"): {C},
    ("EXTENDED", "EXTENDED"): {C},
    ("EXTENDED", "EXPIRED"): {S},
    ("EXTENDED", "WITHDRAWN"): {C},
    ("EXTENDED", "SUSPENDED"): {C},
    ("SUSPENDED", "GRANTED"): {C},
    ("SUSPENDED", "EXTENDED"): {C},
    ("SUSPENDED", "WITHDRAWN"): {C},
    ("SUSPENDED", "EXPIRED"): {S},
}
NOW = samples.NOW


def granted() -> R.Recordation:
    return lc.recordation_granted(samples.recordation(), officer="j.jansen", now=NOW)


def test_recordation_table() -> None:
    got = {
        (lc.recordation_state_label(f).upper(), lc.recordation_state_label(t).upper()): set(who)
        for (f, t), who in lc.RECORDATION_MOVES.items()
    }
    assert got == EXPECTED_RECORDATION_MOVES


@pytest.mark.parametrize(
    ("frm", "to", "actor"),
    [
        (f, t, a)
        for f, t, a in itertools.product(REC_STATES, REC_STATES, list(Actor))
        if t != "EXTENDED" or f == "SUSPENDED"  # extensions: test_extend_recordation
    ],
)
def test_every_recordation_move(frm: str, to: str, actor: Actor) -> None:
    r = granted()
    r.state = RS.Value(f"RECORDATION_STATE_{frm}")
    if to == "EXTENDED":  # resuming to EXTENDED needs an extension behind it
        r.extensions.add(reason="earlier")
    end = r.expire_time.ToDatetime(tzinfo=UTC)
    now = end + timedelta(seconds=1) if to == "EXPIRED" else NOW
    allowed = actor in EXPECTED_RECORDATION_MOVES.get((frm, to), set())
    if allowed:
        moved = lc.move_recordation(
            r, RS.Value(f"RECORDATION_STATE_{to}"), actor=actor, officer="o", reason="r", now=now
        )
        assert moved.state == RS.Value(f"RECORDATION_STATE_{to}")
        assert moved.history[-1].reason == "r"
    else:
        with pytest.raises(RecordationMoveInvalid) as info:
            lc.move_recordation(
                r,
                RS.Value(f"RECORDATION_STATE_{to}"),
                actor=actor,
                officer="o",
                reason="r",
                now=now,
            )
        assert info.value.reason == "RECORDATION_MOVE_INVALID"
        assert info.value.metadata == {"from_state": frm.lower(), "to_state": to.lower()}


def test_extend_recordation() -> None:
    r = granted()
    end = r.expire_time.ToDatetime(tzinfo=UTC)
    once = lc.extend_recordation(
        r, end + timedelta(days=365), officer="j.jansen", reason="holder's request", now=NOW
    )
    assert once.state == R.RECORDATION_STATE_EXTENDED
    assert once.expire_time.ToDatetime(tzinfo=UTC) == end + timedelta(days=365)
    (ext,) = once.extensions
    assert ext.previous_expire_time.ToDatetime(tzinfo=UTC) == end
    assert [lc.recordation_state_label(m.state) for m in once.history] == ["granted", "extended"]
    twice = lc.extend_recordation(
        once, end + timedelta(days=400), officer="j.jansen", reason="again", now=NOW
    )
    assert len(twice.extensions) == 2
    with pytest.raises(ExtensionRefused) as info:
        lc.extend_recordation(
            r, end + timedelta(days=366), officer="j.jansen", reason="too long", now=NOW
        )
    assert info.value.metadata["rule"] == "one_year"
    with pytest.raises(InvalidArgument):
        lc.extend_recordation(r, end, officer="j.jansen", reason="same day", now=NOW)


def test_an_expired_recordation_is_not_extended() -> None:
    r = granted()
    end = r.expire_time.ToDatetime(tzinfo=UTC)
    with pytest.raises(RecordationExpired) as info:
        lc.extend_recordation(
            r, end + timedelta(days=30), officer="j.jansen", reason="late", now=end
        )
    assert info.value.metadata == {"recordation": r.name, "state": "expired"}
    assert info.value.grpc_code == "FAILED_PRECONDITION"


def test_suspend_and_resume() -> None:
    r = granted()
    suspended = lc.move_recordation(
        r, R.RECORDATION_STATE_SUSPENDED, actor=C, officer="o", reason="art. 16", now=NOW
    )
    assert not lc.in_force(suspended, NOW)
    with pytest.raises(RecordationExpired, match="is suspended"):
        lc.require_in_force(suspended, NOW)
    with pytest.raises(RecordationMoveInvalid, match="goes back to granted"):
        lc.move_recordation(
            suspended, R.RECORDATION_STATE_EXTENDED, actor=C, officer="o", reason="x", now=NOW
        )
    resumed = lc.move_recordation(
        suspended, R.RECORDATION_STATE_GRANTED, actor=C, officer="o", reason="paid", now=NOW
    )
    assert lc.in_force(resumed, NOW)
    late = resumed.expire_time.ToDatetime(tzinfo=UTC) + timedelta(days=1)
    with pytest.raises(RecordationExpired):
        lc.move_recordation(
            suspended, R.RECORDATION_STATE_GRANTED, actor=C, officer="o", reason="x", now=late
        )


def test_only_the_node_expires_and_only_when_due() -> None:
    r = granted()
    with pytest.raises(RecordationMoveInvalid, match="withdraw it to end it early"):
        lc.move_recordation(
            r, R.RECORDATION_STATE_EXPIRED, actor=C, officer="o", reason="x", now=NOW
        )
    with pytest.raises(RecordationMoveInvalid, match="is valid until"):
        lc.move_recordation(
            r, R.RECORDATION_STATE_EXPIRED, actor=S, officer="", reason="x", now=NOW
        )
    end = r.expire_time.ToDatetime(tzinfo=UTC)
    assert lc.in_force(r, end - timedelta(seconds=1))
    assert not lc.in_force(r, end)
    expired = lc.move_recordation(
        r, R.RECORDATION_STATE_EXPIRED, actor=S, officer="", reason="validity ended", now=end
    )
    assert expired.state == R.RECORDATION_STATE_EXPIRED


def test_extend_is_not_a_plain_move() -> None:
    with pytest.raises(RecordationMoveInvalid, match="ExtendRecordation"):
        lc.move_recordation(
            granted(), R.RECORDATION_STATE_EXTENDED, actor=C, officer="o", reason="x", now=NOW
        )
