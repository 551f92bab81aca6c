"""The TreatyService servicer: the treaties an officer's agency may share under.

Read-only, and answered from what the node itself enforces: the signed
treaties :class:`~node.sharing.trust.Trust` holds, checked against the
federation directory at the moment of the call. A treaty is listed when
this agency is one of its parties, in force or not, with its standing
(why it is or is not in force) so an officer learns *before* sharing that
a treaty cannot be used, and which party has not signed.

Versions: one entry per treaty id, the version in force now or, when no
version is, the newest held (an amendment not yet signed by every party
does not hide the version in force). ``GetTreaty`` takes a version to see
another one the node holds.

Field allow-lists are translated from the record vocabulary the signed
document uses into the protos' field paths (:mod:`node.schema.field_paths`).

Listings are ordered by treaty id and paged with the node's sealed page
tokens, bound to the officer and to ``in_force_only``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import grpc

from intelshare import errors
from intelshare.treaty import SignedTreatyDoc, Treaty, verify_signatures
from intelshare.v1 import envelope_pb2, treaty_service_pb2, treaty_service_pb2_grpc
from node.api.base import KindServicer
from node.schema import field_paths
from node.schema.alert import ms_to_ts
from node.sharing.trust import Trust
from node.storage.officers import Permission

S = treaty_service_pb2

COLLECTION = "treaties"
LISTING = "treaties"
DEFAULT_PAGE = 50
MAX_PAGE = 500
_ID_RE = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,126}[a-z0-9])?")

_ONWARD = {
    "forbidden": S.ONWARD_SHARING_FORBIDDEN,
    "with_originator_consent": S.ONWARD_SHARING_WITH_ORIGINATOR_CONSENT,
    "within_treaty": S.ONWARD_SHARING_WITHIN_TREATY,
}


def treaty_name(treaty_id: str) -> str:
    return f"{COLLECTION}/{treaty_id}"


def parse_treaty_name(name: str) -> str:
    """The treaty id of ``treaties/{treaty_id}``; ``NAME_INVALID`` otherwise."""
    prefix = f"{COLLECTION}/"
    ident = name[len(prefix) :] if name.startswith(prefix) else ""
    if not _ID_RE.fullmatch(ident):
        what = "is empty" if not name else f"{name[:80]!r} is not of that form"
        raise errors.NameInvalid(
            f"name must be treaties/{{treaty_id}} (a treaty id: lower-case letters, digits, "
            f"'.', '_', '-'); {what}",
            violations={"name": "expected treaties/{treaty_id}"},
        )
    return ident


class TreatyServicer(KindServicer, treaty_service_pb2_grpc.TreatyServiceServicer):
    def __init__(self, *, trust: Trust, **common: Any) -> None:
        super().__init__(**common)
        self.trust = trust

    def ListTreaties(
        self, request: S.TreatyServiceListTreatiesRequest, context: grpc.ServicerContext
    ) -> S.TreatyServiceListTreatiesResponse:
        officer = self.officers.require(context, Permission.READ)
        if request.page_size < 0:
            raise errors.PageSizeInvalid(
                "page_size must not be negative", violations={"page_size": ">= 0"}
            )
        size = min(request.page_size or DEFAULT_PAGE, MAX_PAGE)
        filters = "in_force" if request.in_force_only else "all"
        after = self.store.page_tokens.read(
            request.page_token,
            listing=LISTING,
            filters=filters,
            caller=officer.officer_id,
            size=1,
        )
        now = self.trust.clock()
        views = []
        for treaty_id, docs in sorted(self._ours().items()):
            if after is not None and treaty_id <= str(after[0]):
                continue
            view = self._view(docs, _shown(docs, self.trust, now), now)
            if request.in_force_only and not view.in_force:
                continue
            views.append(view)
            if len(views) > size:
                break
        more = len(views) > size
        views = views[:size]
        token = (
            self.store.page_tokens.issue(
                listing=LISTING,
                filters=filters,
                caller=officer.officer_id,
                position=[views[-1].treaty_id],
            )
            if more
            else ""
        )
        return S.TreatyServiceListTreatiesResponse(treaties=views, next_page_token=token)

    def GetTreaty(
        self, request: S.TreatyServiceGetTreatyRequest, context: grpc.ServicerContext
    ) -> S.AgencyTreaty:
        self.officers.require(context, Permission.READ)
        treaty_id = parse_treaty_name(request.name)
        docs = self._ours().get(treaty_id)
        if not docs:
            raise errors.TreatyNotFound(
                f"this node holds no treaty {treaty_id} that {self.trust.agency_id} is a party of",
                metadata={"treaty_id": treaty_id},
            )
        now = self.trust.clock()
        if request.version:
            chosen = [d for d in docs if d.treaty.version == request.version]
            if not chosen:
                held = ", ".join(str(d.treaty.version) for d in docs)
                raise errors.TreatyNotFound(
                    f"this node holds treaty {treaty_id} in version {held}, not {request.version}",
                    metadata={"treaty_id": treaty_id, "version": str(request.version)},
                )
            return self._view(docs, chosen[0], now)
        return self._view(docs, _shown(docs, self.trust, now), now)

    # --- views -------------------------------------------------------------------------

    def _ours(self) -> dict[str, list[SignedTreatyDoc]]:
        """This agency's treaties: id -> every version held, ascending."""
        out: dict[str, list[SignedTreatyDoc]] = {}
        for doc in self.trust.held():
            if doc.treaty.is_party(self.trust.agency_id):
                out.setdefault(doc.treaty.id, []).append(doc)
        for docs in out.values():
            docs.sort(key=lambda d: d.treaty.version)
        return out

    def _view(
        self, docs: list[SignedTreatyDoc], doc: SignedTreatyDoc, now: datetime
    ) -> S.AgencyTreaty:
        treaty = doc.treaty
        standing, detail, unsigned = _standing(self.trust, doc, now)
        return S.AgencyTreaty(
            name=treaty_name(treaty.id),
            treaty_id=treaty.id,
            version=treaty.version,
            versions=[d.treaty.version for d in docs],
            title=treaty.title,
            purpose=treaty.purpose,
            parties=treaty.parties,
            partners=[p for p in treaty.parties if p != self.trust.agency_id],
            start_time=ms_to_ts(int(treaty.valid_start.timestamp() * 1000)),
            end_time=ms_to_ts(int(treaty.valid_end.timestamp() * 1000)),
            in_force=standing == S.TREATY_STANDING_IN_FORCE,
            standing=standing,
            standing_detail=detail,
            unsigned_parties=unsigned,
            kinds=treaty.kinds,
            categories=treaty.categories,
            max_handling=envelope_pb2.HandlingCode.Value(
                f"HANDLING_CODE_{treaty.max_handling.name}"
            ),
            max_tlp=envelope_pb2.Tlp.Value(f"TLP_{treaty.max_tlp.name}"),
            retention_days=treaty.retention_days,
            onward_sharing=_ONWARD.get(treaty.onward_sharing.value, S.ONWARD_SHARING_UNSPECIFIED),
            review_required_for=treaty.review_required_for,
            fields=list(_fields(treaty)),
        )


