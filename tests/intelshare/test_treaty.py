"""Treaty model, canonical form, signatures, policy decisions and redaction.

The two demo treaties (tests/intelshare/data/treaties.yaml, copied from the
shared demo federation) are the fixtures: they differ on purpose, so one
alert shows different fields to different partners.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from intelshare import errors
from intelshare.errors import (
    AgencyUnknown,
    CategoryNotPermitted,
    InvalidArgument,
    Malformed,
    NotAParty,
    SignatureInvalid,
)
from intelshare.ids import key_id
from intelshare.keys import raw_public
from intelshare.treaty import (
    ALL_KINDS,
    CONTROL_KINDS,
    DATA_KINDS,
    Decision,
    Handling,
    OnwardSharing,
    SignedTreatyDoc,
    Tlp,
    Treaty,
    check_fields,
    decide,
    decide_header,
    document_digest,
    in_force,
    kind_name,
    onward_sharing_allowed,
    redact,
    retention_until,
    review_required,
    sign,
    signing_message,
    treaties_from_yaml,
    unpermitted_paths,
    verify_signatures,
)
from intelshare.v1 import envelope_pb2, treaty_pb2

DATA = Path(__file__).parent / "data" / "treaties.yaml"
CUSTOMS = "customs-mutual-assistance"
TASKFORCE = "counterfeit-medicines-taskforce"
AGENCIES = ("nl-customs", "de-customs", "be-police")
#: Inside both demo treaties' windows.
AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SIGNED_AT = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)


# --- helpers ----------------------------------------------------------------------


class DictKeys:
    """A PublicKeyLookup over fixed keys, the way the directory answers."""

    def __init__(self, keys: Mapping[str, ed25519.Ed25519PrivateKey]) -> None:
        self._keys = {
            (agency, key_id(raw_public(k.public_key()))): k.public_key()
            for agency, k in keys.items()
        }

    def signing_key(self, agency_id: str, key_id: str, at: datetime) -> ed25519.Ed25519PublicKey:
        try:
            return self._keys[(agency_id, key_id)]
        except KeyError:
            raise SignatureInvalid(audit_detail=f"no key {key_id} for {agency_id}") from None

    def encryption_key(self, agency_id: str) -> tuple[str, x25519.X25519PublicKey]:
        raise AgencyUnknown(agency_id)


def load_demo() -> dict[str, Treaty]:
    return {t.id: t for t in treaties_from_yaml(DATA.read_bytes())}


def demo_mapping(treaty_id: str) -> dict[str, Any]:
    import yaml

    data = yaml.safe_load(DATA.read_text())
    return next(copy.deepcopy(t) for t in data["treaties"] if t["id"] == treaty_id)


def kid(private: ed25519.Ed25519PrivateKey) -> str:
    return key_id(raw_public(private.public_key()))


def sign_by(
    doc: SignedTreatyDoc,
    agencies: tuple[str, ...] | list[str],
    keys: Mapping[str, ed25519.Ed25519PrivateKey],
    when: datetime = SIGNED_AT,
) -> SignedTreatyDoc:
    for agency in agencies:
        sig = sign(doc.document, agency, keys[agency], kid(keys[agency]), sign_time=when)
        doc = doc.with_signature(sig)
    return doc


def demo_alert() -> dict[str, Any]:
    """The scenario's alert: counterfeit medicines in container MSCU1234566."""
    return {
        "kind": "alert",
        "urgency": "high",
        "description": "Container of counterfeit medicines expected at Rotterdam",
        "subjects": {
            "persons": [
                {
                    "name": "Jan Example",
                    "date_of_birth": "1980-02-29",
                    "nationality": "NL",
                    "passport_number": "NX1234567",
                    "phone": "+31 6 0000 0000",
                }
            ],
            "companies": [{"name": "Example Pharma Trading BV", "role": "consignee"}],
            "containers": [{"number": "MSCU1234566"}],
        },
        "handling": "H1",
        "tlp": "AMBER",
        "evaluation": {"source": "B", "information": "2"},
        "expires_at": "2026-12-31T00:00:00Z",
        "informant": {"code": "NL-INF-0042"},
    }


@pytest.fixture(scope="module")
def demo() -> dict[str, Treaty]:
    return load_demo()


@pytest.fixture(scope="module")
def party_keys() -> dict[str, ed25519.Ed25519PrivateKey]:
    return {a: ed25519.Ed25519PrivateKey.generate() for a in AGENCIES}


@pytest.fixture(scope="module")
def lookup(party_keys: dict[str, ed25519.Ed25519PrivateKey]) -> DictKeys:
    return DictKeys(party_keys)


@pytest.fixture(scope="module")
def signed_taskforce(
    demo: dict[str, Treaty], party_keys: dict[str, ed25519.Ed25519PrivateKey]
) -> SignedTreatyDoc:
    treaty = demo[TASKFORCE]
    return sign_by(SignedTreatyDoc.unsigned(treaty), treaty.parties, party_keys)


# --- the model and its validation ------------------------------------------------


def test_demo_treaties_parse(demo: dict[str, Treaty]) -> None:
    customs, task = demo[CUSTOMS], demo[TASKFORCE]
    assert customs.parties == ("de-customs", "nl-customs")
    assert customs.valid_from == date(2026, 1, 1)
    assert customs.valid_until == date(2030, 12, 31)
    assert customs.max_handling is Handling.H2
    assert customs.max_tlp is Tlp.AMBER
    assert customs.onward_sharing is OnwardSharing.WITH_ORIGINATOR_CONSENT
    assert customs.version == 1
    assert customs.purpose == ""
    assert "subjects.persons.passport_number" in customs.fields["alert"]
    assert task.parties == ("be-police", "de-customs", "nl-customs")
    assert task.categories == ("counterfeit_goods", "narcotics")
    assert task.max_handling is Handling.H1
    assert set(task.fields) == {"alert", "case_entry"}
    assert task.review_required_for == ("wanted_person",)
    assert task.label == "counterfeit-medicines-taskforce v1"


