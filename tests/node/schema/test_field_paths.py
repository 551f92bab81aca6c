"""Record paths of treaty allow-lists, translated into the protos' field paths."""

from __future__ import annotations

from datetime import timedelta

import pytest

from intelshare.treaty import DATA_KINDS, RECORD_KINDS
from node.schema import field_paths
from node.schema.alert import alert_to_record
from tests.node.conftest import demo_alert


def _leaves(value: object, prefix: str = "") -> set[str]:
    if isinstance(value, dict):
        out: set[str] = set()
        for key, sub in value.items():
            out |= _leaves(sub, f"{prefix}.{key}" if prefix else key)
        return out
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return set().union(*(_leaves(item, prefix) for item in value))
    return {prefix}


def test_every_kind_of_the_federation_has_its_message() -> None:
    assert set(field_paths.KIND_MESSAGES) == DATA_KINDS | RECORD_KINDS


@pytest.mark.parametrize(
    ("kind", "record", "proto"),
    [
        ("alert", "expires_at", "expire_time"),
        ("alert_update", "expires_at", "expire_time"),
        ("hit_report", "found_at", "found_time"),
        ("risk_profile", "valid_from", "start_time"),
        ("risk_profile", "valid_until", "end_time"),
        ("alert", "subjects.persons.name", "subjects.persons.name"),
        ("recordation", "holder.name", "holder.name"),
    ],
)
def test_paths_translate_both_ways(kind: str, record: str, proto: str) -> None:
    assert field_paths.to_proto_path(kind, record) == proto
    assert field_paths.to_record_path(kind, proto) == record
    message = field_paths.KIND_MESSAGES[kind].message.DESCRIPTOR
    assert field_paths.resolves(message, proto)


def test_a_kind_without_a_message_keeps_its_paths() -> None:
    assert field_paths.message_name("toy_kind") == ""
    assert field_paths.to_proto_path("toy_kind", "expires_at") == "expires_at"


def test_every_path_of_an_alert_record_is_a_field_of_alert() -> None:
    record = alert_to_record(demo_alert())
    paths = _leaves(record)
    assert "expires_at" in paths  # the record's own name
    alert = field_paths.KIND_MESSAGES["alert"].message.DESCRIPTOR
    for path in paths:
        assert field_paths.resolves(alert, field_paths.to_proto_path("alert", path)), path


def test_every_path_of_a_risk_profile_record_is_a_field_of_risk_profile() -> None:
    from google.protobuf.struct_pb2 import Struct

    from intelshare.v1 import risk_profile_pb2
    from node.kinds.risk_profiles import profile_to_record
    from tests.node.conftest import expire_in

    criteria = Struct()
    criteria.update({"all_of": [{"hs_prefix": "3004"}]})
    profile = risk_profile_pb2.RiskProfile(
        title="t",
        rationale="r",
        action=risk_profile_pb2.RISK_ACTION_SCAN,
        start_time=expire_in(timedelta(days=0)),
        end_time=expire_in(timedelta(days=3)),
        criteria=criteria,
    )
    record = profile_to_record(profile)
    assert {"valid_from", "valid_until", "criteria"} <= set(record)
    message = field_paths.KIND_MESSAGES["risk_profile"].message.DESCRIPTOR
    for key in record:
        assert field_paths.resolves(message, field_paths.to_proto_path("risk_profile", key)), key


def test_resolves_refuses_what_is_not_a_field() -> None:
    alert = field_paths.KIND_MESSAGES["alert"].message.DESCRIPTOR
    assert not field_paths.resolves(alert, "expires_at")
    assert not field_paths.resolves(alert, "subjects.persons.shoe_size")
    assert not field_paths.resolves(alert, "description.more")
    assert not field_paths.resolves(alert, "expire_time.seconds")
