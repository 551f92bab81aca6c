"""The sharing engine: the life every record kind shares, in one place.

A record kind (:mod:`node.kinds`) knows its own record: its protobuf
message, its JSON form, its validation, its tables, what a received copy
does. Everything about *sharing* that record is the same for every kind
and lives here:

* **the treaty in force and its decision**: :meth:`Sharing.check` asks
  :func:`intelshare.treaty.decide` and raises the precise
  :class:`~intelshare.errors.PolicyRefused` subclass, with the treaty, its
  version and the rule that refused (``kinds``, ``parties``,
  ``categories``, ...) in the error's metadata, so every kind refuses in
  the same words;
* **per-view redaction**: recipients under one treaty share one *view*, the
  record with every field that treaty's allow-list does not name removed
  before sealing (:meth:`Sharing.plan` / :meth:`Sharing.views`), and the
  same plan without sealing answers a preview (:meth:`Sharing.preview`);
* **sealing and the durable outbound queue**: :meth:`Sharing.seal`, and
  :meth:`Sharing.queue` / :meth:`Sharing.queue_later`, which commit the
  envelope with the change that made it and wake the sender thread after
  commit (:mod:`node.sharing.outbox`, :mod:`node.sharing.outbound`);
* **control messages** (acknowledgements, hit reports, revocations) ride
  on the treaty version of the record they refer to
  (:meth:`Sharing.control`);
* **receipts** owed for received records (:mod:`node.sharing.receipts`);
* **inbound dispatch**: kinds register a handler per message kind
  (:meth:`Sharing.register`); the engine never imports a kind.
* **send failures**: the sender thread reports a refused envelope once;
  the engine hands it to every kind that asked (:meth:`Sharing.on_failed`).

Generic record kinds (those that need nothing beyond a stored record,
its views and its deliveries: recordations, detention reports, risk
profiles, risk hits, the tests' toy kind) run entirely on
:mod:`node.sharing.records` over this engine.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from intelshare import errors
from intelshare.treaty import Decision, Handling, Tlp, Treaty, decide, kind_name, redact
from intelshare.v1 import envelope_pb2
from node.schema.alert import field_paths
from node.sharing.inbound import Inbound
from node.sharing.incoming import Handler, Incoming, Refused, Stored
from node.sharing.outbox import PENDING, enqueue
from node.sharing.receipts import Receipts, receipt_references
from node.sharing.sealing import Sealed, Sealer
from node.sharing.trust import Trust
from node.storage import tables as t
from node.storage.store import Store, Writer, canonical_bytes, dumps, now_ms

log = logging.getLogger(__name__)

#: The treaty rule each refusal names in its metadata (``rule``).
RULES: Mapping[str, str] = {
    errors.TreatyNotInForce.reason: "in_force",
    errors.NotAParty.reason: "parties",
    errors.KindNotPermitted.reason: "kinds",
    errors.CategoryNotPermitted.reason: "categories",
    errors.HandlingNotPermitted.reason: "max_handling",
    errors.FieldNotPermitted.reason: "fields",
}


#: Given a receipt and the references it names that no consumer has claimed
#: yet, marks those it knows as delivered and answers each with what it is
#: about (the receipt's ``node_received`` row names the first); raises
#: :class:`Refused` for a reference shared under another treaty.
ReceiptConsumer = Callable[[Writer, Incoming, Sequence[str]], dict[str, Stored]]

#: Told of an envelope the gateway refused for good:
#: ``(w, message_id, message kind, record id, recipients, error)``.
FailureHandler = Callable[[Writer, str, int, "str | None", list[str], str], None]


@dataclass(frozen=True)
class View:
    """What the recipients under one treaty receive of one record."""

    treaty: Treaty
    recipients: list[str]
    #: the record as they see it: only what the treaty's allow-list names
    record: dict[str, Any]
    #: field paths of the full record that the treaty removed
    removed: list[str]
    #: the sealed envelope (None in a preview)
    sealed: Sealed | None = None


@dataclass(frozen=True)
class Refusal:
    """Why a treaty refuses a record for some recipients (a preview's answer)."""

    treaty_id: str
    treaty_version: int
    recipients: list[str]
    error: errors.IntelshareError


@dataclass(frozen=True)
class Share:
    """What a kind asks the engine to share: one record, its header facts."""

    #: the record's JSON form (what redaction works on)
    record: Mapping[str, Any]
    #: treaty kind name checked against ``kinds:`` (e.g. "alert", "case_entry")
    treaty_kind: str
    #: the allow-list the record is redacted with (usually ``treaty_kind``)
    fields_kind: str
    message_kind: envelope_pb2.MessageKind.ValueType
    handling: int
    tlp: int
    categories: Sequence[str]
    expire_ms: int
    #: the alert's own kind, for treaties that reserve some for review
    alert_kind: str = ""
    #: for MESSAGE_KIND_RECORD / RECORD_UPDATE: the record kind the header names
    record_kind: str = ""
    #: the full record's leaf paths (for ``removed``); computed when empty
    paths: frozenset[str] = field(default_factory=frozenset)
    #: released after review: the attestation each envelope carries (its
    #: payload digest is filled in per view when sealing; intelshare.review)
    review: envelope_pb2.ReviewAttestation | None = None
    #: passed on by a recipient: the provenance each envelope carries
    provenance: envelope_pb2.Provenance | None = None


class Sharing:
    """The engine of one node: see the module docstring."""

    def __init__(
        self,
        *,
        agency_id: str,
        store: Store,
        trust: Trust,
        sealer: Sealer,
        inbound: Inbound,
        wake_sender: Callable[[], None],
        control_message_days: int,
    ) -> None:
        self.agency_id = agency_id
        self.store = store
        self.trust = trust
        self.sealer = sealer
        self.inbound = inbound
        self.wake_sender = wake_sender
        self.control_message_days = control_message_days
        self._failure_handlers: list[FailureHandler] = []
        self._receipt_consumers: list[ReceiptConsumer] = []
        #: receipts owed for received records (node.sharing.receipts); the node starts its thread
        self.receipts = Receipts(store, sealer, self.queue_later, self.control_expire_ms)
        inbound.register(envelope_pb2.MESSAGE_KIND_RECEIPT, self._on_receipt)

    # --- registration -------------------------------------------------------------------

    def register(self, kind: int, handler: Handler) -> None:
        """Handle inbound envelopes of message ``kind`` with ``handler``."""
        self.inbound.register(kind, handler)

    def on_receipt(self, consumer: ReceiptConsumer) -> None:
        """Let ``consumer`` mark delivered what it shared (see :data:`ReceiptConsumer`)."""
        self._receipt_consumers.append(consumer)

    def _on_receipt(self, w: Writer, inc: Incoming) -> Stored:
        """A recipient's receipt: every record it names is marked delivered.

        Each kind marks what it shared; a reference shared under another
        treaty refuses the whole receipt (the partner claims what it cannot
        have received so); a reference to nothing ever sent to this partner
        is ignored, and only a receipt naming nothing we sent is refused.
        """
        h = inc.header
        refs = receipt_references(inc.payload, h.reference_id)
        known: dict[str, Stored] = {}
        for consumer in self._receipt_consumers:
            remaining = [r for r in refs if r not in known]
            if not remaining:
                break
            known.update(consumer(w, inc, remaining))
        unknown = [r for r in refs if r not in known]
        if not known:
            raise Refused("REFERENCE_UNKNOWN", f"no record {unknown[0]!r} was sent to {h.sender}")
        if unknown:
            log.warning(
                "receipt %s from %s names %d record(s) never sent to it (ignored), first %s",
                h.message_id,
                h.sender,
                len(unknown),
                unknown[0],
            )
        return known[next(r for r in refs if r in known)]

    def on_failed(self, handler: FailureHandler) -> None:
        """Tell ``handler`` about every envelope the gateway refused for good."""
        self._failure_handlers.append(handler)

    def send_failed(
        self,
        w: Writer,
        message_id: str,
        kind: int,
        record_id: str | None,
        recipients: list[str],
        error: str,
    ) -> None:
        """The sender thread's report of a refused envelope (:class:`Sender` ``on_failed``)."""
        for handler in self._failure_handlers:
            handler(w, message_id, kind, record_id, recipients, error)

    # --- treaties -------------------------------------------------------------------------

    def current(self, treaty_id: str) -> Treaty:
        """The newest version in force (``TREATY_NOT_IN_FORCE`` otherwise)."""
        return self.trust.current(treaty_id).treaty

    def in_force_version(self, treaty_id: str, version: int) -> Treaty:
        """A specific version, which must be in force now (for control messages)."""
        doc = self.trust.treaty(treaty_id, version)
        if doc is None or not self.trust.in_force(doc):
            raise errors.TreatyNotInForce(
                f"treaty {treaty_id} v{version} is not in force any more",
                metadata={"treaty_id": treaty_id, "treaty_version": str(version)},
            )
        return doc.treaty

    def in_force_or_current(self, treaty_id: str, version: int) -> Treaty:
        """``version`` while it is in force, else the newest version in force."""
        doc = self.trust.treaty(treaty_id, version)
        if doc is not None and self.trust.in_force(doc):
            return doc.treaty
        return self.current(treaty_id)

    def decision(
        self,
        treaty: Treaty,
        *,
        kind: str,
        recipients: Sequence[str],
        categories: Sequence[str],
        handling: int,
        tlp: int,
        alert_kind: str = "",
        attested: envelope_pb2.Header | None = None,
    ) -> Decision:
        """The treaty's answer for sending ``kind`` to ``recipients``.

        With no recipients (a case opened by its owner alone, say) it is
        whether this agency may use ``kind`` under the treaty at all.
        What a treaty reserves for an approver's review is refused
        (``REVIEW_REQUIRED``) unless ``attested`` (the header about to be
        signed) carries an approval, as at the gateway; the approval flow
        itself is :mod:`node.kinds.reviews`.
        """
        if recipients:
            return decide(
                treaty,
                in_force=True,
                sender=self.agency_id,
                recipients=list(recipients),
                kind=kind,
                categories=list(categories),
                handling=Handling(handling),
                tlp=Tlp(tlp),
                review=True,
                alert_kind=alert_kind,
                attested=attested,
            )
        if not treaty.is_party(self.agency_id):
            return Decision.refuse(
                errors.NotAParty, f"{self.agency_id} is not a party of treaty {treaty.label}"
            )
        if kind not in treaty.kinds:
            return Decision.refuse(
                errors.KindNotPermitted, f"treaty {treaty.label} does not permit kind {kind}"
            )
        return Decision.allow("nothing to send")

    def check(
        self,
        treaty: Treaty,
        *,
        kind: str,
        recipients: Sequence[str],
        categories: Sequence[str],
        handling: int,
        tlp: int,
        alert_kind: str = "",
        attested: envelope_pb2.Header | None = None,
    ) -> None:
        """Raise the precise ``PolicyRefused`` (treaty, version, rule) unless permitted."""
        decision = self.decision(
            treaty,
            kind=kind,
            recipients=recipients,
            categories=categories,
            handling=handling,
            tlp=tlp,
            alert_kind=alert_kind,
            attested=attested,
        )
        if decision:
            return
        try:
            decision.raise_if_refused()
        except errors.PolicyRefused as exc:
            _name_treaty(exc, treaty)
            raise

    def _require_known(self, agencies: Sequence[str]) -> None:
        """An agency missing from the directory is named so, not as a non-party of a treaty."""
        directory = self.trust.directory
        for agency in agencies:
            if agency not in directory:
                raise errors.AgencyUnknown(
                    f"{agency} is not an agency of the federation's directory",
                    metadata={"agency_id": agency},
                )

    # --- views ----------------------------------------------------------------------------

    def plan(self, share: Share, groups: Mapping[str, Sequence[str]]) -> list[View | Refusal]:
        """Check and redact ``share`` for each treaty's recipients; seal nothing.

        ``groups`` maps a treaty id to the agencies receiving under it. The
        answer is in treaty id order: a view for each treaty that permits,
        a refusal (with the error ``check`` would raise) for each that does not.
        """
        paths = share.paths or frozenset(field_paths(share.record))
        out: list[View | Refusal] = []
        for treaty_id in sorted(groups):
            agencies = sorted(groups[treaty_id])
            try:
                self._require_known(agencies)
                treaty = self.current(treaty_id)
                self.check(
                    treaty,
                    kind=share.treaty_kind,
                    recipients=agencies,
                    categories=share.categories,
                    handling=share.handling,
                    tlp=share.tlp,
                    alert_kind=share.alert_kind,
                    attested=_attested(share),
                )
            except errors.IntelshareError as exc:
                version = exc.metadata.get("treaty_version", "0")
                out.append(Refusal(treaty_id, int(version or 0), agencies, exc))
                continue
            view = redact(share.record, treaty, share.fields_kind)
            removed = sorted(paths - set(field_paths(view)))
            out.append(View(treaty, agencies, view, removed))
        return out

    def views(
        self,
        share: Share,
        groups: Mapping[str, Sequence[str]],
        *,
        reference_ids: Mapping[str, str] | None = None,
        case_id: str = "",
    ) -> list[View]:
        """:meth:`plan`, refusing on the first treaty that refuses, then seal each view.

        ``reference_ids`` (treaty id -> message id) makes each view's
        envelope refer to an earlier one: an update of what that view sent.
        """
        planned = self.plan(share, groups)
        sealed: list[View] = []
        for item in planned:
            if isinstance(item, Refusal):
                raise item.error
        for item in planned:
            assert isinstance(item, View)
            ref = (reference_ids or {}).get(item.treaty.id, "")
            envelope = self.seal(
                item.treaty,
                kind=share.message_kind,
                recipients=item.recipients,
                handling=share.handling,
                tlp=share.tlp,
                categories=share.categories,
                expire_ms=share.expire_ms,
                payload=item.record,
                reference_id=ref,
                case_id=case_id,
                record_kind=share.record_kind,
                review=share.review,
                provenance=share.provenance,
            )
            sealed.append(View(item.treaty, item.recipients, item.record, item.removed, envelope))
        return sealed

    # --- sealing and queueing -----------------------------------------------------------------

    def seal(
        self,
        treaty: Treaty,
        *,
        kind: envelope_pb2.MessageKind.ValueType,
        recipients: Sequence[str],
        handling: int,
        tlp: int,
        categories: Sequence[str],
        expire_ms: int,
        payload: Mapping[str, Any],
        reference_id: str = "",
        case_id: str = "",
        record_kind: str = "",
        review: envelope_pb2.ReviewAttestation | None = None,
        provenance: envelope_pb2.Provenance | None = None,
        consent: envelope_pb2.OnwardConsent | None = None,
    ) -> Sealed:
        """One envelope of ``payload`` (canonical JSON) under ``treaty``, for ``recipients``.

        A ``review`` attestation is bound to this payload: its digest is
        the SHA-256 of exactly the bytes sealed.
        """
        data = canonical_bytes(dict(payload))
        if review is not None:
            bound = envelope_pb2.ReviewAttestation()
            bound.CopyFrom(review)
            bound.payload_sha256 = hashlib.sha256(data).digest()
            review = bound
        return self.sealer.seal(
            kind=kind,
            recipients=sorted(recipients),
            treaty_id=treaty.id,
            treaty_version=treaty.version,
            handling=handling,  # type: ignore[arg-type]
            tlp=tlp,  # type: ignore[arg-type]
            categories=list(categories),
            expire_ms=expire_ms,
            payload=data,
            reference_id=reference_id,
            case_id=case_id,
            record_kind=record_kind,
            review=review,
            provenance=provenance,
            consent=consent,
        )

    def control(
        self,
        *,
        kind: envelope_pb2.MessageKind.ValueType,
        to: str,
        treaty_id: str,
        treaty_version: int,
        handling: int,
        tlp: int,
        reference_id: str,
        payload: Mapping[str, Any],
        categories: Sequence[str] = (),
    ) -> Sealed:
        """A control message about a received record, to its origin.

        It rides on the treaty version the record came under, which must
        still be in force, and is checked like any message of its kind.
        """
        treaty = self.in_force_version(treaty_id, treaty_version)
        self.check(
            treaty,
            kind=kind_name(kind),
            recipients=[to],
            categories=categories,
            handling=handling,
            tlp=tlp,
        )
        return self.seal(
            treaty,
            kind=kind,
            recipients=[to],
            handling=handling,
            tlp=tlp,
            categories=categories,
            expire_ms=self.control_expire_ms(),
            payload=payload,
            reference_id=reference_id,
        )

    def control_expire_ms(self) -> int:
        return now_ms() + self.control_message_days * 86_400_000

    def queue(self, w: Writer, sealed: Sealed, *, record_id: str | None = None) -> None:
        """Queue ``sealed`` in the caller's transaction; wake the sender after commit."""
        enqueue(w, sealed, alert_id=record_id)
        w.after_commit(self.wake_sender)

    def queue_later(self, w: Writer, sealed: Sequence[Sealed], record_id: str | None) -> None:
        """What :meth:`queue` does, with the outbox rows written at the end.

        The same rows and the same ``sealed`` audit entries as
        :func:`node.sharing.outbox.enqueue`, but the rows go in with the
        events (:meth:`Writer.insert_later`, one statement on PostgreSQL):
        for the hot paths (issuing, the receipt for a received record),
        where nothing reads the rows back before commit.
        """
        rows = []
        for s in sealed:
            digest = s.envelope_sha256
            rows.append(
                {
                    "message_id": s.message_id,
                    "kind": s.kind,
                    "alert_id": record_id,
                    "case_id": s.case_id or None,
                    "reference_id": s.reference_id or None,
                    "treaty_id": s.treaty_id,
                    "treaty_version": s.treaty_version,
                    "recipients": dumps(list(s.recipients)),
                    "payload": s.payload,
                    "payload_sha256": s.payload_sha256,
                    "envelope": s.envelope,
                    "envelope_sha256": digest,
                    "created_ms": s.created_ms,
                    "expire_ms": s.expire_ms,
                    "state": PENDING,
                    "attempts": 0,
                    "next_attempt_ms": 0,
                }
            )
            w.audit(
                "sealed",
                {
                    "message_id": s.message_id,
                    "kind": kind_name(s.kind, s.record_kind),
                    "recipients": list(s.recipients),
                    "treaty": f"{s.treaty_id}@{s.treaty_version}",
                    "reference_id": s.reference_id or None,
                    "envelope_sha256": digest.hex(),
                },
            )
        w.insert_later(t.outbound, rows)
        w.after_commit(self.wake_sender)


def _attested(share: Share) -> envelope_pb2.Header | None:
    """The header facts the review rule looks at, before the envelope is sealed.

    Sealing comes right after the plan, so "now" stands for its creation
    time; the payload digest is a placeholder until each view is sealed.
    """
    if share.review is None:
        return None
    header = envelope_pb2.Header(review=share.review)
    header.review.payload_sha256 = b"\0" * 32
    header.create_time.FromMilliseconds(now_ms())
    header.expire_time.FromMilliseconds(share.expire_ms)
    return header


def _name_treaty(exc: errors.IntelshareError, treaty: Treaty) -> None:
    exc.metadata.update(treaty_id=treaty.id, treaty_version=str(treaty.version))
    # A rule the decision named itself (e.g. review_required_for) is kept.
    exc.metadata.setdefault("rule", RULES.get(exc.reason, "policy"))