def test_single_treaty_yaml_and_equal_treaties_hash_alike(demo: dict[str, Treaty]) -> None:
    import yaml

    text = yaml.safe_dump(demo_mapping(CUSTOMS))
    again = Treaty.from_yaml(text)
    assert again == demo[CUSTOMS]
    assert hash(again) == hash(demo[CUSTOMS])
    assert copy.deepcopy(again) is again


def _invalid(mapping: Mapping[str, Any]) -> dict[str, str]:
    with pytest.raises(InvalidArgument) as info:
        Treaty.from_mapping(mapping)
    assert info.value.violations, "a refusal must say what is wrong"
    return info.value.violations


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        (lambda m: m.update(categorie=["narcotics"]), "categorie", "unknown key"),
        (lambda m: m["valid"].update(since="2026-01-01"), "valid.since", "unknown key"),
        (lambda m: m["max_handling"].update(colour="RED"), "max_handling.colour", "unknown key"),
        (lambda m: m.update(parties=[]), "parties", "must not be empty"),
        (lambda m: m.update(parties=["nl-customs"]), "parties", "at least two"),
        (
            lambda m: m.update(parties=["nl-customs", "de-customs", "nl-customs"]),
            "parties[2]",
            "twice",
        ),
        (lambda m: m.update(parties=["NL Customs", "de-customs"]), "parties[0]", "not an id"),
        (lambda m: m["valid"].update(until=date(2025, 12, 31)), "valid.until", "before"),
        (lambda m: m["valid"].update(until="2026-02-30"), "valid.until", "calendar date"),
        (lambda m: m["valid"].update(until="31.12.2030"), "valid.until", "YYYY-MM-DD"),
        (
            lambda m: m["valid"].update(until=datetime(2030, 1, 1, tzinfo=UTC)),
            "valid.until",
            "not a date and time",
        ),
        (lambda m: m["valid"].pop("from"), "valid.from", "required"),
        (lambda m: m["max_handling"].update(code="H4"), "max_handling.code", "H0, H1"),
        (lambda m: m["max_handling"].update(tlp="WHITE"), "max_handling.tlp", "CLEAR"),
        (lambda m: m.update(onward_sharing="freely"), "onward_sharing", "forbidden"),
        (lambda m: m.update(kinds=["alert", "gossip"]), "kinds[1]", "not a record kind"),
        (lambda m: m.update(kinds=["alert", "receipt"]), "kinds[1]", "control kind"),
        (lambda m: m.update(kinds=["alert", "acknowledgement"]), "kinds[1]", "control kind"),
        (lambda m: m.update(kinds=["alert", "alert_revocation"]), "kinds[1]", "control kind"),
        (lambda m: m.update(categories=[]), "categories", "must not be empty"),
        (lambda m: m.update(categories=["Fire Arms"]), "categories[0]", "snake_case"),
        (
            lambda m: m["fields"].update(case_membership=["x"]),
            "fields.case_membership",
            "not among the treaty's kinds",
        ),
        (lambda m: m["fields"].update(receipt=["x"]), "fields.receipt", "control kind"),
        (lambda m: m["fields"]["alert"].append("subjects..name"), "fields.alert[16]", "dotted"),
        (lambda m: m["fields"]["alert"].append("kind"), "fields.alert[16]", "twice"),
        (lambda m: m["fields"].update(alert="kind"), "fields.alert", "list"),
        (lambda m: m.update(retention_days=0), "retention_days", "between 1"),
        (lambda m: m.update(retention_days="1095"), "retention_days", "integer"),
        (lambda m: m.update(retention_days=True), "retention_days", "integer"),
        (lambda m: m.update(version=0), "version", "between 1"),
        (lambda m: m.update(title="  "), "title", "required"),
        (lambda m: m.update(title=12), "title", "string"),
        (lambda m: m.pop("onward_sharing"), "onward_sharing", "required"),
        (lambda m: m.update(review_required_for=["wanted person"]), "review_required_for[0]", ""),
    ],
)
def test_invalid_treaties_name_the_field(change: Any, key: str, words: str) -> None:
    mapping = demo_mapping(CUSTOMS)
    change(mapping)
    violations = _invalid(mapping)
    assert key in violations, violations
    assert words in violations[key]


def test_every_problem_is_reported_at_once() -> None:
    mapping = demo_mapping(CUSTOMS)
    mapping.update(parties=[], onward_sharing="sometimes", colour="blue")
    mapping["valid"]["until"] = date(2020, 1, 1)
    violations = _invalid(mapping)
    assert {"parties", "onward_sharing", "colour", "valid.until"} <= set(violations)
    with pytest.raises(InvalidArgument, match="invalid treaty: colour: unknown key"):
        Treaty.from_mapping(mapping)


def test_missing_required_keys_are_reported_once() -> None:
    violations = _invalid({"id": "t"})
    assert violations["max_handling"] == "required"
    assert "max_handling.code" not in violations  # no noise about the placeholder
    assert violations["parties"] == "required"


def test_direct_construction_validates(demo: dict[str, Treaty]) -> None:
    with pytest.raises(InvalidArgument) as info:
        dataclasses.replace(demo[CUSTOMS], parties=("nl-customs", "nl-customs"))
    assert "parties[1]" in info.value.violations
    with pytest.raises(InvalidArgument):
        dataclasses.replace(demo[CUSTOMS], valid_until=date(2025, 1, 1))


