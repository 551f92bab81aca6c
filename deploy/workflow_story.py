"""``make run``'s treaty-workflow story: review before release, onward sharing, recall.

Played after the other stories by :func:`workflow_story` with the demo's
``Federation`` (``deploy/local_federation.py``, which calls it with one line):

13. nl-customs issues a wanted-person alert to the task force; the treaty
    reserves wanted persons for review, so it waits; its author may not
    approve it; an approver at nl-customs releases it.
14. de-customs asks to pass an alert it received under the customs treaty
    on to be-police (which did not receive it) under a bilateral
    de-customs/be-police treaty; the customs treaty allows that only with
    the originator's consent; nl-customs consents; the copy arrives at
    be-police with its provenance and only what both treaties allow; a
    later revocation by nl-customs reaches it.

The demo has three agencies, so the "fourth" agency of the issue is
be-police, a non-recipient of that alert. The bilateral treaty is not in
``demo-federation.yaml``: this story drafts it, has both parties sign it
and publishes it to the gateway itself, as an operator would.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

from intelshare import devfed
from intelshare.treaty import Treaty

BILATERAL = "de-be-bilateral"
TASKFORCE = "counterfeit-medicines-taskforce"
CUSTOMS = "customs-mutual-assistance"


def bilateral_treaty(today: date) -> Treaty:
    return Treaty.from_mapping(
        {
            "id": BILATERAL,
            "title": "Bilateral exchange between German customs and the Belgian police",
            "parties": ["de-customs", "be-police"],
            "valid": {
                "from": (today - timedelta(days=1)).isoformat(),
                "until": (today + timedelta(days=365)).isoformat(),
            },
            "kinds": ["alert", "alert_update"],
            "categories": ["counterfeit_goods", "narcotics"],
            "max_handling": {"code": "H2", "tlp": "AMBER"},
            "fields": {
                "alert": [
                    "kind",
                    "urgency",
                    "description",
                    "subjects.persons.name",
                    "subjects.persons.nationality",
                    "subjects.containers",
                    "subjects.companies",
                    "handling",
                    "tlp",
                    "expires_at",
                ]
            },
            "retention_days": 90,
            "purpose": "counterfeit medicines reaching Belgium through German ports",
            "onward_sharing": "forbidden",
        }
    )


def workflow_story(f: Any, demo: Any) -> None:
    """Steps 13 and 14 (see the module docstring).

    ``demo`` is the ``local_federation`` module itself (run as a script), for
    its helpers: ``heading``, ``say``, ``wait_for`` and ``ROOT``.
    """
    heading, say, wait_for, root = demo.heading, demo.say, demo.wait_for, demo.ROOT

    nl = f.officers[("nl-customs", "liaison")]
    approver = f.add_officer("nl-customs", "approver")
    de = f.officers[("de-customs", "liaison")]
    be = f.officers[("be-police", "analyst")]

    heading("13. A wanted-person alert waits for review; an approver at nl-customs releases it")
    say(
        "The task-force treaty says review_required_for: [wanted_person]. The alert is held\n"
        "(sent nowhere) until an officer other than its author approves it; the envelopes\n"
        "then carry the approval in their signed header, which the gateway and be-police check."
    )
    issued = nl.run(
        "alert",
        "issue",
        "--kind",
        "wanted_person",
        "--to",
        f"be-police@{TASKFORCE}",
        "--description",
        "Director of Medi Trade Logistics BV, sought for trafficking counterfeit medicines",
        "--handling",
        "H1",
        "--tlp",
        "AMBER",
        "--person",
        "name=Jan Visser,nationality=NL,dob=1978-04-12",
    )
    alert_id = issued.stdout.splitlines()[0].split("alerts/", 1)[1].strip()
    approver.run("alert", "pending")
    nl.run("alert", "approve", alert_id, expect_fail=True)  # liaison officers do not approve
    approver.run("alert", "approve", alert_id)

    def at_be() -> bool:
        listed = be.json("alert", "list", "--direction", "received", "--kind", "wanted_person")
        alerts = listed.get("alerts", listed) if isinstance(listed, dict) else listed
        return bool(alerts)

    wait_for("the approved alert at be-police", at_be)
    be.run("alert", "list", "--direction", "received", "--kind", "wanted_person")

    heading("14. de-customs passes a received alert on to be-police, with nl-customs' consent")
    treaty = devfed.sign_by_parties(bilateral_treaty(date.today()), f.fed.agencies)
    path = root / "treaties" / f"{BILATERAL}.v1.treaty"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(treaty.to_bytes())
    f.cli_print(
        "treaty",
        "publish",
        str(path),
        "--gateway",
        f"127.0.0.1:{f.gateway_port}",
        "--identity",
        str(f.fed.agencies["de-customs"].dir),
    )
    say(
        "The customs treaty allows onward sharing with the originator's consent. The copy\n"
        "holds only what both treaties allow (no date of birth, no passport number)."
    )
    received = de.json("alert", "list", "--direction", "received")
    alerts = received.get("alerts", received) if isinstance(received, dict) else received
    original = next(a for a in alerts if a.get("treaty_id") == CUSTOMS)
    original_id = str(original["name"]).split("/", 1)[1]
    de.run(
        "alert",
        "forward",
        original_id,
        "--to",
        "be-police",
        "--treaty",
        BILATERAL,
        "--reason",
        "the consignee's director is in Antwerp",
    )

    def asked() -> list[dict[str, Any]]:
        return list(nl.json("alert", "consents", "--state", "pending"))

    requests = wait_for("the consent request at nl-customs", asked)
    nl.run("alert", "consents")
    nl.run("alert", "consent", "grant", str(requests[0]["name"]))

    def copy_at_be() -> str:
        listed = be.json("alert", "list", "--direction", "received")
        found = listed.get("alerts", listed) if isinstance(listed, dict) else listed
        for a in found:
            if a.get("origin_agency") == "de-customs":
                return str(a["name"]).split("/", 1)[1]
        return ""

    copy_id = wait_for("the forwarded copy at be-police", copy_at_be)
    shown = be.json("alert", "show", copy_id)
    say(f"provenance at be-police: {json.dumps(shown.get('provenance', {}), indent=2)}")
    de.run("alert", "forwards")

    say("\nnl-customs revokes its alert; de-customs passes the recall on to be-police.")
    # The consent request named the alert as nl-customs knows it.
    origin = str(requests[0]["alert"]).split("/", 1)[1]
    nl.run("alert", "revoke", origin, "--reason", "subject arrested")

    def recalled() -> bool:
        return be.json("alert", "show", copy_id).get("state") == "ALERT_STATE_REVOKED"

    wait_for("the recall at be-police", recalled)
    be.run("alert", "show", copy_id)


__all__ = ["bilateral_treaty", "workflow_story"]
