"""Property tests for the policy engine: what must hold for every input.

* redaction never lets a field through that no permitted path covers, keeps
  every one that is covered, and never touches its input;
* every decision for a non-party sender or recipient, an unsigned or partly
  signed treaty, or a moment outside the validity window is a refusal, and
  an allowed decision implies every rule held;
* canonical bytes round-trip, and do not depend on the order of keys or of
  set-like lists in the input mapping.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from intelshare.errors import Malformed
from intelshare.treaty import (
    CONTROL_KINDS,
    DATA_KINDS,
    Handling,
    SignedTreatyDoc,
    Tlp,
    Treaty,
    decide,
    decide_header,
    in_force,
    redact,
    unpermitted_paths,
)
from intelshare.v1 import envelope_pb2
from tests.intelshare.test_treaty import AGENCIES, TASKFORCE, DictKeys, load_demo, sign_by

DEMO = load_demo()
TASK = DEMO[TASKFORCE]
KEYS = {a: ed25519.Ed25519PrivateKey.generate() for a in AGENCIES}
LOOKUP = DictKeys(KEYS)
SIGNED_AT = datetime(2026, 5, 1, tzinfo=UTC)
FULLY_SIGNED = sign_by(SignedTreatyDoc.unsigned(TASK), TASK.parties, KEYS, when=SIGNED_AT)
INSIDE = st.datetimes(
    min_value=datetime(2026, 6, 1),
    max_value=datetime(2027, 5, 31, 23, 59, 59),
    timezones=st.just(UTC),
)
OUTSIDE = st.one_of(
    st.datetimes(max_value=datetime(2026, 5, 31, 23, 59, 59), timezones=st.just(UTC)),
    st.datetimes(min_value=datetime(2027, 6, 1), timezones=st.just(UTC)),
)

# --- redaction ---------------------------------------------------------------------

# A small alphabet so that random records and random allow-lists collide often.
SEGMENTS = st.sampled_from(["a", "b", "c", "name", "persons"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5))
RECORDS = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(SEGMENTS, inner, max_size=4),
    ),
    max_leaves=30,
)
TOP_RECORDS = st.dictionaries(SEGMENTS, RECORDS, max_size=5)
PATHS = st.lists(st.lists(SEGMENTS, min_size=1, max_size=4).map(".".join), unique=True, max_size=6)


def leaves(value: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every leaf's key path, list positions folded away (an independent reading)."""
    if isinstance(value, dict) and value:
        for key, sub in value.items():
            yield from leaves(sub, (*prefix, key))
    elif isinstance(value, list) and value:
        for item in value:
            yield from leaves(item, prefix)
    else:
        yield prefix


def covered(leaf: tuple[str, ...], paths: list[str]) -> bool:
    return any(leaf[: len(p)] == p for p in (tuple(x.split(".")) for x in paths))


def with_alert_fields(paths: list[str]) -> Treaty:
    return dataclasses.replace(TASK, fields={"alert": tuple(paths)} if paths else {})


@given(record=TOP_RECORDS, paths=PATHS)
def test_redaction_never_lets_a_non_permitted_field_through(
    record: dict[str, Any], paths: list[str]
) -> None:
    treaty = with_alert_fields(paths)
    before = copy.deepcopy(record)
    out = redact(record, treaty, "alert")
    assert record == before, "redact mutated its input"
    assert isinstance(out, dict)
    out_leaves = {leaf for leaf in leaves(out) if leaf}
    # nothing uncovered gets through ...
    assert all(covered(leaf, paths) for leaf in out_leaves), (out, paths)
    assert unpermitted_paths(out, treaty, "alert") == []
    # ... and everything covered does
    in_leaves = {leaf for leaf in leaves(record) if leaf and covered(leaf, paths)}
    assert out_leaves == in_leaves
    # and no permitted path at all means nothing at all
    if not paths:
        assert out == {}


@given(record=TOP_RECORDS, paths=PATHS)
def test_redaction_result_shares_nothing_with_the_input(
    record: dict[str, Any], paths: list[str]
) -> None:
    out = redact(record, with_alert_fields(paths), "alert")
    before = copy.deepcopy(record)

    def scribble(value: Any) -> None:
        if isinstance(value, dict):
            for key in list(value):
                scribble(value[key])
                value[key] = "scribbled"
            value["new"] = 1
        elif isinstance(value, list):
            for item in value:
                scribble(item)
            value.append("new")

    scribble(out)
    assert record == before


@given(record=TOP_RECORDS, kind=st.sampled_from(sorted(CONTROL_KINDS | {"alert_update", "x"})))
def test_kinds_without_an_allow_list_carry_nothing(record: dict[str, Any], kind: str) -> None:
    assert redact(record, TASK, kind) == {}


# --- decisions ---------------------------------------------------------------------

