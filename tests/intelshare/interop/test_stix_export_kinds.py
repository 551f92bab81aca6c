"""STIX 2.1 export of recordations, detentions, detention reports and risk profiles.

The same engine as alerts (:mod:`intelshare.interop.stix`): every bundle is
checked with stix2-validator (0 errors, 0 warnings; check 103 off, see
conftest), over fixed samples and hypothesis-generated records of every kind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stix2patterns.validator import run_validator

from intelshare.errors import InvalidArgument, Malformed
from intelshare.interop import ExportContext, draft_from_stix, export_records, record_objects
from intelshare.interop import extension as ext
from intelshare.interop.markings import TLP2_IDS
from intelshare.interop.patterns import criteria_pattern
from intelshare.v1 import alert_pb2, detention_pb2, recordation_pb2, risk_profile_pb2

from .conftest import objects_of, validate
from .kind_samples import (
    CRITERIA,
    detention,
    detention_report,
    recordation,
    risk_profile,
)

REPO = Path(__file__).resolve().parents[3]
NL = ExportContext(holder_agency="nl-customs", onward_rules={"ipr-enforcement": "within_treaty"})
DE = ExportContext(
    holder_agency="de-customs",
    onward_rules={"ipr-enforcement": "within_treaty", "customs-mutual-assistance": "forbidden"},
)


def _export(*records: Message, ctx: ExportContext = NL) -> str:
    return str(export_records(records, ctx).serialize(pretty=True))


def _by_type(text: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for o in objects_of(text):
        out.setdefault(o["type"], []).append(o)
    return out


def _props(obj: dict[str, Any]) -> dict[str, Any]:
    return dict(obj["extensions"][ext.EXTENSION_ID])


SAMPLES = {
    "recordation": (recordation, NL),
    "received recordation": (lambda: recordation(received=True), DE),
    "detention": (detention, NL),
    "detention report": (detention_report, NL),
    "received detention report": (lambda: detention_report(received=True), DE),
    "risk profile": (risk_profile, NL),
    "received risk profile": (lambda: risk_profile(received=True), DE),
    "risk profile without criteria": (lambda: risk_profile(criteria=None), NL),
}


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_every_kind_exports_to_a_valid_bundle(sample: str) -> None:
    make, ctx = SAMPLES[sample]
    out = _export(make(), ctx=ctx)
    assert validate(out) == ([], [])
    assert '"x_' not in out
    assert objects_of(_export(make(), ctx=ctx)) == objects_of(out)


def test_a_bundle_may_mix_kinds_with_shared_objects_once() -> None:
    out = _export(recordation(), detention(), detention_report(), risk_profile())
    assert validate(out) == ([], [])
    ids = [o["id"] for o in objects_of(out)]
    assert len(ids) == len(set(ids))


def test_recordation_is_a_grouping_of_holder_rights_goods_and_supply_chain() -> None:
    out = _export(recordation())
    objs = _by_type(out)
    grouping = objs["grouping"][0]
    assert grouping["context"] == "unspecified"
    props = _props(grouping)
    assert props["record_kind"] == "recordation"
    assert props["state"] == "granted"
    assert props["valid_for"] == ["de-customs@ipr-enforcement"]
    assert props["authenticity_features"] == ["hologram on the inner tongue"]
    assert props["usual_routes"] == ["VN > NL: sea"]
    assert props["expire_time"] == "2027-07-18T14:13:20Z"
    holder = next(i for i in objs["identity"] if i["name"] == "Acme Sports B.V.")
    assert holder["roles"] == ["rights holder"]
    assert "bp@acme.example" in holder["contact_information"]
    assert _props(holder)["eori"] == "NL123456789"
    maker = next(i for i in objs["identity"] if i["name"] == "Acme Vietnam Ltd")
    assert maker["roles"] == ["authorised manufacturer"]
    right = objs["intelshare-ip-right"][0]
    assert (right["right_type"], right["name"], right["office"]) == ("trade_mark", "ACME", "EUIPO")
    goods = objs["intelshare-goods"][0]
    assert goods["gtins"] == ["4006381333931"]
    assert set(grouping["object_refs"]) == {holder["id"], maker["id"], right["id"], goods["id"]}
    assert grouping["object_marking_refs"] == [TLP2_IDS["AMBER"]]
    # The grantor's notes never leave through an export.
    assert "slow to answer" not in out


def test_received_recordation_states_the_onward_rule_of_its_treaty() -> None:
    objs = objects_of(_export(recordation(received=True), ctx=DE))
    statement = next(o for o in objs if o.get("definition_type") == "statement")
    text = statement["definition"]["statement"]
    assert "Received by de-customs from nl-customs under treaty ipr-enforcement" in text
    assert "only to parties of treaty ipr-enforcement" in text
    kinds = ("grouping", "intelshare-goods", "intelshare-ip-right")
    own = [o for o in objs if o["type"] in kinds]
    assert own
    assert all(statement["id"] in o["object_marking_refs"] for o in own)
    grouping = next(o for o in objs if o["type"] == "grouping")
    assert statement["id"] in grouping["object_marking_refs"]
    assert _props(grouping)["treaty_id"] == "ipr-enforcement"


def test_detention_stays_amber_strict_and_leaves_notes_and_officers_out() -> None:
    out = _export(detention())
    objs = _by_type(out)
    report = objs["report"][0]
    assert report["report_types"] == ["observed-data"]
    assert report["object_marking_refs"] == [TLP2_IDS["AMBER_STRICT"]]
    props = _props(report)
    assert props["record_kind"] == "detention"
    assert props["state"] == "holder_notified"
    assert props["procedure"] == "standard"
    assert props["deadlines"] == ["holder_answer: last day 2026-10-05 (Europe/Amsterdam), open"]
    assert props["recordations"] == ["recordations/acme-2026"]
    goods = objs["intelshare-goods"][0]
    assert (goods["quantity"], goods["unit"], goods["estimated_value"]) == (
        1200,
        "pair",
        "96000.50 EUR",
    )
    assert objs["intelshare-container"][0]["seal_number"] == "S123"
    assert objs["intelshare-vessel"][0]["imo_number"] == "9703291"
    consignee = next(i for i in objs["identity"] if i.get("roles") == ["consignee"])
    assert consignee["identity_class"] == "unknown"
    assert consignee["contact_information"] == "Dorpsstraat 1"
    assert report["modified"] == "2026-09-21T15:13:20.000Z"
    assert "port authority" not in out
    assert "officer-jan" not in out


def test_received_detention_report_names_its_treaty_and_rule() -> None:
    objs = _by_type(_export(detention_report(received=True), ctx=DE))
    report = objs["report"][0]
    props = _props(report)
    assert props["direction"] == "received"
    assert props["treaty_id"] == "ipr-enforcement"
    assert props["recordations"] == ["nl-customs:recordations/acme-2026"]
    assert report["description"] == "Fake ACME shoes declared as sports articles."
    statement = objs["marking-definition"]
    assert any("ipr-enforcement" in str(m.get("definition")) for m in statement)
    assert objs["intelshare-ip-right"][0]["name"] == "ACME"


def test_risk_profile_is_an_indicator_with_the_criteria_as_a_pattern() -> None:
    objs = _by_type(_export(risk_profile()))
    indicator = objs["indicator"][0]
    assert run_validator(indicator["pattern"]) == []
    assert "intelshare-declaration:hs_code LIKE '3004%'" in indicator["pattern"]
    assert "consignee_name = 'O\\'BRIEN PHARMA'" in indicator["pattern"]
    assert indicator["valid_from"] == "2026-09-21T14:13:20Z"
    assert indicator["valid_until"] == "2026-12-20T14:13:20Z"
    report = objs["report"][0]
    assert report["object_refs"] == [indicator["id"]]
    props = _props(report)
    assert props["action"] == "physical_inspection"
    assert json.loads(props["criteria"]) == CRITERIA


def test_withheld_criteria_give_no_indicator_and_withdrawal_revokes() -> None:
    p = risk_profile(criteria=None)
    p.state = risk_profile_pb2.RISK_PROFILE_STATE_WITHDRAWN
    out = _export(p)
    assert validate(out) == ([], [])
    objs = _by_type(out)
    assert "indicator" not in objs
    report = objs["report"][0]
    assert report["revoked"] is True
    assert report["object_refs"] == [report["created_by_ref"]]


def test_a_change_is_a_new_version_of_the_same_ids() -> None:
    first = objects_of(_export(recordation()))
    changed = recordation()
    changed.state = recordation_pb2.RECORDATION_STATE_WITHDRAWN
    changed.update_time.FromSeconds(changed.update_time.seconds + 60)
    later = objects_of(_export(changed))
    assert [o["id"] for o in later] == [o["id"] for o in first]
    grouping = next(o for o in later if o["type"] == "grouping")
    assert grouping["revoked"] is True
    assert grouping["modified"] == "2026-09-21T14:14:20.000Z"


def test_unexportable_and_unstored_records_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="cannot be exported"):
        record_objects(alert_pb2.Subjects(), NL)
    with pytest.raises(InvalidArgument, match="only a stored record"):
        record_objects(detention_pb2.Detention(name="detentions/x"), NL)


def test_every_kind_follows_the_published_schema() -> None:
    schema = json.loads((REPO / "docs/stix" / ext.SCHEMA_FILE).read_text())
    defs = schema["$defs"]
    out = _export(*(make() for make, _ctx in SAMPLES.values()))
    for o in objects_of(out):
        props = (o.get("extensions") or {}).get(ext.EXTENSION_ID)
        if props is None:
            continue
        if o["type"] in ("report", "grouping"):
            jsonschema.validate(props, {**defs["report-properties"], "$defs": defs})
        elif o["type"] == "identity":
            key = f"identity-{o['identity_class']}-properties"
            jsonschema.validate(props, {**defs[key], "$defs": defs})
        else:
            jsonschema.validate(o, {**defs[o["type"]], "$defs": defs})


# --- hypothesis: any record of any kind exports to a valid bundle ------------------------

_text = st.text(max_size=30)
_times = st.integers(1_600_000_000, 2_000_000_000).map(lambda s: Timestamp(seconds=s))


def _field(fd: FieldDescriptor, depth: int) -> st.SearchStrategy[Any] | None:
    if fd.message_type is not None:
        if fd.message_type.full_name == "google.protobuf.Timestamp":
            one: st.SearchStrategy[Any] = _times
        elif fd.message_type.full_name == "google.protobuf.Struct" or depth >= 3:
            return None
        else:
            one = messages(message_factory.GetMessageClass(fd.message_type), depth + 1)
    elif fd.enum_type is not None:
        one = st.integers(0, max(v.number for v in fd.enum_type.values))
    elif fd.type == FieldDescriptor.TYPE_BOOL:
        one = st.booleans()
    elif fd.type in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64):
        one = st.integers(-5, 10**9)
    else:
        one = _text
    return st.lists(one, max_size=2) if fd.is_repeated else one


def messages(cls: type[Message], depth: int = 0) -> st.SearchStrategy[Any]:
    fields = {fd.name: s for fd in cls.DESCRIPTOR.fields if (s := _field(fd, depth)) is not None}
    return st.fixed_dictionaries({}, optional=fields).map(lambda kw: cls(**kw))


_codes = st.text(alphabet="0123456789", min_size=2, max_size=6)
_leaf = st.one_of(
    st.builds(lambda v: {"hs_prefix": v}, st.lists(_codes, min_size=1, max_size=3)),
    st.builds(lambda v: {"origin_country": v}, st.lists(st.sampled_from(["CN", "IN"]), min_size=1)),
    st.builds(
        lambda v: {"consignor": v}, st.lists(st.sampled_from(["eori:NL1", "vat:X'1"]), min_size=1)
    ),
    st.builds(lambda v: {"gtin": [v]}, st.sampled_from(["4006381333931"])),
    st.builds(lambda v: {"container_owner_prefix": [v]}, st.sampled_from(["MSCU"])),
    st.builds(lambda v: {"value_per_kg_below": v}, st.floats(0.01, 1e6)),
    st.builds(lambda v: {"quantity_above": v}, st.integers(0, 10**6)),
)
criteria_docs = st.recursive(
    _leaf,
    lambda inner: st.builds(
        lambda k, v: {k: v},
        st.sampled_from(["all_of", "any_of"]),
        st.lists(inner, min_size=1, max_size=3),
    ),
    max_leaves=8,
).map(lambda c: c if set(c) & {"all_of", "any_of"} else {"all_of": [c]})


@st.composite
def records(draw: st.DrawFn) -> Message:
    cls = draw(
        st.sampled_from(
            [
                recordation_pb2.Recordation,
                detention_pb2.Detention,
                detention_pb2.DetentionReport,
                risk_profile_pb2.RiskProfile,
            ]
        )
    )
    record = draw(messages(cls))
    collection = {
        "Recordation": "recordations",
        "Detention": "detentions",
        "DetentionReport": "detentionReports",
        "RiskProfile": "riskProfiles",
    }[cls.DESCRIPTOR.name]
    record.name = f"{collection}/{draw(st.uuids()).hex}"
    record.create_time.FromSeconds(draw(st.integers(1_600_000_000, 2_000_000_000)))
    if isinstance(record, risk_profile_pb2.RiskProfile) and draw(st.booleans()):
        s = Struct()
        s.update(draw(criteria_docs))
        record.criteria.CopyFrom(s)
    return record


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(records(), st.sampled_from([NL, DE]))
def test_any_record_of_any_kind_exports_to_a_valid_bundle(
    record: Message, ctx: ExportContext
) -> None:
    out = _export(record, ctx=ctx)
    assert validate(out) == ([], [])
    assert objects_of(_export(record, ctx=ctx)) == objects_of(out)


@settings(max_examples=100, deadline=None)
@given(criteria_docs)
def test_any_criteria_translate_to_a_valid_stix_pattern(criteria: dict[str, Any]) -> None:
    pattern = criteria_pattern(criteria)
    assert pattern is not None
    assert run_validator(pattern) == []


@pytest.mark.parametrize("make", [recordation, detention, detention_report, risk_profile])
def test_importing_another_kind_as_an_alert_is_refused_with_the_reason(make: Any) -> None:
    with pytest.raises(Malformed, match="not an alert"):
        draft_from_stix(_export(make()))