def test_construction_sorts_sets(demo: dict[str, Treaty]) -> None:
    t = dataclasses.replace(demo[CUSTOMS], parties=("nl-customs", "de-customs"))
    assert t.parties == ("de-customs", "nl-customs")
    assert t == demo[CUSTOMS]


def test_not_a_mapping_and_bad_yaml_are_refused() -> None:
    with pytest.raises(InvalidArgument):
        Treaty.from_mapping(["not", "a", "mapping"])  # type: ignore[arg-type]
    with pytest.raises(Malformed, match="not valid YAML"):
        Treaty.from_yaml("id: [unclosed")
    with pytest.raises(InvalidArgument, match="duplicate key 'kinds' on line 3"):
        Treaty.from_yaml("id: a\nkinds: [alert]\nkinds: [case_entry]\n")
    with pytest.raises(InvalidArgument, match="treaties"):
        treaties_from_yaml("treaties: []")


def test_treaties_from_yaml_prefixes_violations() -> None:
    text = DATA.read_text().replace("until: 2027-05-31", "until: 2020-05-31")
    with pytest.raises(InvalidArgument) as info:
        treaties_from_yaml(text)
    assert "treaties[1].valid.until" in info.value.violations


def test_tlp_amber_strict_alias(demo: dict[str, Treaty]) -> None:
    mapping = demo_mapping(CUSTOMS)
    mapping["max_handling"]["tlp"] = "AMBER+STRICT"
    treaty = Treaty.from_mapping(mapping)
    assert treaty.max_tlp is Tlp.AMBER_STRICT
    assert b'"tlp":"AMBER_STRICT"' in treaty.canonical_bytes()
    aliased = treaty.canonical_bytes().replace(b"AMBER_STRICT", b"AMBER+STRICT")
    with pytest.raises(Malformed, match="canonical"):
        Treaty.from_canonical(aliased)


def test_enums_match_the_wire_contract() -> None:
    assert [h.value for h in Handling] == [
        envelope_pb2.HANDLING_CODE_H0,
        envelope_pb2.HANDLING_CODE_H1,
        envelope_pb2.HANDLING_CODE_H2,
        envelope_pb2.HANDLING_CODE_H3,
    ]
    assert Tlp.AMBER_STRICT.value == envelope_pb2.TLP_AMBER_STRICT
    assert Tlp.RED.value == envelope_pb2.TLP_RED
    names = {kind_name(v) for v in envelope_pb2.MessageKind.values()} - {""}
    assert names == set(ALL_KINDS)
    assert DATA_KINDS.isdisjoint(CONTROL_KINDS)
    assert kind_name(envelope_pb2.MESSAGE_KIND_UNSPECIFIED) == ""
    assert kind_name(99) == ""


# --- canonical form ----------------------------------------------------------------


def test_canonical_bytes_exact(demo: dict[str, Treaty]) -> None:
    doc = demo[TASKFORCE].canonical_bytes()
    expected = (
        b'{"categories":["counterfeit_goods","narcotics"],"fields":{"alert":["description",'
        b'"evaluation","expires_at","handling","kind","subjects.companies","subjects.containers",'
        b'"subjects.persons.name","subjects.persons.nationality","subjects.vehicles",'
        b'"subjects.vessels","tlp","urgency"],"case_entry":["attachments_digest","subjects",'
        b'"text"]},"id":"counterfeit-medicines-taskforce","kinds":["alert","alert_update",'
        b'"case_entry","hit_report"],"max_handling":{"code":"H1","tlp":"AMBER"},'
        b'"onward_sharing":"forbidden","parties":["be-police","de-customs","nl-customs"],'
        b'"purpose":"","retention_days":365,"review_required_for":["wanted_person"],'
        b'"title":"Joint task force on counterfeit medicines (memorandum of understanding '
        b'between customs and police)","valid":{"from":"2026-06-01","until":"2027-05-31"},'
        b'"version":1}'
    )
    assert doc == expected
    assert Treaty.from_canonical(doc) == demo[TASKFORCE]


def test_canonical_is_utf8_not_escaped(demo: dict[str, Treaty]) -> None:
    t = dataclasses.replace(demo[CUSTOMS], title="Zoll \u2194 Douane", purpose="Amtshilfe \u00e9")
    doc = t.canonical_bytes()
    assert "Zoll ↔ Douane".encode() in doc
    assert "Amtshilfe é".encode() in doc
    assert Treaty.from_canonical(doc) == t
    escaped = json.dumps(json.loads(doc), sort_keys=True, separators=(",", ":")).encode()
    assert escaped != doc  # \u escapes
    with pytest.raises(Malformed):
        Treaty.from_canonical(escaped)


def test_titles_are_nfc_normalised(demo: dict[str, Treaty]) -> None:
    decomposed = "Entrai\u0302de douanie\u0300re"
    t = dataclasses.replace(demo[CUSTOMS], title=decomposed)
    assert t.title == "Entraîde douanière"
    doc = demo[CUSTOMS].canonical_bytes().replace(demo[CUSTOMS].title.encode(), decomposed.encode())
    with pytest.raises(Malformed, match="canonical"):
        Treaty.from_canonical(doc)


def _reordered(doc: bytes) -> list[bytes]:
    data = json.loads(doc)
    variants = [
        doc + b"\n",
        b" " + doc,
        json.dumps(data, sort_keys=True).encode(),  # default separators
        json.dumps(data, sort_keys=False, separators=(",", ":")).encode()
        if list(data) != sorted(data)
        else json.dumps(dict(reversed(list(data.items()))), separators=(",", ":")).encode(),
        doc.replace(b'"parties":["be-police","de-customs"', b'"parties":["de-customs","be-police"'),
        doc.replace(b',"purpose":""', b""),  # an omitted default
        doc.replace(b'"version":1}', b'"version":1,"version":1}'),  # duplicate key
        doc.replace(b'"retention_days":365', b'"retention_days":365.0'),
        doc.replace(b'"retention_days":365', b'"retention_days":3.65e2'),
    ]
    return [v for v in variants if v != doc]


