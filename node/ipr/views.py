"""What each reader sees of IPR records, and which recordations a product falls under.

Rights holders
--------------
An officer with the role ``rights_holder`` is bound to one holder
organisation, named by its *holder key* (:func:`holder_key`): ``eori:`` and
the EORI number when the holder has one, else ``reg:``, the country and the
registration number. The key is the same at the granting node and at every
node holding a copy, so a holder bound at the detaining node finds the
recordations granted elsewhere.

A holder sees a detention only when one of the recordations it falls under
(confirmed, not merely suggested) is its own (:func:`check_holder_may_see`,
HOLDER_MISMATCH otherwise). What it sees is :data:`HOLDER_FIELDS` (a field
mask): the goods, their images, the procedure and whether the goods are
perishable, origin and destination, the state, its deadlines and the
reasons of the moves. Never: the transport details and suggested
recordations (the agency's own targeting), the internal notes, the names
of the officers, or the other holders' recordations the same goods fall
under. The parties (consignor, consignee, declarant: personal data) only
after an officer disclosed them under 608/2013 art. 17(4)
(``parties_disclosed``). Of a recordation a holder sees everything but the
grantor's internal notes and officers.

Partners
--------
What partners receive is decided by the treaty's field allow-list for the
record kind (``recordation``, ``detention_report``), applied by the record
engine. Some fields never leave the node whatever a treaty says:
:data:`RECORDATION_NEVER_SHARED` (internal notes, officers' names, this
node's view of direction and revision) and everything of a detention that
:func:`detention_report` does not copy into the report (notes, officers,
deadlines, suggestions).

Matching
--------
A product falls under a recordation in force when a GTIN on it is one the
recordation covers (compared as GTIN-14, so a UPC-A and its EAN-13 match),
its HS code's first 6 digits are a subheading the recordation covers, or
its brand is the name of one of the recordation's rights (compared by
:func:`right_name_key`: accents, case, punctuation and spacing ignored,
"ACME®" and "Acme" match). A GTIN is near-proof, a right name strong, an
HS code alone only narrows the field (a recordation for shoes covers
thousands of shoes), so matches are ranked GTIN, then right name, then HS
code. :func:`index_keys` gives the keys a database index stores for the
same comparisons, so the node's indexed search and these functions agree.
"""

from __future__ import annotations

import contextlib
import re
import unicodedata
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from google.protobuf.field_mask_pb2 import FieldMask

from intelshare import identifiers
from intelshare.errors import FieldInvalid, HolderMismatch, InvalidArgument
from intelshare.v1 import detention_pb2, recordation_pb2
from node.ipr.lifecycle import in_force

# --- holders ------------------------------------------------------------------------------


def holder_key(holder: recordation_pb2.RightsHolder) -> str:
    """The key a rights_holder officer is bound by: ``eori:NL123456789`` or ``reg:NL:12345678``."""
    if holder.eori:
        return f"eori:{identifiers.eori_number(holder.eori, 'holder.eori')}"
    number = re.sub(r"[\s./-]+", "", holder.registration_number).upper()
    if not number or not holder.country:
        raise FieldInvalid(
            "the holder has neither an EORI number nor a country and registration number",
            violations={"holder.eori": "an EORI number or a registration_number is required"},
        )
    return f"reg:{holder.country.upper()}:{number}"


def owns(recordation: recordation_pb2.Recordation, key: str) -> bool:
    """Whether the holder bound by ``key`` holds ``recordation``."""
    try:
        return holder_key(recordation.holder) == key
    except InvalidArgument:
        return False


def own_recordation_names(
    recordations: Iterable[recordation_pb2.Recordation], key: str
) -> frozenset[str]:
    """The names of the recordations, among ``recordations``, the holder ``key`` holds."""
    return frozenset(r.name for r in recordations if owns(r, key))


def check_holder_may_see(detention: detention_pb2.Detention, own: Collection[str]) -> None:
    """Raise HolderMismatch unless the detention falls under one of the holder's recordations."""
    if not any(name in own for name in detention.recordations):
        raise HolderMismatch(
            f"{detention.name or 'this detention'} does not concern your recordations",
            metadata={"detention": detention.name},
        )


#: Fields of a detention a rights holder sees (the parties only once disclosed).
HOLDER_FIELDS: Final = (
    "name",
    "goods",
    "origin_country",
    "destination_country",
    "procedure",
    "perishable",
    "recordations",
    "state",
    "deadlines",
    "history",
    "customs_office",
    "detain_time",
    "notify_time",
    "parties_disclosed",
    "detaining_agency",
    "create_time",
    "update_time",
    "revision",
    "sample_requests",
)


def holder_field_mask(detention: detention_pb2.Detention) -> FieldMask:
    """The top-level fields of ``detention`` a rights holder may see."""
    paths = list(HOLDER_FIELDS)
    if detention.parties_disclosed:
        paths.append("parties")
    return FieldMask(paths=paths)


