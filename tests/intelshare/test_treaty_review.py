"""The review rule (``review_required_for``): one decision for node and gateway alike."""

from __future__ import annotations

import dataclasses

import pytest

from intelshare import errors
from intelshare.treaty import (
    ALL_KINDS,
    CONTROL_KINDS,
    Handling,
    Tlp,
    Treaty,
    alert_kind_name,
    decide,
    decide_review,
    review_matches,
)
from intelshare.v1 import alert_pb2
from tests.intelshare.test_treaty import CUSTOMS, TASKFORCE, load_demo


@pytest.fixture
def demo() -> dict[str, Treaty]:
    return load_demo()


def test_alert_kind_names_are_the_implied_categories() -> None:
    assert alert_kind_name(alert_pb2.ALERT_KIND_WANTED_PERSON) == "wanted_person"
    assert alert_kind_name(alert_pb2.ALERT_KIND_COUNTERFEIT_GOODS) == "counterfeit_goods"
    assert alert_kind_name(alert_pb2.ALERT_KIND_UNSPECIFIED) == ""
    assert alert_kind_name(9999) == ""
    # No alert kind shares its name with a message kind: a rule naming one is unambiguous.
    names = {alert_kind_name(v) for v in alert_pb2.AlertKind.values()} - {""}
    assert names & ALL_KINDS == set()


def test_the_demo_rule_covers_alerts_of_kind_wanted_person(demo: dict[str, Treaty]) -> None:
    """``wanted_person`` is an alert kind (and its implied category), not one of the
    task force's categories: the rule matches the alert's kind whatever its
    categories say, and the kind's category wherever only a header is seen."""
    task = demo[TASKFORCE]
    assert "wanted_person" not in task.categories
    # The sending node knows the alert's kind: a false category does not hide it.
    d = decide_review(
        task, kind="alert", categories=["counterfeit_goods"], alert_kind="wanted_person"
    )
    assert not d
    assert d.reason == "REVIEW_REQUIRED"
    assert d.metadata == {
        "treaty_id": TASKFORCE,
        "treaty_version": str(task.version),
        "rule": "review_required_for",
        "matched": "wanted_person",
    }
    with pytest.raises(errors.ReviewRequired) as exc:
        d.raise_if_refused()
    assert exc.value.metadata["rule"] == "review_required_for"
    assert isinstance(exc.value, errors.PolicyRefused)
    # The gateway sees the kind's category in the signed header.
    for kind in ("alert", "alert_update", "hit_report", "case_entry"):
        assert review_matches(task, kind=kind, categories=["narcotics", "wanted_person"]) == (
            "wanted_person",
        )
    # Nothing to review: another kind, or another treaty.
    assert decide_review(
        task, kind="alert", categories=["counterfeit_goods"], alert_kind="narcotics"
    )
    assert decide_review(demo[CUSTOMS], kind="alert", categories=["wanted_person"])


def test_control_kinds_never_need_review(demo: dict[str, Treaty]) -> None:
    task = demo[TASKFORCE]
    for kind in CONTROL_KINDS:
        assert decide_review(
            task, kind=kind, categories=["wanted_person"], alert_kind="wanted_person"
        )


def test_a_rule_may_name_a_message_kind(demo: dict[str, Treaty]) -> None:
    task = dataclasses.replace(demo[TASKFORCE], review_required_for=("case_entry",))
    assert review_matches(task, kind="case_entry", categories=["narcotics"]) == ("case_entry",)
    assert not review_matches(task, kind="alert", categories=["narcotics"])


def test_decide_checks_review_after_kind_and_before_categories(demo: dict[str, Treaty]) -> None:
    task = demo[TASKFORCE]
    args = dict(
        in_force=True,
        sender="nl-customs",
        recipients=["be-police"],
        kind="alert",
        categories=["wanted_person"],
        handling=Handling.H1,
        tlp=Tlp.AMBER,
    )
    # Without the review step (the default, until every caller passes it): the category.
    assert decide(task, **args).reason == "CATEGORY_NOT_PERMITTED"  # type: ignore[arg-type]
    assert decide(task, review=True, **args).reason == "REVIEW_REQUIRED"  # type: ignore[arg-type]
    # A permitted category, but the alert's own kind is reserved.
    args["categories"] = ["counterfeit_goods"]
    assert decide(task, review=True, **args)  # type: ignore[arg-type]
    refused = decide(task, review=True, alert_kind="wanted_person", **args)  # type: ignore[arg-type]
    assert refused.reason == "REVIEW_REQUIRED"
    # More fundamental refusals come first.
    assert (
        decide(task, review=True, alert_kind="wanted_person", **{**args, "in_force": False}).reason  # type: ignore[arg-type]
        == "TREATY_NOT_IN_FORCE"
    )
    assert (
        decide(
            task, review=True, alert_kind="wanted_person", **{**args, "kind": "case_membership"}
        ).reason  # type: ignore[arg-type]
        == "KIND_NOT_PERMITTED"
    )