PARTIES = list(TASK.parties)
OUTSIDERS = st.sampled_from(["fr-douane", "it-gdf", "nl-police", "", "NL-CUSTOMS"])
AGENCY = st.one_of(st.sampled_from(PARTIES), OUTSIDERS)
KINDS = st.sampled_from(sorted(DATA_KINDS | CONTROL_KINDS | {"", "gossip"}))
CATEGORIES = st.lists(
    st.sampled_from(["counterfeit_goods", "narcotics", "firearms", "wanted_person", ""]),
    max_size=3,
)
HANDLINGS = st.one_of(st.sampled_from(list(Handling)), st.sampled_from(["H0", "H3", "X", ""]))
TLPS = st.one_of(st.sampled_from(list(Tlp)), st.sampled_from(["GREEN", "RED", "WHITE"]))


@st.composite
def messages(draw: st.DrawFn, sender: st.SearchStrategy[str] = AGENCY) -> dict[str, Any]:
    return {
        "sender": draw(sender),
        "recipients": draw(st.lists(AGENCY, max_size=4)),
        "kind": draw(KINDS),
        "categories": draw(CATEGORIES),
        "handling": draw(HANDLINGS),
        "tlp": draw(TLPS),
    }


@given(msg=messages(), treaty_in_force=st.booleans())
def test_an_allowed_decision_means_every_rule_held(
    msg: dict[str, Any], treaty_in_force: bool
) -> None:
    decision = decide(TASK, in_force=treaty_in_force, **msg)
    if not decision.allowed:
        assert decision.reason in {
            "TREATY_NOT_IN_FORCE",
            "NOT_A_PARTY",
            "KIND_NOT_PERMITTED",
            "CATEGORY_NOT_PERMITTED",
            "HANDLING_NOT_PERMITTED",
        }
        return
    assert treaty_in_force
    assert msg["sender"] in TASK.parties
    assert msg["recipients"]
    assert all(r in TASK.parties and r != msg["sender"] for r in msg["recipients"])
    assert msg["kind"] in TASK.kinds or msg["kind"] in CONTROL_KINDS
    assert msg["kind"] in CONTROL_KINDS or msg["categories"]
    assert set(msg["categories"]) <= set(TASK.categories)
    assert Handling[str(getattr(msg["handling"], "name", msg["handling"]))] <= TASK.max_handling
    assert Tlp[str(getattr(msg["tlp"], "name", msg["tlp"]))] <= TASK.max_tlp


@given(msg=messages(sender=OUTSIDERS), treaty_in_force=st.booleans())
def test_a_non_party_sender_is_always_refused(msg: dict[str, Any], treaty_in_force: bool) -> None:
    assert not decide(TASK, in_force=treaty_in_force, **msg).allowed


@given(msg=messages(), outsider=OUTSIDERS, position=st.integers(0, 4))
def test_a_non_party_recipient_is_always_refused(
    msg: dict[str, Any], outsider: str, position: int
) -> None:
    recipients = list(msg["recipients"])
    recipients.insert(min(position, len(recipients)), outsider)
    msg["recipients"] = recipients
    assert not decide(TASK, in_force=True, **msg).allowed


def _header(msg: dict[str, Any]) -> envelope_pb2.Header:
    kind = msg["kind"]
    kind_value = (
        envelope_pb2.MessageKind.Value("MESSAGE_KIND_" + kind.upper())
        if kind in DATA_KINDS | CONTROL_KINDS
        else envelope_pb2.MESSAGE_KIND_UNSPECIFIED
    )
    handling = msg["handling"]
    tlp = msg["tlp"]
    return envelope_pb2.Header(
        sender=msg["sender"],
        recipients=msg["recipients"],
        treaty_id=TASK.id,
        treaty_version=TASK.version,
        kind=kind_value,
        categories=msg["categories"],
        handling=handling.value
        if isinstance(handling, Handling)
        else envelope_pb2.HANDLING_CODE_UNSPECIFIED,
        tlp=tlp.value if isinstance(tlp, Tlp) else envelope_pb2.TLP_UNSPECIFIED,
    )


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    msg=messages(),
    signers=st.lists(st.sampled_from(PARTIES), unique=True, max_size=len(PARTIES) - 1),
    at=INSIDE,
)
def test_an_unsigned_or_partly_signed_treaty_refuses_everything(
    msg: dict[str, Any], signers: list[str], at: datetime
) -> None:
    doc = sign_by(SignedTreatyDoc.unsigned(TASK), signers, KEYS, when=SIGNED_AT)
    assert not in_force(doc, LOOKUP, at)
    decision = decide_header(doc, _header(msg), LOOKUP, at)
    assert not decision.allowed
    assert decision.reason == "TREATY_NOT_IN_FORCE"