def holder_view(
    detention: detention_pb2.Detention, own: Collection[str]
) -> detention_pb2.Detention:
    """The detention as the holder of the recordations named ``own`` sees it.

    Raises HolderMismatch when none of its recordations is the holder's.
    """
    check_holder_may_see(detention, own)
    shown = detention_pb2.Detention()
    holder_field_mask(detention).MergeMessage(detention, shown)
    kept = [name for name in shown.recordations if name in own]
    del shown.recordations[:]
    shown.recordations.extend(kept)
    for move in shown.history:
        move.ClearField("officer")
    return shown


def event_summary(detention: detention_pb2.Detention) -> dict[str, object]:
    """A detention in a few fields, for an event's webhook POST.

    Give it the view of the webhook's owner (:func:`holder_view` for a
    rights holder): it only picks fields of what it is given.
    """
    return {
        "name": detention.name,
        "state": detention_pb2.DetentionState.Name(detention.state)
        .removeprefix("DETENTION_STATE_")
        .lower(),
        "recordations": list(detention.recordations),
        "deadlines": [
            {
                "kind": detention_pb2.DeadlineKind.Name(d.kind)
                .removeprefix("DEADLINE_KIND_")
                .lower(),
                "last_day": d.last_day,
                "due_time": d.due_time.ToJsonString(),
                "state": detention_pb2.DeadlineState.Name(d.state)
                .removeprefix("DEADLINE_STATE_")
                .lower(),
            }
            for d in detention.deadlines
        ],
    }


def holder_recordation_view(
    recordation: recordation_pb2.Recordation, key: str
) -> recordation_pb2.Recordation:
    """A recordation as its own holder sees it (HolderMismatch for anyone else's)."""
    if not owns(recordation, key):
        raise HolderMismatch(
            f"{recordation.name or 'this recordation'} is not yours",
            metadata={"recordation": recordation.name},
        )
    shown = recordation_pb2.Recordation()
    shown.CopyFrom(recordation)
    shown.ClearField("internal_notes")
    for move in shown.history:
        move.ClearField("officer")
    return shown


# --- partners ----------------------------------------------------------------------------

#: Fields of a recordation that never leave the granting node.
RECORDATION_NEVER_SHARED: Final = (
    "internal_notes",
    "direction",
    "create_time",
    "update_time",
    "revision",
)


def shareable_recordation(recordation: recordation_pb2.Recordation) -> recordation_pb2.Recordation:
    """The recordation without what never leaves the node, before any treaty's allow-list."""
    shared = recordation_pb2.Recordation()
    shared.CopyFrom(recordation)
    for path in RECORDATION_NEVER_SHARED:
        shared.ClearField(path)
    for move in shared.history:
        move.ClearField("officer")
    return shared


def detention_report(
    detention: detention_pb2.Detention,
    recordations: Sequence[recordation_pb2.Recordation],
    *,
    summary: str,
) -> detention_pb2.DetentionReport:
    """The report of a detention for partners, before the treaty's allow-list.

    ``recordations`` are those the detention falls under; the report names
    them by their granting agency and carries their rights, so that a
    partner holding a copy links the report to it.
    """
    report = detention_pb2.DetentionReport(
        detention=detention.name,
        reporting_agency=detention.detaining_agency,
        procedure=detention.procedure,
        state=detention.state,
        origin_country=detention.origin_country,
        destination_country=detention.destination_country,
        summary=summary.strip(),
    )
    if detention.HasField("detain_time"):
        report.detain_time.CopyFrom(detention.detain_time)
    report.goods.extend(detention.goods)
    if detention.HasField("transport"):
        report.transport.CopyFrom(detention.transport)
    if detention.HasField("parties"):
        report.parties.CopyFrom(detention.parties)
    seen_rights: set[tuple[int, str, str]] = set()
    for recordation in recordations:
        if recordation.name not in detention.recordations:
            continue
        report.recordations.append(
            detention_pb2.RecordationReference(
                agency_id=recordation.origin_agency, recordation=recordation.name
            )
        )
        for right in recordation.rights:
            ident = (right.type, right.name, right.registration_number)
            if ident not in seen_rights:
                seen_rights.add(ident)
                report.rights.append(right)
    return report


def linked_recordations(
    report: detention_pb2.DetentionReport, held: Iterable[recordation_pb2.Recordation]
) -> list[str]:
    """The recordations this node holds that a received report concerns."""
    wanted = {(ref.agency_id, ref.recordation) for ref in report.recordations}
    return sorted(r.name for r in held if (r.origin_agency, r.name) in wanted)


# --- matching -------------------------------------------------------------------------------