def test_from_canonical_refuses_every_other_spelling(demo: dict[str, Treaty]) -> None:
    doc = demo[TASKFORCE].canonical_bytes()
    variants = _reordered(doc)
    assert len(variants) == 9
    for variant in variants:
        with pytest.raises(InvalidArgument):
            Treaty.from_canonical(variant)


@pytest.mark.parametrize("junk", [b"", b"\xff\xfe", b"[]", b"null", b"{", b'{"id":"x"}'])
def test_from_canonical_refuses_junk(junk: bytes) -> None:
    with pytest.raises(InvalidArgument):
        Treaty.from_canonical(junk)


def test_to_proto(demo: dict[str, Treaty]) -> None:
    pb = demo[TASKFORCE].to_proto()
    assert pb.treaty_id == TASKFORCE
    assert pb.version == 1
    assert list(pb.parties) == ["be-police", "de-customs", "nl-customs"]
    assert pb.valid_from.ToDatetime(tzinfo=UTC) == datetime(2026, 6, 1, tzinfo=UTC)
    end = pb.valid_until.ToDatetime(tzinfo=UTC)
    assert end.date() == date(2027, 5, 31)
    assert pb.valid_until.nanos == 999_999_999
    assert pb.max_handling == "H1"
    assert pb.max_tlp == "AMBER"
    assert list(pb.fields["case_entry"].paths) == ["attachments_digest", "subjects", "text"]
    assert pb.onward_sharing == "forbidden"
    assert pb.retention_days == 365
    assert list(pb.review_required_for) == ["wanted_person"]


def test_validity_window_is_inclusive_utc(demo: dict[str, Treaty]) -> None:
    t = demo[TASKFORCE]
    assert not t.valid_at(datetime(2026, 5, 31, 23, 59, 59, 999999, tzinfo=UTC))
    assert t.valid_at(datetime(2026, 6, 1, tzinfo=UTC))
    assert t.valid_at(datetime(2027, 5, 31, 23, 59, 59, 999999, tzinfo=UTC))
    assert not t.valid_at(datetime(2027, 6, 1, tzinfo=UTC))
    # 01:00 on 1 June in UTC+2 is still 31 May in UTC
    assert not t.valid_at(datetime(2026, 6, 1, 1, 0, tzinfo=timezone(timedelta(hours=2))))
    with pytest.raises(InvalidArgument):
        t.valid_at(datetime(2026, 7, 1))  # naive


# --- signatures --------------------------------------------------------------------


def test_signature_is_over_the_labelled_digest(
    demo: dict[str, Treaty], party_keys: dict[str, ed25519.Ed25519PrivateKey]
) -> None:
    doc = demo[CUSTOMS].canonical_bytes()
    assert signing_message(doc) == b"intelshare/v1 treaty\x00" + hashlib.sha256(doc).digest()
    assert document_digest(doc) == hashlib.sha256(doc).hexdigest()
    sig = sign(doc, "nl-customs", party_keys["nl-customs"], kid(party_keys["nl-customs"]))
    assert sig.agency_id == "nl-customs"
    assert sig.key_id == kid(party_keys["nl-customs"])
    party_keys["nl-customs"].public_key().verify(sig.signature, signing_message(doc))
    assert abs(sig.sign_time.ToDatetime(tzinfo=UTC) - datetime.now(UTC)) < timedelta(minutes=1)


def test_sign_refuses_a_non_party_and_a_non_canonical_document(
    demo: dict[str, Treaty], party_keys: dict[str, ed25519.Ed25519PrivateKey]
) -> None:
    doc = demo[CUSTOMS].canonical_bytes()
    key = party_keys["be-police"]
    with pytest.raises(NotAParty, match="be-police is not a party"):
        sign(doc, "be-police", key, kid(key))
    with pytest.raises(Malformed):
        sign(doc + b" ", "nl-customs", party_keys["nl-customs"], kid(party_keys["nl-customs"]))


def test_fully_signed_treaty_is_in_force_within_its_window(
    signed_taskforce: SignedTreatyDoc, lookup: DictKeys
) -> None:
    assert verify_signatures(signed_taskforce, lookup) == set(AGENCIES)
    assert in_force(signed_taskforce, lookup, AT)
    assert in_force(signed_taskforce.to_proto(), lookup, AT)  # the wire form works too
    assert not in_force(signed_taskforce, lookup, datetime(2027, 6, 1, tzinfo=UTC))
    assert not in_force(signed_taskforce, lookup, datetime(2026, 5, 31, 12, tzinfo=UTC))


def test_partly_signed_is_not_in_force(
    demo: dict[str, Treaty], party_keys: dict[str, ed25519.Ed25519PrivateKey], lookup: DictKeys
) -> None:
    unsigned = SignedTreatyDoc.unsigned(demo[TASKFORCE])
    assert verify_signatures(unsigned, lookup) == set()
    assert not in_force(unsigned, lookup, AT)
    two = sign_by(unsigned, ["nl-customs", "de-customs"], party_keys)
    assert verify_signatures(two, lookup) == {"nl-customs", "de-customs"}
    assert not in_force(two, lookup, AT)


