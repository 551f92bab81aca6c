"""The sender keeps several submissions in flight, never two about the same thing.

Messages about different alerts go to the gateway together; an update waits
for its alert's acceptance; a transient failure holds back what is behind
it in its conversation; a commit wakes the sender without a poll delay.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from intelshare import errors
from intelshare.gateway_client import GatewayClient
from intelshare.v1 import alert_pb2, envelope_pb2, gateway_service_pb2
from node.sharing import outbound
from node.sharing.outbound import Sender
from node.storage import tables as t
from tests.node.conftest import TASKFORCE, Cluster, RunningNode, demo_alert, wait_for
from tests.node.sharing.test_inbound import audit_leaves

pytestmark = pytest.mark.slow

TO_BE = [alert_pb2.AlertRecipient(agency_id="be-police", treaty_id=TASKFORCE)]


class SlowClient:
    """Submits through a real client, slowly, recording when each call ran."""

    def __init__(self, real: GatewayClient, delay: float, fail_once: set[str] | None = None):
        self.real = real
        self.delay = delay
        self.fail_once = set(fail_once or ())
        self.calls: list[tuple[str, float, float]] = []
        self.down = False
        self.lock = threading.Lock()

    def submit(
        self, envelope: envelope_pb2.Envelope, request_id: str | None = None
    ) -> gateway_service_pb2.SubmitEnvelopeResponse:
        start = time.monotonic()
        time.sleep(self.delay)
        message_id = str(request_id)
        try:
            with self.lock:
                if self.down:
                    raise errors.Unavailable("the gateway is down (test)")
                if message_id in self.fail_once:
                    self.fail_once.discard(message_id)
                    raise errors.Unavailable("the gateway is away (test)")
            return self.real.submit(envelope, request_id=request_id)
        finally:
            with self.lock:
                self.calls.append((message_id, start, time.monotonic()))

    def submit_async(
        self,
        envelope: envelope_pb2.Envelope,
        request_id: str | None,
        done: Callable[[gateway_service_pb2.SubmitEnvelopeResponse | errors.IntelshareError], None],
    ) -> None:
        def run() -> None:
            try:
                done(self.submit(envelope, request_id))
            except errors.IntelshareError as exc:
                done(exc)

        threading.Thread(target=run, daemon=True).start()


def fresh_sender(node: RunningNode, client: Any) -> Sender:
    """Replace the node's sender (stopped first) by one on ``client``."""
    old = node.node.sender
    old.stop()
    sender = Sender(node.node.store, node.node.sealer, client, max_backoff=0.5)
    sender.on_failed = old.on_failed
    node.node.sender = sender
    node.node.sharing.wake_sender = sender.wake
    return sender


def queued(node: RunningNode) -> list[Any]:
    with node.node.store.engine.connect() as conn:
        return list(conn.execute(select(t.outbound).order_by(t.outbound.c.id)))


