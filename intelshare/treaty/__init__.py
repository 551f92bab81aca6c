"""Treaties: what may be shared with whom, and the policy decisions they imply.

A treaty is the legal basis for every message that crosses agencies. It is a
document that every party signs; it is *in force* only when every party has
signed it validly and the date is inside its validity window. Three places
enforce it (sending node, gateway, receiving node) and they must agree to the
byte, so this package is the single implementation they all call:

* :class:`Treaty` — the parsed, validated model. Validation is strict and
  reports every problem at once (:class:`~intelshare.errors.InvalidArgument`
  with one violation per field path), because a treaty is drafted by people
  and a typo in a category name silently narrows or widens what flows.
* The **canonical form** (:meth:`Treaty.canonical_bytes`) is what parties
  sign. It uses the same vocabulary as the YAML people draft
  (``valid: {from, until}``, ``max_handling: {code, tlp}``) so that what is
  signed reads like what was negotiated. JSON with sorted keys, compact
  separators, UTF-8 (no ASCII escaping), every key present (defaults
  written out), sets (parties, kinds, categories, field paths,
  review_required_for) sorted, dates as ``YYYY-MM-DD``.
  :meth:`Treaty.from_canonical` re-serializes and compares, so two different
  byte strings can never carry the same signed meaning.
* **Signatures** are Ed25519 over ``b"intelshare/v1 treaty\\x00" +
  SHA-256(document)``: the label keeps a treaty signature from ever being
  valid as an envelope or tree-head signature made with the same key.
* :func:`decide` is the deny-by-default policy check on a message header;
  :func:`redact` removes every field the treaty does not allow before
  sealing; :func:`onward_sharing_allowed` and :func:`retention_until` serve
  the receiving node.

Control kinds
-------------
Receipts, acknowledgements, revocations and the onward-sharing consent
messages (:data:`CONTROL_KINDS`) are *control* messages: they carry no
intelligence of their own, only a reference to a record that was already
shared. They ride on the treaty of the record they refer to, and a treaty
must **not** list them in ``kinds`` (validation refuses it, so nobody
believes omitting them forbids them). :func:`decide` lets them pass the kind
check under any treaty in force, but every other check still applies (treaty
in force, sender and recipients parties, handling and TLP within the
maximum, and any category given must be permitted; a control message may
carry no category). Checking that the referenced record really was shared
under the same treaty needs storage and is the caller's job (node / gateway:
compare ``reference_id``'s treaty). Control payloads are protocol messages,
not records: :func:`redact` returns an empty mapping for them, so do not run
them through it.

Modules
-------
Imports run one way, from the vocabulary up to the policy:

* :mod:`~intelshare.treaty.kinds` — data, control and record kinds, and the
  registry a deployment extends (:func:`register_record_kind`);
* :mod:`~intelshare.treaty.markings` — handling codes, TLP, onward-sharing rules;
* :mod:`~intelshare.treaty.validation` and :mod:`~intelshare.treaty.timestamps`
  — the checks behind the model's all-at-once validation, strict YAML, times;
* :mod:`~intelshare.treaty.model` — :class:`Treaty` and its canonical form;
* :mod:`~intelshare.treaty.signatures` — signing, verification, :func:`in_force`;
* :mod:`~intelshare.treaty.decisions` — :class:`Decision`, :func:`decide`, the
  review rule, onward sharing and retention;
* :mod:`~intelshare.treaty.redaction` — :func:`redact` and :func:`check_fields`.

Callers import from ``intelshare.treaty``; the names below are its public API.
"""

from intelshare.treaty.decisions import (
    Decision,
    decide,
    decide_header,
    decide_header_in_force,
    decide_review,
    onward_sharing_allowed,
    retention_until,
    review_matches,
    review_required,
)
from intelshare.treaty.kinds import (
    ALL_KINDS,
    CONTROL_KINDS,
    DATA_KINDS,
    RECORD_KINDS,
    alert_kind_name,
    kind_name,
    register_record_kind,
)
from intelshare.treaty.markings import (
    Handling,
    OnwardSharing,
    Tlp,
)
from intelshare.treaty.model import (
    Treaty,
    treaties_from_yaml,
)
from intelshare.treaty.redaction import (
    check_fields,
    redact,
    unpermitted_paths,
)
from intelshare.treaty.signatures import (
    SIGNATURE_LABEL,
    SignedTreatyDoc,
    document_digest,
    in_force,
    sign,
    signing_message,
    verify_signatures,
)

__all__ = [
    "ALL_KINDS",
    "CONTROL_KINDS",
    "DATA_KINDS",
    "RECORD_KINDS",
    "SIGNATURE_LABEL",
    "Decision",
    "Handling",
    "OnwardSharing",
    "SignedTreatyDoc",
    "Tlp",
    "Treaty",
    "alert_kind_name",
    "check_fields",
    "decide",
    "decide_header",
    "decide_header_in_force",
    "decide_review",
    "document_digest",
    "in_force",
    "kind_name",
    "onward_sharing_allowed",
    "redact",
    "register_record_kind",
    "retention_until",
    "review_matches",
    "review_required",
    "sign",
    "signing_message",
    "treaties_from_yaml",
    "unpermitted_paths",
    "verify_signatures",
]
