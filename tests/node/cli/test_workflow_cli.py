"""``intelshare alert pending|approve|reject|forward|forwards|consents|consent`` against real nodes.

Review before release and onward sharing as officers type them, through
click's runner in this process against a real gateway and real nodes
(SQLite and PostgreSQL), connection settings from the environment. Every
refusal is checked in the words the command prints: the node's message
and its reason code.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner, Result

from intelshare.cli import _load_plugins, cli
from intelshare.ids import new_message_id
from intelshare.v1 import alert_pb2
from tests.node.cli.test_cases_cli import env_for
from tests.node.conftest import CUSTOMS, TASKFORCE, Cluster, RunningNode, demo_alert, wait_for
from tests.node.kinds.test_workflows import (  # noqa: F401  (fed: the workflow treaties)
    BILATERAL,
    customs_alert,
    fed,
    received,
    wanted_alert,
    workflow,
)

_load_plugins()

pytestmark = pytest.mark.slow


def run(node: RunningNode, *args: str, role: str = "liaison") -> Result:
    if role not in node.tokens:
        workflow(node, role).close()  # adds an officer with that role
    return CliRunner().invoke(
        cli, ["alert", *args], env=env_for(node, role), catch_exceptions=False
    )


def refused(result: Result, reason: str, *words: str) -> str:
    """The command failed with ``reason`` and said each of ``words``."""
    assert result.exit_code == 2, result.output
    line = next((x for x in result.output.splitlines() if x.startswith("error: ")), "")
    assert line, result.output
    assert line.endswith(f"[{reason}]"), line
    for w in words:
        assert w in line, (w, line)
    return line


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_review_commands(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs")
    cluster.start_node("be-police")
    with workflow(nl, "liaison") as liaison:
        held = liaison.create_alert(wanted_alert(("be-police", TASKFORCE)))
        other = liaison.create_alert(
            wanted_alert(("be-police", TASKFORCE), description="A second wanted person")
        )
        active = liaison.create_alert(
            demo_alert(
                recipients=[alert_pb2.AlertRecipient(agency_id="be-police", treaty_id=TASKFORCE)]
            )
        )
    held_id, other_id = held.name.split("/")[1], other.name.split("/")[1]

    # The list filter: the alerts held for review, not the one sent at once.
    listed = as_json(run(nl, "list", "--state", "pending_review", "--json"))
    assert sorted(a["name"] for a in listed) == sorted([held.name, other.name])
    assert all(a["state"] == "ALERT_STATE_PENDING_REVIEW" for a in listed)
    table = run(nl, "list", "--state", "pending-review")
    assert table.exit_code == 0, table.output
    assert "pending review" in table.output
    assert active.name.split("/")[1] not in table.output
    active_only = as_json(run(nl, "list", "--state", "active", "--json"))
    assert [a["name"] for a in active_only] == [active.name]
    refused(
        run(nl, "list", "--state", "waiting"),
        "FIELD_INVALID",
        "--state 'waiting'",
        "pending_review",
    )

    # Liaison officers do not approve; the node names the role.
    refused(run(nl, "pending"), "ROLE_NOT_PERMITTED", "role liaison may not approve")
    refused(run(nl, "approve", held_id), "ROLE_NOT_PERMITTED", "role liaison may not approve")

    # An approver sees each alert with what its partner would receive.
    shown = run(nl, "pending", role="approver")
    assert shown.exit_code == 0, shown.output
    assert f"{held.name}  treaty {TASKFORCE} (review for wanted_person), written by liaison:" in (
        shown.output
    )
    assert "be-police" in shown.output
    assert "without subjects.persons.date_of_birth, subjects.persons.passport_number" in (
        shown.output
    )
    pending = as_json(run(nl, "pending", "--json", role="approver"))
    assert sorted(p["alert"]["name"] for p in pending) == sorted([held.name, other.name])
    assert pending[0]["previews"][0]["permitted"] is True

    # Refusals in the command's own words.
    refused(
        run(nl, "reject", held_id, "--reason", "", role="approver"),
        "FIELD_INVALID",
        "a rejection needs a reason",
    )
    refused(
        run(nl, "approve", "alerts/x/y", role="approver"),
        "NAME_INVALID",
        "name must look like alerts/{id}",
    )
    refused(
        run(nl, "approve", active.name, role="approver"),
        "REVIEW_NOT_PENDING",
        f"alert {active.name} is not waiting for review",
    )
    refused(
        run(nl, "approve", held_id, "--treaty", CUSTOMS, role="approver"),
        "REVIEW_NOT_PENDING",
        f"is not waiting for review under treaty {CUSTOMS}",
    )
    with workflow(nl, "admin") as admin:
        own = admin.create_alert(wanted_alert(("be-police", TASKFORCE), description="Own"))
    refused(
        run(nl, "approve", own.name, role="admin"),
        "APPROVER_IS_AUTHOR",
        f"wrote alert {own.name}; a review needs a second officer",
    )

    # Approve and reject.
    released = run(nl, "approve", held_id, role="approver")
    assert released.exit_code == 0, released.output
    assert released.output.strip() == f"{held.name} released to be-police"
    rejected = run(nl, "reject", other_id, "--reason", "not for the task force", role="approver")
    assert rejected.output.strip() == f"{other.name} rejected"
    refused(
        run(nl, "approve", held_id, role="approver"),
        "REVIEW_NOT_PENDING",
        "is not waiting for review",
    )
    left = as_json(run(nl, "pending", "--json", role="approver"))
    assert [p["alert"]["name"] for p in left] == [own.name]
    states = {a["name"]: a["state"] for a in as_json(run(nl, "list", "--json"))}
    assert states[held.name] == "ALERT_STATE_ACTIVE"
    assert states[other.name] == "ALERT_STATE_REVOKED"  # held for everyone, rejected: never sent
    assert [a["name"] for a in as_json(run(nl, "list", "--state", "pending_review", "--json"))] == [
        own.name
    ]


def _consent_request(nl: RunningNode, state: str = "pending") -> dict[str, Any]:
    def asked() -> list[dict[str, Any]]:
        return list(as_json(run(nl, "consents", "--state", state, "--json")))

    return wait_for(asked, what=f"a {state} consent request at {nl.agency}")[0]


def test_forward_and_consent_commands(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs")
    de = cluster.start_node("de-customs")
    be = cluster.start_node("be-police")
    issued = customs_alert(nl)
    got = wait_for(lambda: received(de), what="the alert at de-customs")[0]
    got_id = got.name.split("/")[1]

    # Refusals at the forwarder, in the command's words.
    refused(
        run(de, "forward", got_id, "--to", "be-police", "--treaty", BILATERAL, role="analyst"),
        "ROLE_NOT_PERMITTED",
        "role analyst may not",
    )
    refused(
        run(
            de,
            "forward",
            got_id,
            "--to",
            "be-police",
            "--treaty",
            BILATERAL,
            "--field",
            "subjects.persons.passport_number",
        ),
        "FIELD_NOT_PERMITTED",
        f"nothing of alert {got.name} is allowed by both",
    )
    refused(
        run(de, "forward", got_id, "--to", "nl-customs", "--treaty", BILATERAL),
        "NOT_A_PARTY",
        "not passed on to its originator",
    )
    refused(
        run(de, "forward", "01NOSUCHALERT", "--to", "be-police", "--treaty", BILATERAL),
        "NAME_INVALID",
    )
    refused(
        run(de, "forward", new_message_id(), "--to", "be-police", "--treaty", BILATERAL),
        "ALERT_NOT_FOUND",
    )
    with nl.client("liaison") as c:
        c.create_alert(
            demo_alert(
                description="Under the task force",
                recipients=[alert_pb2.AlertRecipient(agency_id="de-customs", treaty_id=TASKFORCE)],
            )
        )
    taskforce_copy = wait_for(
        lambda: [a for a in received(de) if a.description == "Under the task force"],
        what="the task-force alert at de-customs",
    )[0]
    refused(
        run(de, "forward", taskforce_copy.name, "--to", "be-police", "--treaty", BILATERAL),
        "ONWARD_SHARING_FORBIDDEN",
        f"treaty {TASKFORCE}",
        "forbids passing on what was received under it",
    )

    # Asked: it waits for nl-customs' consent.
    asked = run(
        de,
        "forward",
        got_id,
        "--to",
        "be-police",
        "--treaty",
        BILATERAL,
        "--reason",
        "the consignee is in Antwerp",
    )
    assert asked.exit_code == 0, asked.output
    assert "awaiting consent" in asked.output
    request = _consent_request(nl)
    assert request["alert"] == issued.name
    assert request["requester"] == "de-customs"
    assert request["onward_recipients"] == ["be-police"]
    assert request["onward_treaty_id"] == BILATERAL
    assert request["reason"] == "the consignee is in Antwerp"
    table = run(nl, "consents")
    assert request["name"] in table.output
    assert "pending" in table.output
    request_id = request["name"].removeprefix("consentRequests/")
    refused(
        run(nl, "consent", "grant", request_id, role="analyst"),
        "ROLE_NOT_PERMITTED",
        "role analyst may not",
    )
    refused(
        run(nl, "consent", "refuse", request_id, "--reason", ""),
        "FIELD_INVALID",
        "a refusal needs a reason",
    )
    refused(run(nl, "consent", "grant", "nope"), "NAME_INVALID", "consentRequests/{id}")
    refused(
        run(nl, "consent", "grant", new_message_id()),
        "CONSENT_REQUEST_NOT_FOUND",
        "there is no consent request",
    )
    granted = run(nl, "consent", "grant", request_id, role="approver")
    assert granted.exit_code == 0, granted.output
    assert granted.output.startswith(f"{request['name']} granted (consent ")
    refused(
        run(nl, "consent", "refuse", request_id, "--reason", "changed my mind"),
        "CONSENT_REQUEST_DECIDED",
        "was already granted",
    )
    wait_for(lambda: received(be), what="the forwarded copy at be-police")

    def forwards_in(state: str) -> list[dict[str, Any]]:
        found = as_json(run(de, "forwards", got_id, "--json"))
        return [f for f in found if f["state"] == state]

    sent = wait_for(lambda: forwards_in("FORWARD_STATE_SENT"), what="the forward sent")
    assert sent[0]["consent_id"]
    assert "subjects.persons.passport_number" in sent[0]["removed_fields"]

    # Asked again for more, and refused: the forwarder's list says why.
    again = run(de, "forward", got_id, "--to", "be-police", "--treaty", BILATERAL)
    assert again.exit_code == 0, again.output
    second = wait_for(
        lambda: [
            r
            for r in as_json(run(nl, "consents", "--state", "pending", "--json"))
            if r["name"] != request["name"]
        ],
        what="the second request",
    )[0]
    answer = run(
        nl,
        "consent",
        "refuse",
        second["name"],
        "--reason",
        "once is enough",
    )
    assert answer.output.strip() == f"{second['name']} refused"
    wait_for(lambda: forwards_in("FORWARD_STATE_REFUSED"), what="the refusal at de-customs")
    listing = run(de, "forwards")
    assert "REFUSED (once is enough)" in listing.output
    assert "sent" in listing.output
    refused_list = as_json(run(nl, "consents", "--state", "refused", "--json"))
    assert [r["refusal_reason"] for r in refused_list] == ["once is enough"]