GTIN: Final = "gtin"
HS_CODE: Final = "hs_code"
RIGHT_NAME: Final = "right_name"
#: Rank of each way of matching (lower is stronger).
_RANK: Final = {GTIN: 0, RIGHT_NAME: 1, HS_CODE: 2}


def gtin_key(gtin: str, field: str = "gtin") -> str:
    """A GTIN as GTIN-14 (InvalidArgument if it is not one)."""
    return identifiers.gtin(gtin, field)


def hs_key(code: str) -> str:
    """The 6-digit subheading an HS, CN or TARIC code belongs to."""
    digits = re.sub(r"[\s.]+", "", code)
    if not re.fullmatch(r"\d{6}(?:\d{2}){0,2}", digits):
        raise FieldInvalid(
            f"{code!r} is not an HS code", violations={"hs_code": "6, 8 or 10 digits"}
        )
    return digits[:6]


def right_name_key(name: str) -> str:
    """A brand or right name as compared: no accents, case, punctuation or extra spaces.

    Not :func:`intelshare.identifiers.company_name`: a brand keeps words a
    company name drops ("Co", "AG" can be part of a mark).
    """
    decomposed = unicodedata.normalize("NFKD", name)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    return " ".join(re.split(r"[\W_]+", plain)).strip()


def index_keys(recordation: recordation_pb2.Recordation) -> frozenset[tuple[str, str]]:
    """The (kind, key) pairs a search index stores for a recordation.

    Values that do not parse (only possible in a received copy that another
    node validated by other rules) are left out rather than refused.
    """
    keys: set[tuple[str, str]] = set()
    for goods in recordation.goods:
        for gtin in goods.gtins:
            try:
                keys.add((GTIN, gtin_key(gtin)))
            except InvalidArgument:
                continue
        for code in goods.hs_codes:
            try:
                keys.add((HS_CODE, hs_key(code)))
            except InvalidArgument:
                continue
    for right in recordation.rights:
        name = right_name_key(right.name)
        if name:
            keys.add((RIGHT_NAME, name))
    return frozenset(keys)


@dataclass(frozen=True)
class Match:
    """A recordation a product may fall under, and what matched."""

    recordation: recordation_pb2.Recordation
    matched_by: tuple[str, ...]

    @property
    def rank(self) -> tuple[int, int]:
        return (min(_RANK[m] for m in self.matched_by), -len(self.matched_by))


def search(
    recordations: Iterable[recordation_pb2.Recordation],
    *,
    now: datetime,
    gtin: str = "",
    hs_code: str = "",
    right_name: str = "",
    include_inactive: bool = False,
) -> list[Match]:
    """The recordations that match every criterion given, best first (SearchRecordations).

    Raises InvalidArgument when no criterion is given or one is malformed.
    """
    wanted: dict[str, str] = {}
    if gtin.strip():
        wanted[GTIN] = gtin_key(gtin)
    if hs_code.strip():
        wanted[HS_CODE] = hs_key(hs_code)
    if right_name.strip():
        wanted[RIGHT_NAME] = right_name_key(right_name)
    if not wanted:
        raise FieldInvalid(
            "give a GTIN, an HS code or a right name to search by",
            violations={"gtin": "at least one of gtin, hs_code, right_name is required"},
        )
    found: list[Match] = []
    for recordation in recordations:
        if not include_inactive and not in_force(recordation, now):
            continue
        keys = index_keys(recordation)
        if all((kind, key) in keys for kind, key in wanted.items()):
            found.append(Match(recordation, tuple(sorted(wanted, key=_RANK.__getitem__))))
    found.sort(key=lambda m: (m.rank, m.recordation.name))
    return found


def match_detention(
    detention: detention_pb2.Detention,
    recordations: Iterable[recordation_pb2.Recordation],
    *,
    now: datetime,
) -> list[Match]:
    """The recordations in force any line of the detained goods may fall under, best first.

    This is what the node suggests (``suggested_recordations``); the officer
    confirms. A line matches a recordation by any one of its GTINs, its HS
    code or its brand; malformed values match nothing.
    """
    product: set[tuple[str, str]] = set()
    for goods in detention.goods:
        for gtin in goods.gtins:
            try:
                product.add((GTIN, gtin_key(gtin)))
            except InvalidArgument:
                continue
        if goods.hs_code:
            with contextlib.suppress(InvalidArgument):
                product.add((HS_CODE, hs_key(goods.hs_code)))
        brand = right_name_key(goods.brand)
        if brand:
            product.add((RIGHT_NAME, brand))
    found: list[Match] = []
    for recordation in recordations:
        if not in_force(recordation, now):
            continue
        common = product & index_keys(recordation)
        if common:
            kinds = tuple(sorted({kind for kind, _ in common}, key=_RANK.__getitem__))
            found.append(Match(recordation, kinds))
    found.sort(key=lambda m: (m.rank, m.recordation.name))
    return found