def _with_raw(doc: SignedTreatyDoc, *sigs: treaty_pb2.PartySignature) -> SignedTreatyDoc:
    """Bypass with_signature's checks, as a hand-assembled file would."""
    message = doc.to_proto()
    message.signatures.extend(sigs)
    return SignedTreatyDoc.from_proto(message)


def test_refused_signatures_are_not_counted(
    demo: dict[str, Treaty],
    signed_taskforce: SignedTreatyDoc,
    party_keys: dict[str, ed25519.Ed25519PrivateKey],
    lookup: DictKeys,
) -> None:
    customs = SignedTreatyDoc.unsigned(demo[CUSTOMS])
    nl, de, be = (party_keys[a] for a in ("nl-customs", "de-customs", "be-police"))
    good_nl = sign(customs.document, "nl-customs", nl, kid(nl), sign_time=SIGNED_AT)
    good_de = sign(customs.document, "de-customs", de, kid(de), sign_time=SIGNED_AT)
    both = _with_raw(customs, good_nl, good_de)
    assert in_force(both, lookup, AT)

    # a non-party's (valid) signature does not count and cannot be added normally
    be_sig = treaty_pb2.PartySignature(
        agency_id="be-police",
        key_id=kid(be),
        signature=be.sign(signing_message(customs.document)),
        sign_time=good_nl.sign_time,
    )
    assert verify_signatures(_with_raw(customs, good_nl, be_sig), lookup) == {"nl-customs"}
    with pytest.raises(NotAParty):
        customs.with_signature(be_sig)

    # a bad signature: flipped bit, another treaty's signature, no label, wrong key
    flipped = copy.deepcopy(good_de)
    flipped.signature = bytes([good_de.signature[0] ^ 1]) + good_de.signature[1:]
    other_doc = signed_taskforce.signatures[1]  # de-customs over the task-force treaty
    assert other_doc.agency_id == "de-customs"
    unlabelled = copy.deepcopy(good_de)
    unlabelled.signature = de.sign(hashlib.sha256(customs.document).digest())
    wrong_key = copy.deepcopy(good_de)
    wrong_key.signature = nl.sign(signing_message(customs.document))
    unknown_kid = copy.deepcopy(good_de)
    unknown_kid.key_id = "0" * 32
    no_time = copy.deepcopy(good_de)
    no_time.ClearField("sign_time")
    for bad in (flipped, other_doc, unlabelled, wrong_key, unknown_kid, no_time):
        doc = _with_raw(customs, good_nl, bad)
        assert verify_signatures(doc, lookup) == {"nl-customs"}
        assert not in_force(doc, lookup, AT)

    # two signatures by one party: neither counts
    again = sign(customs.document, "de-customs", de, kid(de), sign_time=AT)
    twice = _with_raw(customs, good_nl, good_de, again)
    assert verify_signatures(twice, lookup) == {"nl-customs"}
    assert not in_force(twice, lookup, AT)

    # a signature dated after the moment asked about does not count then
    late = sign(customs.document, "de-customs", de, kid(de), sign_time=AT + timedelta(days=1))
    doc = _with_raw(customs, good_nl, late)
    assert verify_signatures(doc, lookup) == {"nl-customs", "de-customs"}
    assert not in_force(doc, lookup, AT)
    assert in_force(doc, lookup, AT + timedelta(days=2))


def test_lookup_errors_of_any_kind_fail_closed(signed_taskforce: SignedTreatyDoc) -> None:
    class Refusing:
        def signing_key(
            self, agency_id: str, key_id: str, at: datetime
        ) -> ed25519.Ed25519PublicKey:
            raise AgencyUnknown(agency_id)

        def encryption_key(self, agency_id: str) -> tuple[str, x25519.X25519PublicKey]:
            raise AgencyUnknown(agency_id)

    assert verify_signatures(signed_taskforce, Refusing()) == set()
    assert not in_force(signed_taskforce, Refusing(), AT)


def test_with_signature_replaces_the_agencys_earlier_signature(
    demo: dict[str, Treaty], party_keys: dict[str, ed25519.Ed25519PrivateKey], lookup: DictKeys
) -> None:
    doc = sign_by(SignedTreatyDoc.unsigned(demo[CUSTOMS]), ["nl-customs"], party_keys)
    doc = sign_by(doc, ["nl-customs"], party_keys, when=AT)
    assert len(doc.signatures) == 1
    assert doc.signatures[0].sign_time.ToDatetime(tzinfo=UTC) == AT
    assert doc.claimed_signers == ("nl-customs",)
    with pytest.raises(InvalidArgument):
        doc.with_signature(treaty_pb2.PartySignature(agency_id="de-customs", key_id="k"))


def test_signed_treaty_doc_round_trips_and_is_immutable(
    signed_taskforce: SignedTreatyDoc,
) -> None:
    data = signed_taskforce.to_bytes()
    again = SignedTreatyDoc.from_bytes(data)
    assert again == signed_taskforce
    assert hash(again) == hash(signed_taskforce)
    assert again.treaty == signed_taskforce.treaty
    copies = again.signatures
    copies[0].agency_id = "mallory"
    assert again.signatures[0].agency_id != "mallory"
    assert "signed by" in repr(again)
    with pytest.raises(Malformed):
        SignedTreatyDoc.from_bytes(b"\xff\xff\xff")
    with pytest.raises(Malformed, match="no document"):
        SignedTreatyDoc.from_bytes(b"")
    with pytest.raises(Malformed):
        SignedTreatyDoc(b'{"id": "x"}')


# --- decisions ---------------------------------------------------------------------


def _decide(treaty: Treaty, **overrides: Any) -> Decision:
    args: dict[str, Any] = {
        "in_force": True,
        "sender": "nl-customs",
        "recipients": ["de-customs", "be-police"],
        "kind": "alert",
        "categories": ["counterfeit_goods"],
        "handling": Handling.H1,
        "tlp": Tlp.AMBER,
    }
    args.update(overrides)
    return decide(treaty, **args)


