"""The google.api.field_behavior annotations say what the services do (issue 22, item 6).

A client written from the protos alone reads REQUIRED, OUTPUT_ONLY and
IMMUTABLE from the annotations; these tests hold them to the validation
the node runs, and to the conventions every request follows.
"""

from __future__ import annotations

import importlib
import pkgutil
from datetime import UTC, datetime

import pytest
from google.api import field_behavior_pb2 as fb
from google.protobuf.descriptor import Descriptor, FieldDescriptor

import intelshare.v1
from intelshare import errors
from intelshare.v1 import alert_pb2, case_pb2
from node.schema import alert as alert_schema
from node.schema import case as case_schema


def _messages() -> list[Descriptor]:
    out: list[Descriptor] = []
    for info in pkgutil.iter_modules(intelshare.v1.__path__):
        if info.name.endswith("_pb2"):
            module = importlib.import_module(f"intelshare.v1.{info.name}")
            out.extend(module.DESCRIPTOR.message_types_by_name.values())
    return out


def behaviors(field: FieldDescriptor) -> set[str]:
    return {fb.FieldBehavior.Name(b) for b in field.GetOptions().Extensions[fb.field_behavior]}


def _with(message: Descriptor, behavior: str) -> set[str]:
    return {f.name for f in message.fields if behavior in behaviors(f)}


MESSAGES = _messages()
REQUESTS = [m for m in MESSAGES if m.name.endswith("Request")]


def test_every_request_id_is_optional() -> None:
    with_id = [m for m in REQUESTS if "request_id" in m.fields_by_name]
    assert len(with_id) > 30
    for m in with_id:
        assert behaviors(m.fields_by_name["request_id"]) == {"OPTIONAL"}, m.full_name


def test_the_resource_of_every_get_create_and_update_is_required() -> None:
    checked = 0
    for m in REQUESTS:
        verb = next((v for v in ("Get", "Create", "Update") if m.name.startswith(v)), None)
        if verb is None or m.full_name.startswith("intelshare.v1.TreatyService"):
            continue
        if verb == "Get":
            key = "name" if "name" in m.fields_by_name else None
        else:
            resource = m.name[len(verb) : -len("Request")]
            key = next(
                (f.name for f in m.fields if f.message_type and f.message_type.name == resource),
                None,
            )
        if key is None:
            continue
        assert "REQUIRED" in behaviors(m.fields_by_name[key]), m.full_name
        if verb == "Update" and "update_mask" in m.fields_by_name:
            assert "REQUIRED" in behaviors(m.fields_by_name["update_mask"]), m.full_name
        checked += 1
    assert checked >= 15


def _required_by_validation(violations: dict[str, str], prefix: str) -> set[str]:
    return {path.removeprefix(prefix).split(".")[0].split("[")[0] for path in violations}


def test_an_alert_s_required_fields_are_those_validation_asks_for() -> None:
    with pytest.raises(errors.InvalidArgument) as refused:
        alert_schema.validate_new_alert(
            alert_pb2.Alert(), own_agency="nl-customs", now=datetime.now(UTC), max_days=90
        )
    asked = _required_by_validation(refused.value.violations, "alert.")
    assert asked == _with(alert_pb2.Alert.DESCRIPTOR, "REQUIRED")
    assert asked == {"kind", "description", "handling", "tlp", "expire_time", "recipients"}


def test_a_case_s_required_fields_are_those_validation_asks_for() -> None:
    with pytest.raises(errors.InvalidArgument) as refused:
        case_schema.validate_new_case(case_pb2.Case(), own_agency="nl-customs")
    asked = _required_by_validation(refused.value.violations, "case.")
    assert asked == _with(case_pb2.Case.DESCRIPTOR, "REQUIRED")


def test_what_only_the_node_sets_is_output_only_and_never_required() -> None:
    alert = alert_pb2.Alert.DESCRIPTOR
    assert {
        "state",
        "origin_agency",
        "direction",
        "deliveries",
        "hits",
        "create_time",
        "update_time",
        "revoke_time",
        "revision",
        "received",
    } <= _with(alert, "OUTPUT_ONLY")
    assert _with(alert, "IMMUTABLE") == {"kind", "treaty_id", "recipients", "categories"}
    for m in MESSAGES:
        for f in m.fields:
            b = behaviors(f)
            assert not ({"OUTPUT_ONLY", "REQUIRED"} <= b), f.full_name
            assert not ({"OUTPUT_ONLY", "IMMUTABLE"} <= b), f.full_name


def test_a_recordation_s_and_a_detention_s_required_fields_are_those_validation_asks_for() -> None:
    from intelshare.v1 import detention_pb2, recordation_pb2
    from node.ipr import validate

    now = datetime.now(UTC)
    for check, message, prefix in (
        (validate.validate_new_recordation, recordation_pb2.Recordation(), "recordation."),
        (validate.validate_new_detention, detention_pb2.Detention(), "detention."),
    ):
        with pytest.raises(errors.InvalidArgument) as refused:
            check(message, now)
        asked = _required_by_validation(refused.value.violations, prefix)
        assert asked == _with(message.DESCRIPTOR, "REQUIRED"), prefix