def test_different_alerts_together_an_update_after_its_alert(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs")
    be = cluster.start_node("be-police")
    nl.node.sender.stop()
    with nl.client("liaison") as c:
        first = c.create_alert(demo_alert(recipients=TO_BE, description="first"))
        c.update_alert(alert_pb2.Alert(name=first.name, description="first, updated"), [])
        for n in range(3):
            c.create_alert(demo_alert(recipients=TO_BE, description=f"other {n}"))
    rows = queued(nl)
    assert [r.kind for r in rows] == [
        envelope_pb2.MESSAGE_KIND_ALERT,
        envelope_pb2.MESSAGE_KIND_ALERT_UPDATE,
        *[envelope_pb2.MESSAGE_KIND_ALERT] * 3,
    ]
    slow = SlowClient(nl.node.client, delay=0.3)
    sender = fresh_sender(nl, slow)
    sender.start()
    wait_for(lambda: sender.pending_count() == 0, what="everything accepted")
    calls = {m: (start, end) for m, start, end in slow.calls}
    assert len(calls) == 5
    alert, update, *others = (r.message_id for r in rows)
    # The other alerts were in flight together with the first one ...
    assert all(calls[o][0] < calls[alert][1] for o in others)
    # ... the update only once the alert was accepted.
    assert calls[update][0] >= calls[alert][1]
    rows = queued(nl)
    assert {r.state for r in rows} == {"accepted"}
    assert all(r.receipt for r in rows)
    submitted = [e["message_id"] for e in audit_leaves(nl, "submitted")]
    assert sorted(submitted) == sorted(r.message_id for r in rows)
    with nl.node.store.engine.connect() as conn:
        accepted = [r.accepted_ms for r in conn.execute(select(t.deliveries.c.accepted_ms))]
    assert len(accepted) == 4
    assert all(accepted)
    with be.client("analyst") as c:
        # The update is sent after its alert was accepted, so be may list the
        # four alerts before the update has reached it: wait for both.
        got = wait_for(
            lambda: (
                (a := c.list_all())
                and len(a) == 4
                and "first, updated" in {x.description for x in a}
                and a
            ),
            what="four alerts, the first one updated",
        )
        assert sorted(a.description for a in got) == [
            "first, updated",
            "other 0",
            "other 1",
            "other 2",
        ]


def test_a_transient_failure_holds_back_its_conversation(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs")
    be = cluster.start_node("be-police")
    nl.node.sender.stop()
    with nl.client("liaison") as c:
        first = c.create_alert(demo_alert(recipients=TO_BE, description="first"))
        c.update_alert(alert_pb2.Alert(name=first.name, description="first, updated"), [])
        c.create_alert(demo_alert(recipients=TO_BE, description="other"))
    alert, update, other = (r.message_id for r in queued(nl))
    slow = SlowClient(nl.node.client, delay=0.05, fail_once={alert})
    sender = fresh_sender(nl, slow)
    sender.start()
    wait_for(lambda: sender.pending_count() == 0, what="everything accepted")
    order = [m for m, _s, _e in slow.calls]
    assert order.count(alert) == 2  # failed once, then accepted
    assert order.index(update) > len(order) - 1 - order[::-1].index(alert)
    with nl.node.store.engine.connect() as conn:
        row = conn.execute(select(t.outbound).where(t.outbound.c.message_id == alert)).one()
    assert row.attempts == 1  # the failure was recorded (its error cleared on acceptance)
    assert other in order
    with be.client("analyst") as c:
        wait_for(lambda: len(c.list_all()) == 2, what="both alerts at be")


def test_after_a_transient_failure_one_submission_at_a_time(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs")
    be = cluster.start_node("be-police")
    nl.node.sender.stop()
    with nl.client("liaison") as c:
        for n in range(5):
            c.create_alert(demo_alert(recipients=TO_BE, description=f"n{n}"))
    slow = SlowClient(nl.node.client, delay=0.05)
    slow.down = True
    sender = fresh_sender(nl, slow)
    sender.start()
    wait_for(lambda: len(slow.calls) >= 10, what="attempts while the gateway is down")
    calls = sorted(slow.calls, key=lambda c: c[1])
    first_end = min(end for _m, _s, end in calls)
    later = [c for c in calls if c[1] >= first_end]
    assert later
    # Once a failure came back, no two attempts overlap.
    for (_m1, _s1, end), (_m2, start, _e2) in itertools.pairwise(later):
        assert start >= end
    slow.down = False
    wait_for(lambda: sender.pending_count() == 0, what="everything accepted once it is back")
    with be.client("analyst") as c:
        wait_for(lambda: len(c.list_all()) == 5, what="five alerts at be")


def test_a_commit_wakes_the_sender_without_a_poll(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    nl = cluster.start_node("nl-customs")
    cluster.start_node("be-police")
    monkeypatch.setattr(outbound, "IDLE_POLL_SECONDS", 60.0)
    sender = fresh_sender(nl, nl.node.client)
    sender.start()
    time.sleep(0.3)  # the first look found nothing: the next poll is a minute away
    with nl.client("liaison") as c:
        c.create_alert(demo_alert(recipients=TO_BE))
    wait_for(lambda: sender.pending_count() == 0, timeout=10, what="submitted on the wake-up")
    assert [r.state for r in queued(nl)] == ["accepted"]


def test_send_due_drives_the_queue_by_hand(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs")
    cluster.start_node("be-police")
    nl.node.sender.stop()
    with nl.client("liaison") as c:
        for n in range(20):
            c.create_alert(demo_alert(recipients=TO_BE, description=f"n{n}"))
    sender = fresh_sender(nl, nl.node.client)
    peak = 0
    submit = sender._submit

    def submit_counted(row: Any) -> None:
        nonlocal peak
        peak = max(peak, sender._unanswered)
        submit(row)

    sender._submit = submit_counted  # type: ignore[method-assign]
    passes = 0
    while sender.pending_count():
        sender.send_due()
        passes += 1
        assert passes < 10
    # Never more than sixteen unanswered at once; answers that come back
    # during a pass make room in it, so one pass may take all twenty.
    assert 1 < peak <= outbound.MAX_IN_FLIGHT
    assert passes <= 2
    assert {r.state for r in queued(nl)} == {"accepted"}
    assert sender.send_due() == outbound.IDLE_POLL_SECONDS


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_busy_deliveries_rows_are_waited_for_without_blocking(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deliveries row locked by another transaction (the inbox storing a receipt)
    makes the recorder try again shortly, never wait inside its transaction."""
    from sqlalchemy import update

    busy: list[bool] = []
    real = outbound._lock_not_available

    def lock_not_available(exc: Any) -> bool:
        busy.append(real(exc))
        return busy[-1]

    monkeypatch.setattr(outbound, "_lock_not_available", lock_not_available)
    nl = cluster.start_node("nl-customs")
    cluster.start_node("be-police")
    nl.node.sender.stop()
    with nl.client("liaison") as c:
        c.create_alert(demo_alert(recipients=TO_BE))
    sender = fresh_sender(nl, nl.node.client)
    engine = nl.node.store.engine
    with engine.connect() as other:
        other.execute(update(t.deliveries).values(hit_count=t.deliveries.c.hit_count))
        threading.Timer(0.1, other.rollback).start()  # the lock goes after 100 ms
        started = time.monotonic()
        sender.send_due()
        waited = time.monotonic() - started
    assert waited >= 0.1
    assert busy
    assert all(busy)  # refused at once (NOWAIT), tried again
    assert [r.state for r in queued(nl)] == ["accepted"]
    with engine.connect() as conn:
        assert all(r.accepted_ms for r in conn.execute(select(t.deliveries.c.accepted_ms)))


def test_a_lone_receipt_is_recorded_with_the_gateways_receipt(cluster: Cluster) -> None:
    """The recipient's receipt goes alone: its row is accepted with the gateway's receipt."""
    nl = cluster.start_node("nl-customs")
    be = cluster.start_node("be-police")
    sender = fresh_sender(be, be.node.client)  # not started: driven by hand below
    with nl.client("liaison") as c:
        c.create_alert(demo_alert(recipients=TO_BE))
    wait_for(lambda: queued(be) or None, what="the receipt queued at be-police")
    sender.send_due()
    wait_for(lambda: queued(be)[0].state == "accepted" or None, what="the receipt accepted")
    (row,) = queued(be)
    assert row.kind == envelope_pb2.MESSAGE_KIND_RECEIPT
    assert row.accepted_ms is not None
    assert row.last_error is None
    receipt = gateway_service_pb2.SubmitEnvelopeResponse().receipt
    receipt.ParseFromString(bytes(row.receipt))
    assert receipt.message_id == row.message_id
    assert [e["message_id"] for e in audit_leaves(be, "submitted")] == [row.message_id]
    # ... and the issuer learns of the delivery
    wait_for(
        lambda: all(d.delivered_ms for d in queued_deliveries(nl)) or None,
        what="the delivery recorded at nl-customs",
    )


def queued_deliveries(node: RunningNode) -> list[Any]:
    with node.node.store.engine.connect() as conn:
        return list(conn.execute(select(t.deliveries)))


def test_acceptances_recorded_together_keep_each_receipt(cluster: Cluster) -> None:
    """Answers recorded in one transaction: every row with its own gateway receipt,
    its deliveries marked accepted, one ``submitted`` audit entry each."""
    nl = cluster.start_node("nl-customs")
    cluster.start_node("be-police")
    nl.node.sender.stop()
    with nl.client("liaison") as c:
        for n in range(5):
            c.create_alert(demo_alert(recipients=TO_BE, description=f"n{n}"))
    sender = fresh_sender(nl, nl.node.client)
    recorded: list[int] = []
    settle = sender._settle

    def settle_counted(done: list[Any]) -> float | None:
        recorded.append(len(done))
        return settle(done)

    # The answers are handed to the recorder together once all five are in:
    # how they arrive under load, made certain here (one by one they would
    # come whenever the gateway's commits are spaced apart).
    held: list[tuple[Any, Any]] = []
    guard = threading.Lock()

    def hold_answer(row: Any, result: Any) -> None:
        with guard:
            held.append((row, result))
            if len(held) < 5:
                return
        with sender._lock:
            for answer in held:
                sender._unanswered -= 1
                sender._done.append(answer)
            sender._record_cv.notify()

    sender._answered = hold_answer  # type: ignore[method-assign]
    sender._settle = settle_counted  # type: ignore[method-assign]
    sender.send_due()
    assert recorded == [5]  # the five answers in one transaction
    rows = queued(nl)
    assert {r.state for r in rows} == {"accepted"}
    for r in rows:
        receipt = gateway_service_pb2.SubmitEnvelopeResponse().receipt
        receipt.ParseFromString(bytes(r.receipt))
        assert receipt.message_id == r.message_id
        assert r.accepted_ms is not None
    assert sorted(e["message_id"] for e in audit_leaves(nl, "submitted")) == sorted(
        r.message_id for r in rows
    )
    assert all(d.accepted_ms for d in queued_deliveries(nl))