def test_the_demo_alert_is_allowed(demo: dict[str, Treaty]) -> None:
    decision = _decide(demo[TASKFORCE])
    assert decision.allowed
    assert decision.reason == "OK"
    assert bool(decision)
    decision.raise_if_refused()  # no exception
    assert _decide(demo[CUSTOMS], recipients=["de-customs"], handling="H2").allowed


def test_firearms_to_be_police_is_refused(demo: dict[str, Treaty]) -> None:
    decision = _decide(demo[TASKFORCE], recipients=["be-police"], categories=["firearms"])
    assert not decision.allowed
    assert not bool(decision)
    assert decision.reason == "CATEGORY_NOT_PERMITTED"
    assert decision.detail == (
        "treaty counterfeit-medicines-taskforce v1 does not permit category firearms"
    )
    with pytest.raises(CategoryNotPermitted, match="does not permit category firearms") as info:
        decision.raise_if_refused()
    assert info.value.reason == "CATEGORY_NOT_PERMITTED"
    # and the customs treaty, which permits firearms, does not include be-police
    refused = _decide(demo[CUSTOMS], recipients=["be-police"], categories=["firearms"])
    assert refused.reason == "NOT_A_PARTY"


@pytest.mark.parametrize(
    ("overrides", "reason", "detail"),
    [
        ({"in_force": False}, "TREATY_NOT_IN_FORCE", "is not in force"),
        ({"sender": "fr-douane"}, "NOT_A_PARTY", "sender fr-douane is not a party"),
        ({"recipients": []}, "NOT_A_PARTY", "needs a recipient"),
        ({"recipients": ["de-customs", "fr-douane"]}, "NOT_A_PARTY", "recipient fr-douane"),
        ({"recipients": ["nl-customs"]}, "NOT_A_PARTY", "is the sender"),
        ({"kind": "case_membership"}, "KIND_NOT_PERMITTED", "does not permit kind case_membership"),
        ({"kind": ""}, "KIND_NOT_PERMITTED", "kind (none)"),
        ({"kind": "ALERT"}, "KIND_NOT_PERMITTED", "kind ALERT"),
        ({"categories": []}, "CATEGORY_NOT_PERMITTED", "needs a data category"),
        (
            {"categories": ["narcotics", "wanted_person"]},
            "CATEGORY_NOT_PERMITTED",
            "category wanted_person",
        ),
        ({"handling": Handling.H2}, "HANDLING_NOT_PERMITTED", "up to H1, not H2"),
        ({"handling": "H9"}, "HANDLING_NOT_PERMITTED", "'H9' unknown"),
        ({"tlp": Tlp.AMBER_STRICT}, "HANDLING_NOT_PERMITTED", "TLP up to AMBER, not AMBER_STRICT"),
        ({"tlp": "RED"}, "HANDLING_NOT_PERMITTED", "not RED"),
        ({"tlp": "PURPLE"}, "HANDLING_NOT_PERMITTED", "unknown"),
    ],
)
def test_each_refusal_has_its_reason(
    demo: dict[str, Treaty], overrides: dict[str, Any], reason: str, detail: str
) -> None:
    decision = _decide(demo[TASKFORCE], **overrides)
    assert not decision.allowed
    assert decision.reason == reason
    assert detail in decision.detail
    with pytest.raises(errors.PolicyRefused) as info:
        decision.raise_if_refused()
    assert info.value.reason == reason
    assert type(info.value).__name__ != "PolicyRefused"


def test_checks_run_in_the_documented_order(demo: dict[str, Treaty]) -> None:
    everything_wrong: dict[str, Any] = {
        "in_force": False,
        "sender": "x",
        "recipients": ["y"],
        "kind": "gossip",
        "categories": ["z"],
        "handling": Handling.H3,
        "tlp": Tlp.RED,
    }
    order = [
        ("in_force", True, "TREATY_NOT_IN_FORCE"),
        ("sender", "nl-customs", "NOT_A_PARTY"),
        ("recipients", ["be-police"], "NOT_A_PARTY"),
        ("kind", "alert", "KIND_NOT_PERMITTED"),
        ("categories", ["narcotics"], "CATEGORY_NOT_PERMITTED"),
        ("handling", Handling.H0, "HANDLING_NOT_PERMITTED"),
        ("tlp", Tlp.GREEN, "HANDLING_NOT_PERMITTED"),
    ]
    args = dict(everything_wrong)
    for key, fixed, reason_before_fix in order:
        assert decide(demo[TASKFORCE], **args).reason == reason_before_fix, key
        args[key] = fixed
    assert decide(demo[TASKFORCE], **args).allowed


@pytest.mark.parametrize("kind", sorted(CONTROL_KINDS))
def test_control_kinds_ride_on_the_treaty(demo: dict[str, Treaty], kind: str) -> None:
    treaty = demo[TASKFORCE]
    assert kind not in treaty.kinds
    ack = _decide(treaty, sender="be-police", recipients=["nl-customs"], kind=kind, categories=[])
    assert ack.allowed
    # every other check still applies
    assert _decide(treaty, kind=kind, in_force=False).reason == "TREATY_NOT_IN_FORCE"
    assert _decide(treaty, kind=kind, sender="fr-douane").reason == "NOT_A_PARTY"
    assert _decide(treaty, kind=kind, categories=["firearms"]).reason == "CATEGORY_NOT_PERMITTED"
    assert _decide(treaty, kind=kind, handling=Handling.H3).reason == "HANDLING_NOT_PERMITTED"
    assert redact(demo_alert(), treaty, kind) == {}


