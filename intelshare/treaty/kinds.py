"""The kinds of message a treaty speaks of, and the registry of record kinds.

A treaty lists the *data* kinds that may flow under it; *control* kinds ride
on the treaty of the record they refer to and are never listed (see
:mod:`intelshare.treaty`). Record kinds of the node's generic record engine
travel under one message kind with their name in the header, so the set of
them is a registry a deployment can extend: :data:`RECORD_KINDS` lives here
and only here, and :func:`register_record_kind` adds to it in place.
"""

from __future__ import annotations

import re
from typing import Final

from intelshare.v1 import alert_pb2, envelope_pb2

#: Kinds that carry records and must be listed by a treaty to flow under it.
DATA_KINDS: Final = frozenset(
    {"alert", "alert_update", "case_entry", "case_membership", "hit_report"}
)
#: Kinds that only refer to a record already shared; see the package docstring.
CONTROL_KINDS: Final = frozenset(
    {
        "receipt",
        "acknowledgement",
        "alert_revocation",
        "record_revocation",
        # onward sharing (intelshare.onward): ride on the treaty of the record asked about
        "consent_request",
        "consent_grant",
        "consent_refusal",
    }
)
#: Every kind name of a ``MessageKind`` value (lower case, prefix removed).
ALL_KINDS: Final = DATA_KINDS | CONTROL_KINDS
#: Record kinds that travel as ``MESSAGE_KIND_RECORD`` / ``RECORD_UPDATE`` with
#: their name in the header's ``record_kind``: the kinds of the node's generic
#: record engine. The federation's vocabulary: a treaty may list only kinds
#: named here or in ``DATA_KINDS``. A deployment adding a kind of its own
#: calls :func:`register_record_kind` in every process (nodes and gateway).
RECORD_KINDS: set[str] = {"recordation", "detention_report", "risk_profile", "risk_hit"}

_RECORD_MESSAGE_KINDS: Final = frozenset(
    {envelope_pb2.MESSAGE_KIND_RECORD, envelope_pb2.MESSAGE_KIND_RECORD_UPDATE}
)

#: The shape of a kind or category name (lower-case snake_case); the treaty
#: validation checks names against it too.
_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")


def register_record_kind(name: str) -> None:
    """Add ``name`` to the record kinds treaties may list (see :data:`RECORD_KINDS`)."""
    if not _NAME_RE.fullmatch(name) or name in ALL_KINDS:
        raise ValueError(f"{name!r} cannot be a record kind")
    RECORD_KINDS.add(name)


def kind_name(kind: int, record_kind: str = "") -> str:
    """The treaty kind name of a message ("" if unspecified/unknown).

    The lower-case ``MessageKind`` name, except for records and record
    updates, which are of the record kind their header names.
    """
    if kind in _RECORD_MESSAGE_KINDS:
        return record_kind if record_kind in RECORD_KINDS else ""
    try:
        full = envelope_pb2.MessageKind.Name(kind)  # type: ignore[arg-type]
    except ValueError:
        return ""
    name = full.removeprefix("MESSAGE_KIND_").lower()
    return name if name in ALL_KINDS else ""


def alert_kind_name(kind: int) -> str:
    """The lower-case name of an ``AlertKind`` value (``wanted_person``; "" if unspecified).

    The same words as the data categories an alert kind implies (every kind
    but ``other`` implies the category of its name), and as the names a
    treaty's ``review_required_for`` uses for alert kinds.
    """
    try:
        full = alert_pb2.AlertKind.Name(kind)  # type: ignore[arg-type]
    except ValueError:
        return ""
    name = full.removeprefix("ALERT_KIND_").lower()
    return "" if name == "unspecified" else name
