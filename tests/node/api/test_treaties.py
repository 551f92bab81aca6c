"""TreatyService through real nodes and a real gateway, on SQLite and PostgreSQL.

What an officer learns about the treaties of their agency: exactly the
treaties the agency is a party of, with their standing (in force, not yet,
ended, not signed by a party), everything they permit, and the field
allow-lists as paths of the protos. Errors carry their own reasons.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from click.testing import CliRunner
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from intelshare import devfed, errors
from intelshare.cli import _load_plugins, cli
from intelshare.treaty import SignedTreatyDoc, Treaty
from intelshare.v1 import envelope_pb2, treaty_service_pb2, treaty_service_pb2_grpc
from node.cli.treaty_client import TreatyClient
from node.schema import field_paths
from tests.node.conftest import CUSTOMS, TASKFORCE, Cluster, RunningNode, treaties

pytestmark = pytest.mark.slow

S = treaty_service_pb2
_load_plugins()


def client(node: RunningNode, role: str = "analyst") -> TreatyClient:
    return TreatyClient(
        node.target, ca_pem=node.ca_pem, server_name=node.agency, token=node.tokens[role]
    )


def treaty_doc(
    cluster: Cluster,
    treaty_id: str,
    *,
    version: int = 1,
    parties: tuple[str, ...] = ("nl-customs", "de-customs"),
    start: int = -30,
    end: int = 365,
    signers: tuple[str, ...] | None = None,
    base: str = CUSTOMS,
) -> SignedTreatyDoc:
    """A treaty like ``base`` (of tests.node.conftest) with other id, parties, dates, signers."""
    data = next(t for t in treaties() if t["id"] == base)
    today = datetime.now(UTC).date()
    data.update(
        id=treaty_id,
        version=version,
        parties=list(parties),
        valid={
            "from": (today + timedelta(days=start)).isoformat(),
            "until": (today + timedelta(days=end)).isoformat(),
        },
    )
    return devfed.sign_by_parties(Treaty.from_mapping(data), cluster.fed.agencies, signers)


def by_kind(t: S.AgencyTreaty) -> dict[str, S.TreatyKindFields]:
    return {f.kind: f for f in t.fields}


def test_an_agency_sees_exactly_its_treaties_in_the_protos_vocabulary(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs")
    be = cluster.start_node("be-police")
    # be-police holds the customs treaty too (obtained out of band) but is no party of it.
    be.node.trust.keep(cluster.fed.signed_treaty(CUSTOMS))

    with client(nl) as c:
        assert [t.treaty_id for t in c.list_all_treaties()] == [TASKFORCE, CUSTOMS]
    with client(be) as c:
        listed = c.list_all_treaties()
    assert [t.name for t in listed] == [f"treaties/{TASKFORCE}"]

    tf = listed[0]
    assert (tf.version, list(tf.versions)) == (1, [1])
    assert (tf.in_force, tf.standing) == (True, S.TREATY_STANDING_IN_FORCE)
    assert list(tf.unsigned_parties) == []
    assert list(tf.parties) == ["be-police", "de-customs", "nl-customs"]
    assert list(tf.partners) == ["de-customs", "nl-customs"]
    assert list(tf.kinds) == ["alert", "alert_update", "case_entry", "hit_report"]
    assert list(tf.categories) == ["counterfeit_goods", "narcotics"]
    assert (tf.max_handling, tf.max_tlp) == (envelope_pb2.HANDLING_CODE_H1, envelope_pb2.TLP_AMBER)
    assert tf.retention_days == 365
    assert tf.onward_sharing == S.ONWARD_SHARING_FORBIDDEN
    assert list(tf.review_required_for) == ["wanted_person"]
    today = datetime.now(UTC).date()
    assert tf.start_time.ToDatetime().date() == today - timedelta(days=30)
    # end_time is the first instant after the last valid day
    assert tf.end_time.ToDatetime().date() == today + timedelta(days=366)

    fields = by_kind(tf)
    assert sorted(fields) == ["alert", "alert_update", "case_entry", "hit_report"]
    alert = fields["alert"]
    assert alert.message == "intelshare.v1.Alert"
    assert "expire_time" in alert.paths
    assert "expires_at" not in alert.paths
    assert "subjects.persons.name" in alert.paths
    assert "subjects.persons.passport_number" not in alert.paths
    # updates are redacted with the alert's list
    assert list(fields["alert_update"].paths) == list(alert.paths)
    hit = fields["hit_report"]
    assert (hit.message, list(hit.paths)) == ("intelshare.v1.Hit", ["found", "found_time", "place"])
    entry = fields["case_entry"]
    assert (entry.message, list(entry.paths)) == (
        "intelshare.v1.CaseEntry",
        ["attachments_digest", "subjects", "text"],
    )


def test_every_listed_path_is_a_field_of_its_message(cluster: Cluster) -> None:
    from google.protobuf import descriptor_pool

    nl = cluster.start_node("nl-customs")
    with client(nl) as c:
        listed = c.list_all_treaties()
    pool = descriptor_pool.Default()
    checked = 0
    for t in listed:
        for kf in t.fields:
            descriptor = pool.FindMessageTypeByName(kf.message)
            for path in kf.paths:
                assert field_paths.resolves(descriptor, path), (t.treaty_id, kf.kind, path)
                checked += 1
    assert checked > 30


def test_treaties_not_in_force_are_listed_with_why(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs")
    trust = nl.node.trust
    # An amendment of the task force that be-police has not signed: v1 stays the one in use.
    trust.keep(
        treaty_doc(
            cluster,
            TASKFORCE,
            version=2,
            base=TASKFORCE,
            parties=("nl-customs", "be-police", "de-customs"),
            signers=("nl-customs", "de-customs"),
        )
    )
    trust.keep(treaty_doc(cluster, "later-treaty", start=2, end=30))
    trust.keep(treaty_doc(cluster, "past-treaty", start=-60, end=-2))

    with client(nl) as c:
        listed = {t.treaty_id: t for t in c.list_all_treaties()}
        assert list(listed) == sorted([CUSTOMS, TASKFORCE, "later-treaty", "past-treaty"])
        tf = listed[TASKFORCE]
        assert (tf.version, list(tf.versions), tf.in_force) == (1, [1, 2], True)

        later, past = listed["later-treaty"], listed["past-treaty"]
        assert (later.in_force, later.standing) == (False, S.TREATY_STANDING_NOT_YET_VALID)
        assert "valid from" in later.standing_detail
        assert (past.in_force, past.standing) == (False, S.TREATY_STANDING_ENDED)

        v2 = c.get_treaty(TASKFORCE, version=2)
        assert (v2.version, v2.in_force, v2.standing) == (
            2,
            False,
            S.TREATY_STANDING_NOT_SIGNED,
        )
        assert list(v2.unsigned_parties) == ["be-police"]
        assert "be-police" in v2.standing_detail
        assert c.get_treaty(TASKFORCE).version == 1

        usable = c.list_all_treaties(in_force_only=True)
        assert [t.treaty_id for t in usable] == [TASKFORCE, CUSTOMS]


def test_listing_pages_with_sealed_tokens(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs")
    for n in range(3):
        nl.node.trust.keep(treaty_doc(cluster, f"extra-{n}"))
    seen: list[str] = []
    with client(nl) as c:
        token = ""
        pages = 0
        while True:
            page = c.list_treaties(page_size=2, page_token=token)
            pages += 1
            seen.extend(t.treaty_id for t in page.treaties)
            assert len(page.treaties) <= 2
            token = page.next_page_token
            if not token:
                break
        assert pages == 3
        first = c.list_treaties(page_size=2)
        with pytest.raises(errors.PageTokenInvalid) as changed:
            c.list_treaties(page_size=2, page_token=first.next_page_token, in_force_only=True)
        assert "filters changed" in changed.value.message
        with pytest.raises(errors.InvalidArgument) as negative:
            c.list_treaties(page_size=-1)
        assert negative.value.violations == {"page_size": ">= 0"}
    assert seen == sorted([CUSTOMS, TASKFORCE, "extra-0", "extra-1", "extra-2"])
    with client(nl, "liaison") as other, pytest.raises(errors.PageTokenInvalid) as stolen:
        other.list_treaties(page_size=2, page_token=first.next_page_token)
    assert "another officer" in stolen.value.message


def _raw_error(node: RunningNode, request: Any) -> tuple[grpc.StatusCode, Any, dict[str, str]]:
    """Code, ErrorInfo and BadRequest violations of a failed GetTreaty, as a non-Python client sees them."""
    with client(node) as c:
        stub = treaty_service_pb2_grpc.TreatyServiceStub(c.channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetTreaty(request, metadata=c.metadata, timeout=10)
    err = caught.value
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    bad = error_details_pb2.BadRequest()
    for detail in status.details:
        if detail.Is(info.DESCRIPTOR):
            detail.Unpack(info)
        elif detail.Is(bad.DESCRIPTOR):
            detail.Unpack(bad)
    violations = {v.field: v.description for v in bad.field_violations}
    return err.code(), info, violations


def test_not_found_and_bad_names_have_their_reasons(cluster: Cluster) -> None:
    be = cluster.start_node("be-police")
    be.node.trust.keep(cluster.fed.signed_treaty(CUSTOMS))

    # A treaty the node holds but be-police is no party of is not found, like an unknown one.
    for treaty_id in (CUSTOMS, "no-such-treaty"):
        code, info, _ = _raw_error(
            be, S.TreatyServiceGetTreatyRequest(name=f"treaties/{treaty_id}")
        )
        assert (code, info.reason, info.domain) == (
            grpc.StatusCode.NOT_FOUND,
            "TREATY_NOT_FOUND",
            "intelshare.v1",
        )
        assert dict(info.metadata) == {"treaty_id": treaty_id}

    code, info, _ = _raw_error(
        be, S.TreatyServiceGetTreatyRequest(name=f"treaties/{TASKFORCE}", version=7)
    )
    assert (code, info.reason) == (grpc.StatusCode.NOT_FOUND, "TREATY_NOT_FOUND")
    assert dict(info.metadata) == {"treaty_id": TASKFORCE, "version": "7"}

    for name in ("", "treaty/x", "treaties/", "treaties/Has Spaces", f"treaties/{TASKFORCE}/v1"):
        code, info, violations = _raw_error(be, S.TreatyServiceGetTreatyRequest(name=name))
        assert (code, info.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "NAME_INVALID"), name
        assert violations == {"name": "expected treaties/{treaty_id}"}

    with (
        TreatyClient(be.target, ca_pem=be.ca_pem, server_name=be.agency, token="wrong") as c,
        pytest.raises(errors.Unauthenticated),
    ):
        c.list_treaties()


def test_officers_command_lists_and_shows(cluster: Cluster) -> None:
    be = cluster.start_node("be-police")
    ca = cluster.fed.ca_file
    conn = ["--node", be.target, "--ca", str(ca), "--server-name", be.agency]
    env = {"INTELSHARE_TOKEN": be.tokens["analyst"]}
    runner = CliRunner()

    listed = runner.invoke(cli, ["treaties", "list", *conn], env=env, catch_exceptions=False)
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0].split()[:3] == ["TREATY", "VERSION", "STANDING"]
    assert len(lines) == 3
    assert lines[2].startswith(TASKFORCE)
    assert "in force" in lines[2]
    assert "H1 / TLP:AMBER" in lines[2]

    shown = runner.invoke(cli, ["treaties", "show", TASKFORCE, *conn], env=env)
    assert shown.exit_code == 0, shown.output
    assert "onward sharing" in shown.output
    assert "forbidden" in shown.output
    assert "alert (intelshare.v1.Alert):" in shown.output
    assert "    expire_time" in shown.output.splitlines()
    assert "expires_at" not in shown.output

    missing = runner.invoke(cli, ["treaties", "show", CUSTOMS, *conn], env=env)
    assert missing.exit_code == 2
    assert "[TREATY_NOT_FOUND]" in missing.output