def test_decision_reasons_match_the_error_classes() -> None:
    reasons = {cls.reason for cls in errors.all_error_classes()}
    refusal = Decision.refuse(errors.FieldNotPermitted, "x")
    assert refusal.reason in reasons
    with pytest.raises(errors.FieldNotPermitted):
        refusal.raise_if_refused()
    with pytest.raises(errors.PolicyRefused):
        Decision(False, "SOMETHING_ELSE", "unknown reasons still refuse").raise_if_refused()


def _header(**overrides: Any) -> envelope_pb2.Header:
    fields: dict[str, Any] = {
        "version": 1,
        "sender": "nl-customs",
        "recipients": ["be-police", "de-customs"],
        "treaty_id": TASKFORCE,
        "treaty_version": 1,
        "kind": envelope_pb2.MESSAGE_KIND_ALERT,
        "handling": envelope_pb2.HANDLING_CODE_H1,
        "tlp": envelope_pb2.TLP_AMBER,
        "categories": ["counterfeit_goods"],
    }
    fields.update(overrides)
    return envelope_pb2.Header(**fields)


def test_decide_header(
    demo: dict[str, Treaty],
    signed_taskforce: SignedTreatyDoc,
    party_keys: dict[str, ed25519.Ed25519PrivateKey],
    lookup: DictKeys,
) -> None:
    assert decide_header(signed_taskforce, _header(), lookup, AT).allowed
    assert decide_header(signed_taskforce.to_proto(), _header(), lookup, AT).allowed
    cases: list[tuple[envelope_pb2.Header, datetime, str]] = [
        (_header(treaty_version=2), AT, "TREATY_NOT_IN_FORCE"),
        (_header(treaty_id=CUSTOMS), AT, "TREATY_NOT_IN_FORCE"),
        (_header(), datetime(2027, 6, 1, tzinfo=UTC), "TREATY_NOT_IN_FORCE"),
        (_header(kind=envelope_pb2.MESSAGE_KIND_UNSPECIFIED), AT, "KIND_NOT_PERMITTED"),
        (_header(categories=["firearms"]), AT, "CATEGORY_NOT_PERMITTED"),
        (_header(handling=envelope_pb2.HANDLING_CODE_UNSPECIFIED), AT, "HANDLING_NOT_PERMITTED"),
        (_header(tlp=envelope_pb2.TLP_UNSPECIFIED), AT, "HANDLING_NOT_PERMITTED"),
        (_header(tlp=envelope_pb2.TLP_RED), AT, "HANDLING_NOT_PERMITTED"),
        (_header(recipients=["be-police", "fr-douane"]), AT, "NOT_A_PARTY"),
    ]
    for header, at, reason in cases:
        assert decide_header(signed_taskforce, header, lookup, at).reason == reason, header
    partly = sign_by(SignedTreatyDoc.unsigned(demo[TASKFORCE]), ["nl-customs"], party_keys)
    assert decide_header(partly, _header(), lookup, AT).reason == "TREATY_NOT_IN_FORCE"
    junk = treaty_pb2.SignedTreaty(document=b"{}")
    assert decide_header(junk, _header(), lookup, AT).reason == "TREATY_NOT_IN_FORCE"
    ack = _header(
        kind=envelope_pb2.MESSAGE_KIND_ACKNOWLEDGEMENT,
        sender="be-police",
        recipients=["nl-customs"],
        categories=[],
    )
    assert decide_header(signed_taskforce, ack, lookup, AT).allowed


# --- redaction -----------------------------------------------------------------------


def test_demo_alert_shows_different_fields_to_different_partners(
    demo: dict[str, Treaty],
) -> None:
    alert = demo_alert()
    original = copy.deepcopy(alert)
    to_de = redact(alert, demo[CUSTOMS], "alert")
    to_be = redact(alert, demo[TASKFORCE], "alert")
    assert alert == original  # never mutated

    person_de = to_de["subjects"]["persons"][0]
    assert person_de == {
        "name": "Jan Example",
        "date_of_birth": "1980-02-29",
        "nationality": "NL",
        "passport_number": "NX1234567",
    }
    person_be = to_be["subjects"]["persons"][0]
    assert person_be == {"name": "Jan Example", "nationality": "NL"}
    for redacted in (to_de, to_be):
        assert "informant" not in redacted  # never listed
        assert "phone" not in redacted["subjects"]["persons"][0]
        assert redacted["subjects"]["companies"] == alert["subjects"]["companies"]  # sub-tree
        assert redacted["subjects"]["containers"] == [{"number": "MSCU1234566"}]
        assert redacted["evaluation"] == {"source": "B", "information": "2"}
    assert unpermitted_paths(to_de, demo[CUSTOMS], "alert") == []
    assert unpermitted_paths(to_be, demo[TASKFORCE], "alert") == []

    # the result shares nothing with the input
    to_de["subjects"]["companies"][0]["name"] = "changed"
    to_de["subjects"]["persons"][0]["name"] = "changed"
    assert alert == original