def _fields(treaty: Treaty) -> Iterable[S.TreatyKindFields]:
    """One allow-list per kind the treaty lists (in the protos' paths), by kind.

    A kind without its own list reads as it is enforced: alert updates are
    redacted with the alert's list; any other kind passes no content.
    """
    for kind in treaty.kinds:
        source = "alert" if kind == "alert_update" else kind
        yield S.TreatyKindFields(
            kind=kind,
            message=field_paths.message_name(kind),
            paths=field_paths.to_proto_paths(kind, treaty.fields.get(source, ())),
        )


def _shown(docs: list[SignedTreatyDoc], trust: Trust, now: datetime) -> SignedTreatyDoc:
    """The newest version in force now, else the newest held."""
    try:
        for doc in reversed(docs):
            if trust.in_force(doc, now):
                return doc
    except errors.DirectoryInvalid:
        pass  # nothing can be found in force; the standing says why
    return docs[-1]


def _standing(
    trust: Trust, doc: SignedTreatyDoc, now: datetime
) -> tuple[S.TreatyStanding.ValueType, str, list[str]]:
    """(standing, in words, parties not validly signed) of ``doc`` at ``now``.

    The same conditions as :func:`intelshare.treaty.in_force`, told apart.
    """
    treaty = doc.treaty
    try:
        directory = trust.directory
    except errors.DirectoryInvalid as exc:
        return S.TREATY_STANDING_UNVERIFIED, exc.message, []
    try:
        signed = verify_signatures(doc, directory, now)
    except errors.IntelshareError:
        signed = set()
    unsigned = [p for p in treaty.parties if p not in signed]
    if now < treaty.valid_start:
        return (
            S.TREATY_STANDING_NOT_YET_VALID,
            f"valid from {treaty.valid_from.isoformat()}",
            unsigned,
        )
    if now >= treaty.valid_end:
        return (
            S.TREATY_STANDING_ENDED,
            f"validity ended after {treaty.valid_until.isoformat()}",
            unsigned,
        )
    if unsigned:
        return (
            S.TREATY_STANDING_NOT_SIGNED,
            f"not signed (or not verifiably) by {', '.join(unsigned)}",
            unsigned,
        )
    last = treaty.valid_end - timedelta(days=1)
    return S.TREATY_STANDING_IN_FORCE, f"in force until {last.date().isoformat()}", []
