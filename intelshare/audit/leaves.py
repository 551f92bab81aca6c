"""Audit leaves: the canonical JSON bytes of an entry, built and checked.

Leaves are canonical JSON metadata, never payloads: callers pass header
fields (message ids, agency ids, kinds, digests, reasons), nothing that a
treaty's retention rules would later require to be erased, because an
append-only log cannot forget. :data:`MAX_LEAF_BYTES` keeps them that way.

An entry is ``{"event", "time", **fields}``: names from a small alphabet,
values scalars or lists of strings (:data:`FieldValue`), encoded with sorted
keys, no whitespace and UTF-8 (:func:`canonical_leaf`). Because the encoding
is canonical, the same entry always gives the same bytes, and
:func:`check_entry` can tell a stored leaf that this module wrote from one
written by anything else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeAlias

from sqlalchemy import Row

from intelshare.audit import merkle
from intelshare.errors import AuditLogInvalid, InvalidArgument

__all__ = [
    "MAX_LEAF_BYTES",
    "FieldValue",
    "canonical_leaf",
    "check_entry",
    "rfc3339",
    "stamped_leaf",
]

FieldValue = str | int | bool | list[str] | None
"""What an entry field may hold: scalars and lists of strings, nothing nested."""

MAX_LEAF_BYTES = 16 * 1024
"""Upper bound of one leaf: generous for metadata, too small to smuggle a payload in."""

_AnyRow: TypeAlias = Row[*tuple[Any, ...]]

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,63}")
_RESERVED = frozenset({"event", "time"})
_INT64 = 1 << 63


def rfc3339(t: datetime) -> str:
    """``t`` as the leaves write it: RFC 3339, UTC, microseconds."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _check_value(name: str, value: object) -> FieldValue:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if not -_INT64 <= value < _INT64:
            raise InvalidArgument(
                f"audit field {name!r} is out of the 64-bit range",
                violations={name: "integer out of range"},
            )
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return list(value)
    raise InvalidArgument(
        f"audit field {name!r} has type {type(value).__name__}; "
        "allowed: str, int, bool, None, list of str",
        violations={name: "unsupported type"},
    )


def canonical_leaf(event: str, time: datetime, fields: Mapping[str, FieldValue]) -> bytes:
    """The leaf bytes of an entry: canonical JSON of ``{"event", "time", **fields}``.

    Sorted keys, no whitespace, UTF-8, no floats: the same entry always gives
    the same bytes, so anyone holding the leaf can recompute its hash and a
    verifier can tell a well-formed leaf from a forged one.
    """
    if time.tzinfo is None:
        raise InvalidArgument("audit time must be timezone-aware")
    return stamped_leaf(event, rfc3339(time), fields)


# Names that passed the checks below (event and field names are a small,
# fixed vocabulary in practice): later entries skip the regular expression.
_GOOD_NAMES: set[str] = set()
_GOOD_NAMES_MAX = 4096


def _good_name(name: object) -> bool:
    if name in _GOOD_NAMES:
        return True
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in _RESERVED:
        return False
    if len(_GOOD_NAMES) < _GOOD_NAMES_MAX:
        _GOOD_NAMES.add(name)
    return True


def stamped_leaf(event: str, stamp: str, fields: Mapping[str, FieldValue]) -> bytes:
    """:func:`canonical_leaf` with the time already formatted by :func:`rfc3339`.

    A batch's entries share one time, formatted once for all of them.
    """
    if not (isinstance(event, str) and (event in _GOOD_NAMES or _NAME.fullmatch(event))):
        raise InvalidArgument(
            "audit event must match [A-Za-z][A-Za-z0-9_.:-]{0,63}",
            violations={"event": "invalid name"},
        )
    doc: dict[str, Any] = {"event": event, "time": stamp}
    for name, value in fields.items():
        if not _good_name(name):
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                raise InvalidArgument(
                    f"audit field name {name!r} must match [A-Za-z][A-Za-z0-9_.:-]{{0,63}}",
                    violations={str(name): "invalid name"},
                )
            raise InvalidArgument(
                f"audit field name {name!r} is reserved", violations={name: "reserved"}
            )
        doc[name] = _check_value(name, value)
    try:
        data = _dumps(doc)
    except UnicodeEncodeError as exc:
        raise InvalidArgument("audit fields must be valid Unicode text") from exc
    if len(data) > MAX_LEAF_BYTES:
        raise InvalidArgument(
            f"audit entry is {len(data)} bytes, more than {MAX_LEAF_BYTES}: "
            "log header metadata, never payloads"
        )
    return data


# One encoder for every leaf: ``json.dumps`` with options builds one per call.
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def _dumps(doc: Mapping[str, Any]) -> bytes:
    return _ENCODER.encode(doc).encode("utf-8")


def check_entry(entry: _AnyRow) -> bytes:
    """Recompute an entry's leaf hash, checking the leaf is a well-formed canonical leaf."""
    index = entry.idx
    data = bytes(entry.leaf)
    h = merkle.leaf_hash(data)
    if bytes(entry.leaf_hash) != h:
        raise AuditLogInvalid(f"audit entry {index}: leaf does not match its stored hash")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise AuditLogInvalid(f"audit entry {index}: leaf is not JSON") from None
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("event"), str)
        or not isinstance(doc.get("time"), str)
        or _dumps(doc) != data
    ):
        raise AuditLogInvalid(f"audit entry {index}: leaf is not a canonical audit leaf")
    if doc["event"] != entry.event:
        raise AuditLogInvalid(f"audit entry {index}: event column does not match the leaf")
    return h