@given(msg=messages(), at=OUTSIDE)
def test_outside_the_window_everything_is_refused(msg: dict[str, Any], at: datetime) -> None:
    assert not in_force(FULLY_SIGNED, LOOKUP, at)
    decision = decide_header(FULLY_SIGNED, _header(msg), LOOKUP, at)
    assert decision.reason == "TREATY_NOT_IN_FORCE"


@given(at=INSIDE)
def test_fully_signed_inside_the_window_is_in_force(at: datetime) -> None:
    assume(at >= SIGNED_AT)
    assert in_force(FULLY_SIGNED, LOOKUP, at)


# --- canonical form ----------------------------------------------------------------

IDS = st.from_regex(r"[a-z0-9][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True)
NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True)
TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=30
).filter(lambda s: s.strip() != "")
FIELD_PATHS = st.lists(
    st.lists(st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True), min_size=1, max_size=3).map(
        ".".join
    ),
    unique=True,
    min_size=1,
    max_size=5,
)


@st.composite
def treaty_mappings(draw: st.DrawFn) -> dict[str, Any]:
    start = draw(st.dates(min_value=date(2020, 1, 1), max_value=date(2040, 1, 1)))
    kinds = draw(st.lists(st.sampled_from(sorted(DATA_KINDS)), unique=True, min_size=1))
    with_fields = draw(st.lists(st.sampled_from(kinds), unique=True))
    mapping: dict[str, Any] = {
        "id": draw(IDS),
        "version": draw(st.integers(1, 2**32 - 1)),
        "title": draw(TEXT),
        "parties": draw(st.lists(IDS, unique=True, min_size=2, max_size=5)),
        "valid": {
            "from": start,
            "until": start + timedelta(days=draw(st.integers(0, 4000))),
        },
        "kinds": kinds,
        "categories": draw(st.lists(NAMES, unique=True, min_size=1, max_size=6)),
        "max_handling": {
            "code": draw(st.sampled_from([h.name for h in Handling])),
            "tlp": draw(st.sampled_from([t.name for t in Tlp] + ["AMBER+STRICT"])),
        },
        "fields": {k: draw(FIELD_PATHS) for k in with_fields},
        "retention_days": draw(st.integers(1, 36500)),
        "onward_sharing": draw(
            st.sampled_from(["forbidden", "with_originator_consent", "within_treaty"])
        ),
    }
    if draw(st.booleans()):
        mapping["purpose"] = draw(TEXT)
    if draw(st.booleans()):
        mapping["review_required_for"] = draw(st.lists(NAMES, unique=True, max_size=3))
    return mapping


def shuffled(value: Any, rnd: Any, *, sets: bool) -> Any:
    """The same mapping with keys, and (if ``sets``) set-like lists, in another order."""
    if isinstance(value, dict):
        items = list(value.items())
        rnd.shuffle(items)
        return {k: shuffled(v, rnd, sets=sets) for k, v in items}
    if isinstance(value, list) and sets:
        items = list(value)
        rnd.shuffle(items)
        return items
    return value


@given(mapping=treaty_mappings())
def test_canonical_bytes_round_trip(mapping: dict[str, Any]) -> None:
    treaty = Treaty.from_mapping(mapping)
    doc = treaty.canonical_bytes()
    again = Treaty.from_canonical(doc)
    assert again == treaty
    assert again.canonical_bytes() == doc
    assert SignedTreatyDoc(doc).treaty == treaty
    parsed = json.loads(doc)
    assert json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False) == (
        doc.decode("utf-8")
    )


@given(mapping=treaty_mappings(), rnd=st.randoms(use_true_random=False))
def test_canonical_bytes_ignore_input_order(mapping: dict[str, Any], rnd: Any) -> None:
    doc = Treaty.from_mapping(mapping).canonical_bytes()
    assert Treaty.from_mapping(shuffled(mapping, rnd, sets=False)).canonical_bytes() == doc
    # every list in a treaty is a set: parties, kinds, categories, paths, review
    assert Treaty.from_mapping(shuffled(mapping, rnd, sets=True)).canonical_bytes() == doc


@given(mapping=treaty_mappings(), data=st.data())
def test_any_change_to_the_document_is_refused_or_means_something_else(
    mapping: dict[str, Any], data: st.DataObject
) -> None:
    doc = Treaty.from_mapping(mapping).canonical_bytes()
    position = data.draw(st.integers(0, len(doc) - 1))
    replacement = data.draw(st.integers(0, 255))
    assume(doc[position] != replacement)
    changed = doc[:position] + bytes([replacement]) + doc[position + 1 :]
    try:
        other = Treaty.from_canonical(changed)
    except Malformed:
        return  # refused, with the project's error (anything else fails the test)
    assert other.canonical_bytes() == changed
    assert other != Treaty.from_canonical(doc)