def test_redaction_edge_cases(demo: dict[str, Treaty]) -> None:
    customs, task = demo[CUSTOMS], demo[TASKFORCE]
    # kinds without an allow-list carry nothing
    assert redact(demo_alert(), customs, "case_entry") == {}
    assert redact(demo_alert(), customs, "gossip") == {}
    # a scalar where only sub-fields are permitted disappears; so do emptied containers
    record = {
        "subjects": {
            "persons": [{"phone": "1"}, "free text", {"name": "A", "phone": "2"}, []],
            "vessels": [],
        },
        "kind": "alert",
    }
    assert redact(record, task, "alert") == {
        "subjects": {"persons": [{"name": "A"}], "vessels": []},
        "kind": "alert",
    }
    assert redact({"subjects": "a free-text blob"}, task, "alert") == {}
    assert redact({"subjects": {"persons": [{"phone": "1"}]}}, task, "alert") == {}
    # a permitted sub-tree is kept whole, whatever is in it
    entry = {"text": "seen at Antwerp", "subjects": {"anything": [{"deep": {"x": 1}}]}, "x": 2}
    assert redact(entry, task, "case_entry") == {
        "text": "seen at Antwerp",
        "subjects": {"anything": [{"deep": {"x": 1}}]},
    }
    # keys are matched exactly: no dotted keys, no non-string keys, no case folding
    odd: dict[Any, Any] = {"subjects.persons": 1, 1: "x", "Kind": "alert", "kind": "alert"}
    assert redact(odd, task, "alert") == {"kind": "alert"}
    # tuples are treated like lists
    assert redact({"subjects": {"persons": ({"name": "A"},)}}, task, "alert") == {
        "subjects": {"persons": [{"name": "A"}]}
    }


def test_check_fields_for_the_receiving_node(demo: dict[str, Treaty]) -> None:
    task = demo[TASKFORCE]
    alert = demo_alert()
    bad = unpermitted_paths(alert, task, "alert")
    assert bad == [
        "informant.code",
        "subjects.persons.date_of_birth",
        "subjects.persons.passport_number",
        "subjects.persons.phone",
    ]
    decision = check_fields(alert, task, "alert")
    assert decision.reason == "FIELD_NOT_PERMITTED"
    assert decision.detail.startswith(
        "treaty counterfeit-medicines-taskforce v1 does not permit field informant.code in a alert"
    )
    with pytest.raises(errors.FieldNotPermitted):
        decision.raise_if_refused()
    assert check_fields(redact(alert, task, "alert"), task, "alert").allowed


# --- onward sharing, retention, review ---------------------------------------------


def test_onward_sharing(demo: dict[str, Treaty]) -> None:
    customs, task = demo[CUSTOMS], demo[TASKFORCE]
    # forbidden: never, even with consent
    d = onward_sharing_allowed(task, "nl-customs", "de-customs", originator_consent=True)
    assert d.reason == "POLICY_REFUSED"
    assert "forbids onward sharing" in d.detail
    # with_originator_consent: any recipient, once the originator consented
    assert not onward_sharing_allowed(customs, "nl-customs", "fr-douane", False).allowed
    assert onward_sharing_allowed(customs, "nl-customs", "fr-douane", True).allowed
    # within_treaty: parties only; consent does not widen it
    within = dataclasses.replace(task, onward_sharing=OnwardSharing.WITHIN_TREATY)
    assert onward_sharing_allowed(within, "nl-customs", "be-police", False).allowed
    refused = onward_sharing_allowed(within, "nl-customs", "fr-douane", True)
    assert refused.reason == "NOT_A_PARTY"
    # the originator itself, and an originator that is not a party
    assert onward_sharing_allowed(task, "nl-customs", "nl-customs", False).allowed
    assert onward_sharing_allowed(task, "fr-douane", "nl-customs", True).reason == "NOT_A_PARTY"


def test_retention_until(demo: dict[str, Treaty]) -> None:
    received = datetime(2026, 11, 23, 14, 30, tzinfo=timezone(timedelta(hours=1)))
    until = retention_until(demo[TASKFORCE], received)
    assert until == datetime(2027, 11, 23, 13, 30, tzinfo=UTC)
    assert until.tzinfo == UTC
    with pytest.raises(InvalidArgument):
        retention_until(demo[TASKFORCE], datetime(2026, 11, 23))


def test_review_required(demo: dict[str, Treaty]) -> None:
    assert review_required(demo[TASKFORCE], ["narcotics", "wanted_person"])
    assert not review_required(demo[TASKFORCE], ["narcotics"])
    assert not review_required(demo[CUSTOMS], ["wanted_person"])


def test_treaties_pickle_through_the_canonical_form(demo: dict[str, Treaty]) -> None:
    import pickle

    again = pickle.loads(pickle.dumps(demo[TASKFORCE]))
    assert again == demo[TASKFORCE]
    assert again.fields["alert"] == demo[TASKFORCE].fields["alert"]


def test_remembered_verifications_still_ask_the_directory(
    signed_taskforce: SignedTreatyDoc, lookup: DictKeys
) -> None:
    """Signatures that verified before are remembered; the key lookup is not.

    A party whose key the directory no longer vouches for stops counting at
    once, and a tampered copy of a remembered signature is still refused.
    """
    assert verify_signatures(signed_taskforce, lookup) == set(AGENCIES)  # remembered now
    revoked = AGENCIES[0]

    class Revoking:
        def signing_key(
            self, agency_id: str, key_id: str, at: datetime
        ) -> ed25519.Ed25519PublicKey:
            if agency_id == revoked:
                raise SignatureInvalid(audit_detail="revoked")
            return lookup.signing_key(agency_id, key_id, at)

        def encryption_key(self, agency_id: str) -> tuple[str, x25519.X25519PublicKey]:
            raise AgencyUnknown(agency_id)

    assert verify_signatures(signed_taskforce, Revoking()) == set(AGENCIES) - {revoked}
    assert not in_force(signed_taskforce, Revoking(), AT)

    message = signed_taskforce.to_proto()
    first = message.signatures[0]
    first.signature = bytes([first.signature[0] ^ 1]) + first.signature[1:]
    tampered = SignedTreatyDoc.from_proto(message)
    assert first.agency_id not in verify_signatures(tampered, lookup)
