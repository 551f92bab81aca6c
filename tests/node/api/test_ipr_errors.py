"""Bad input, moves out of order, holders reaching too far, expiry and the deadline job.

Every refusal is a gRPC status with its ErrorInfo reason (checked on the
wire for some, through the client's exception classes for the rest, which
are chosen by that reason) and leaves nothing half-written.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from sqlalchemy import func, select, text, update

from intelshare import devfed, errors
from intelshare.v1 import detention_pb2, ipr_service_pb2, recordation_pb2
from node.kinds.detentions import REMIND_BEFORE_MS
from node.storage import tables as t
from tests.node.api.ipr_fixtures import OTHER_KEY, acme, client, holder_token, ipr_fed, shoes
from tests.node.conftest import Cluster, RunningNode
from tests.node.sharing.test_inbound import audit_leaves

pytestmark = pytest.mark.slow

D = detention_pb2
R = recordation_pb2
S = ipr_service_pb2


@pytest.fixture
def fed(tmp_path: Path) -> devfed.LocalFederation:
    return ipr_fed(tmp_path)


def count(node: RunningNode, table: Any) -> int:
    with node.node.store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def wire_error(call: Any, request: Any, token: str) -> tuple[grpc.StatusCode, str]:
    """The status code and ErrorInfo reason of a raw call that must fail."""
    with pytest.raises(grpc.RpcError) as caught:
        call(request, metadata=(("authorization", f"Bearer {token}"),), timeout=10)
    status: status_pb2.Status | None = rpc_status.from_call(caught.value)  # type: ignore[arg-type]
    assert status is not None
    reason = ""
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
    return caught.value.code(), reason  # type: ignore[attr-defined]


def test_malformed_identifiers_are_refused_by_field_and_nothing_is_written(
    cluster: Cluster,
) -> None:
    nl = cluster.start_node("nl-customs")
    with client(nl) as c:
        bad_gtin = acme(gtin="4006381333932", agencies=[])
        code, reason = wire_error(
            c.ipr.CreateRecordation,
            S.CreateRecordationRequest(recordation=bad_gtin, request_id="r-1"),
            nl.tokens["liaison"],
        )
        assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "GTIN_INVALID")
        with pytest.raises(errors.GtinInvalid) as exc:
            c.create_recordation(bad_gtin)
        assert "recordation.goods[0].gtins[0]" in exc.value.violations
        bad_hs = acme(agencies=[])
        bad_hs.goods[0].hs_codes[:] = ["6404"]
        with pytest.raises(errors.HsCodeInvalid):
            c.create_recordation(bad_hs)
        past = acme(agencies=[], grant=datetime.now(UTC) - timedelta(days=400))
        with pytest.raises(errors.InvalidArgument) as exc:
            c.create_recordation(past)
        assert "in the past" in exc.value.violations["recordation.expire_time"]
        assert count(nl, t.records) == 0
        assert count(nl, t.recordations) == 0
        assert count(nl, t.outbound) == 0

        c.create_recordation(acme(agencies=[]), "acme-2026")
        detention = shoes("recordations/acme-2026", container="CSQU3054384")
        code, reason = wire_error(
            c.ipr.CreateDetention,
            S.CreateDetentionRequest(detention=detention, request_id="d-1"),
            nl.tokens["liaison"],
        )
        assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "CONTAINER_NUMBER_INVALID")
        with pytest.raises(errors.InvalidArgument) as exc:
            c.create_detention(shoes("recordations/nobody-here"))
        assert "is not a recordation this node holds" in str(exc.value.violations)
        with pytest.raises(errors.InvalidArgument):
            c.search_recordations()
        with pytest.raises(errors.GtinInvalid):
            c.search_recordations(gtin="12345")
        assert count(nl, t.detentions) == 0
        assert count(nl, t.ipr_stats) == 0
        assert count(nl, t.ipr_stats_monthly) == 0


def test_moves_out_of_order_and_idempotent_retries(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs")
    with client(nl) as c:
        c.create_recordation(acme(agencies=[]), "acme-2026")
        first = c.create_detention(shoes("recordations/acme-2026"), "d1", request_id="same")
        again = c.create_detention(shoes("recordations/acme-2026"), "d1", request_id="same")
        assert again == first
        assert count(nl, t.detentions) == 1
        code, reason = wire_error(
            c.ipr.MoveDetention,
            S.MoveDetentionRequest(
                name="detentions/d1", state=D.DETENTION_STATE_DESTROYED, reason="x"
            ),
            nl.tokens["liaison"],
        )
        assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "DETENTION_MOVE_INVALID")
        with pytest.raises(errors.DetentionMoveInvalid) as exc:
            c.move_detention("d1", D.DETENTION_STATE_DESTROYED, "x")
        assert "from detained: holder_notified, released" in exc.value.message
        with pytest.raises(errors.InvalidArgument):
            c.move_detention("d1", D.DETENTION_STATE_HOLDER_NOTIFIED, "   ")
        still = c.get_detention("d1")
        assert (still.state, still.revision, len(still.history)) == (
            D.DETENTION_STATE_DETAINED,
            1,
            1,
        )
        with pytest.raises(errors.ExtensionRefused):
            c.extend_deadline("d1", 5, "no answer deadline runs yet")
        c.move_detention("d1", D.DETENTION_STATE_HOLDER_NOTIFIED, "notified")
        extended = c.extend_deadline("d1", 5, "laboratory results expected")
        answer = next(d for d in extended.deadlines if d.kind == D.DEADLINE_KIND_HOLDER_ANSWER)
        assert (answer.extended, answer.working_days) == (True, 15)
        with pytest.raises(errors.ExtensionRefused):
            c.extend_deadline("d1", 2, "once more")
        # the analyst reads but does not move
        with client(nl, "analyst") as a, pytest.raises(errors.PermissionDenied):
            a.move_detention("d1", D.DETENTION_STATE_RELEASED, "x")
        # recordations move in their own order, and only at the grantor
        with pytest.raises(errors.RecordationMoveInvalid):
            c.move_recordation("resume", "acme-2026", "was not suspended")
        suspended = c.move_recordation("suspend", "acme-2026", "costs unpaid (art. 16)")
        assert suspended.state == R.RECORDATION_STATE_SUSPENDED
        with pytest.raises(errors.RecordationExpired):
            c.create_detention(shoes("recordations/acme-2026"))
        resumed = c.move_recordation("resume", "acme-2026", "costs paid")
        assert resumed.state == R.RECORDATION_STATE_GRANTED
        with pytest.raises(errors.ExtensionRefused):
            c.extend_recordation(
                "acme-2026",
                ts_of(datetime.now(UTC) + timedelta(days=800)),
                "two years at once",
            )
        longer = c.extend_recordation(
            "acme-2026", ts_of(datetime.now(UTC) + timedelta(days=400)), "holder's request"
        )
        assert longer.state == R.RECORDATION_STATE_EXTENDED
        assert len(longer.extensions) == 1


def test_a_holder_sees_only_its_own_and_is_refused_everything_else(cluster: Cluster) -> None:
    de = cluster.start_node("de-customs")
    with client(de) as c:
        c.create_recordation(acme(agencies=[]), "acme-2026")
        c.create_recordation(
            acme(eori="DE987654321", gtin="5901234123457", mark="BETA", agencies=[]), "beta"
        )
        c.create_detention(shoes("recordations/acme-2026"), "mine")
        c.create_detention(shoes("recordations/beta", gtin="5901234123457"), "theirs")
        both = c.create_detention(shoes("recordations/acme-2026", "recordations/beta"), "both")
        assert len(both.recordations) == 2
    token = holder_token(de, OTHER_KEY)
    with client(de, token=token) as beta:
        assert sorted(d.name for d in beta.all_detentions()) == [
            "detentions/both",
            "detentions/theirs",
        ]
        # in a detention of two holders each sees only its own recordation
        assert list(beta.get_detention("both").recordations) == ["recordations/beta"]
        code, reason = wire_error(
            beta.ipr.GetDetention, S.GetDetentionRequest(name="detentions/mine"), token
        )
        assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "HOLDER_MISMATCH")
        with pytest.raises(errors.HolderMismatch):
            beta.get_recordation("acme-2026")
        with pytest.raises(errors.HolderMismatch):
            beta.request_samples("mine", "2 pairs")
        with pytest.raises(errors.HolderMismatch):
            beta.extend_deadline("mine", 3, "please")
        assert [r.name for r in beta.all_recordations()] == ["recordations/beta"]
        assert [m.recordation.name for m in beta.all_matches(right_name="acme")] == []
        assert [m.recordation.name for m in beta.all_matches(right_name="beta")] == [
            "recordations/beta"
        ]
        refused = [
            lambda: beta.create_recordation(acme(agencies=[])),
            lambda: beta.update_recordation(R.Recordation(name="recordations/beta"), ["goods"]),
            lambda: beta.move_recordation("withdraw", "beta", "mine to withdraw?"),
            lambda: beta.create_detention(shoes("recordations/beta")),
            lambda: beta.update_detention(D.Detention(name="detentions/theirs"), ["goods"]),
            lambda: beta.disclose_parties("theirs", "let me see"),
            lambda: beta.share_report("theirs", [("nl-customs", "x")]),
            lambda: beta.get_report("detentionReports/x"),
            lambda: beta.statistics(),
            lambda: beta.list_alerts(),
        ]
        for call in refused:
            with pytest.raises(errors.PermissionDenied) as exc:
                call()
            assert type(exc.value) is errors.RoleNotPermitted  # not even a mismatch: no access
        # its own answer, and its samples request, are accepted only on its detentions
        samples = beta.request_samples("theirs", "2 pairs for laboratory analysis")
        assert samples.sample_requests[0].reason == "2 pairs for laboratory analysis"
        assert not samples.HasField("parties")
    with client(de) as c:
        c.disclose_parties("theirs", "holder is starting proceedings (art. 17(4))")
    with client(de, token=token) as beta:
        assert beta.get_detention("theirs").parties.declarant.name == "Hans Muster"
    reads = audit_leaves(de, "detention_read")
    assert any("detentions/theirs" in e["detentions"] for e in reads)


def test_the_deadline_job_reminds_once_and_moves_a_passed_detention(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs", maintenance_in_node=False)
    job = nl.node.detentions
    assert job is not None
    with client(nl) as c:
        c.create_recordation(acme(agencies=[]), "acme-2026")
        c.create_detention(shoes("recordations/acme-2026"), "late")
        c.move_detention("late", D.DETENTION_STATE_HOLDER_NOTIFIED, "notified")
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    _shift_deadlines(nl, "late", now_ms + REMIND_BEFORE_MS // 2)
    assert job.check_deadlines() == 2  # holder's and declarant's answers: one reminder each
    assert job.check_deadlines() == 0  # and only once
    _shift_deadlines(nl, "late", now_ms - 1000)
    # the first passed deadline moves the detention, which records the other as passed too
    assert job.check_deadlines() == 1
    assert job.check_deadlines() == 0
    with client(nl) as c:
        moved = c.get_detention("late")
    assert moved.state == D.DETENTION_STATE_DEADLINE_PASSED
    assert moved.history[-1].role == "system"
    with nl.node.store.engine.connect() as conn:
        types = [
            r[0]
            for r in conn.execute(
                text("SELECT type FROM node_events WHERE type LIKE 'detention.%'")
            )
        ]
    assert types.count("detention.deadline_due") == 2
    assert types.count("detention.deadline_passed") == 1
    assert {d.state for d in moved.deadlines if d.kind != D.DEADLINE_KIND_NOTIFICATION} == {
        D.DEADLINE_STATE_PASSED
    }
    # and a recordation past its validity: the node expires it, detentions refuse it
    with nl.node.store.engine.begin() as conn:
        conn.execute(update(t.recordations).values(expire_ms=now_ms - 1000))
        rows = conn.execute(select(t.recordations.c.record_id, t.recordations.c.full_record))
        for record_id, full in rows.all():
            data = json.loads(full)
            data["expire_time"] = "2000-01-01T00:00:00Z"
            conn.execute(
                update(t.recordations)
                .where(t.recordations.c.record_id == record_id)
                .values(full_record=json.dumps(data))
            )
    assert nl.node.recordations is not None
    assert nl.node.recordations.expire_due() == 1
    with client(nl) as c:
        assert c.get_recordation("acme-2026").state == R.RECORDATION_STATE_EXPIRED
        code, reason = wire_error(
            c.ipr.CreateDetention,
            S.CreateDetentionRequest(detention=shoes("recordations/acme-2026")),
            nl.tokens["liaison"],
        )
        assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "RECORDATION_EXPIRED")
        with pytest.raises(errors.RecordationExpired):
            c.extend_recordation(
                "acme-2026", ts_of(datetime.now(UTC) + timedelta(days=30)), "too late"
            )


def _shift_deadlines(node: RunningNode, detention_id: str, due_ms: int) -> None:
    """Pretend time passed: the open answer deadlines end at ``due_ms``."""
    due = datetime.fromtimestamp(due_ms / 1000, UTC).isoformat().replace("+00:00", "Z")
    with node.node.store.engine.begin() as conn:
        row = conn.execute(
            select(t.detentions.c.record).where(t.detentions.c.detention_id == detention_id)
        ).one()
        data = json.loads(row.record)
        for d in data["deadlines"]:
            if d["kind"] != "DEADLINE_KIND_NOTIFICATION":
                d["due_time"] = due
        conn.execute(
            update(t.detentions)
            .where(t.detentions.c.detention_id == detention_id)
            .values(record=json.dumps(data))
        )
        conn.execute(
            update(t.detention_deadlines)
            .where(
                t.detention_deadlines.c.detention_id == detention_id,
                t.detention_deadlines.c.kind != "notification",
            )
            .values(due_ms=due_ms)
        )


def ts_of(at: datetime) -> Any:
    from tests.node.api.ipr_fixtures import ts

    return ts(at)


def test_webhooks_refused_retried_and_their_secrets_kept_sealed(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs")
    holder = holder_token(nl)
    with client(nl, token=holder) as h:
        code, reason = wire_error(
            h.ipr.CreateIprWebhook,
            S.CreateIprWebhookRequest(
                webhook=S.IprWebhook(url="http://hooks.acme.example/x", events=["detention.*"]),
                request_id="w-1",
            ),
            holder,
        )
        assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "FIELD_INVALID")
        with pytest.raises(errors.InvalidArgument) as exc:
            h.create_webhook("https://hooks.acme.example/x", ["alert.received"])
        assert "detention.*, recordation.* events only" in exc.value.message
        with pytest.raises(errors.InvalidArgument):
            h.delete_webhook("iprWebhooks/a/b")
        assert count(nl, t.webhooks) == 0
        assert count(nl, t.requests) == 0
        first = h.create_webhook("https://hooks.acme.example/x", ["detention.*"], "w-2")
        again = h.create_webhook("https://hooks.acme.example/x", ["detention.*"], "w-2")
        assert again == first  # the same webhook and its secret, once registered
        assert count(nl, t.webhooks) == 1
    with nl.node.store.engine.connect() as conn:
        stored = b"".join(conn.execute(select(t.requests.c.response)).scalars())
        sealed = conn.execute(select(t.webhooks.c.secret)).scalar_one()
    assert first.secret.encode() not in stored  # the idempotency record keeps no secret
    assert first.secret.encode() not in bytes(sealed)
    # an analyst may register one for IPR events, not for alerts
    with client(nl, "analyst") as a:
        a.create_webhook("https://siem.nl-customs.example/ipr", ["detention_report.*"])
        with pytest.raises(errors.InvalidArgument):
            a.create_webhook("https://siem.nl-customs.example/ipr", ["*"])
