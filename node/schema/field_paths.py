"""One vocabulary of field paths for officers: the protos'.

A treaty's allow-lists (``fields``) name paths of the *record*, the JSON
form that crosses agencies (:mod:`node.schema.alert`, :mod:`node.schema.case`
and the record kinds' own forms), because that is what the sending node
redacts and the receiving node checks, byte for byte, under a signed
document. Those names are almost the protos' own: subject messages, case
entries, recordations, detention reports and risk hits use the field names
of their messages. A few record keys differ from the message field they
carry, and officers (and any client written from ``protos/`` alone) should
not have to know them:

=============  =======================  ==========================
kind           record key               proto field
=============  =======================  ==========================
alert,         ``expires_at``           ``Alert.expire_time``
alert_update
hit_report     ``found_at``             ``Hit.found_time``
risk_profile   ``valid_from``           ``RiskProfile.start_time``
risk_profile   ``valid_until``          ``RiskProfile.end_time``
=============  =======================  ==========================

Only a path's first segment is ever renamed (every renamed key is a
top-level scalar); everything below it is the same in both forms. A kind
not in :data:`KIND_MESSAGES` (one a deployment registered itself) keeps
its paths as they are, with no message named.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from intelshare.v1 import alert_pb2, case_pb2, detention_pb2, recordation_pb2, risk_profile_pb2


@dataclass(frozen=True)
class KindMessage:
    """The message a record kind is read as, and its record keys that are named otherwise."""

    message: type[Message]
    #: record key -> proto field name (top-level only)
    renamed: Mapping[str, str] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        return str(self.message.DESCRIPTOR.full_name)


_ALERT = KindMessage(alert_pb2.Alert, {"expires_at": "expire_time"})

#: Every record kind of the federation's vocabulary (intelshare.treaty) with its message.
KIND_MESSAGES: Final[Mapping[str, KindMessage]] = {
    "alert": _ALERT,
    # an update carries the alert's fields again
    "alert_update": _ALERT,
    "hit_report": KindMessage(alert_pb2.Hit, {"found_at": "found_time"}),
    "case_entry": KindMessage(case_pb2.CaseEntry),
    # the record of a membership message is the case's own part: {"title": ...}
    "case_membership": KindMessage(case_pb2.Case),
    "recordation": KindMessage(recordation_pb2.Recordation),
    "detention_report": KindMessage(detention_pb2.DetentionReport),
    "risk_profile": KindMessage(
        risk_profile_pb2.RiskProfile, {"valid_from": "start_time", "valid_until": "end_time"}
    ),
    "risk_hit": KindMessage(risk_profile_pb2.RiskHit),
}


def message_name(kind: str) -> str:
    """The full proto name of the message ``kind`` is read as ("" when there is none)."""
    known = KIND_MESSAGES.get(kind)
    return known.full_name if known is not None else ""


def to_proto_path(kind: str, record_path: str) -> str:
    """A treaty path of ``kind``'s record in the vocabulary of its message."""
    known = KIND_MESSAGES.get(kind)
    if known is None:
        return record_path
    head, dot, rest = record_path.partition(".")
    return known.renamed.get(head, head) + dot + rest


def to_record_path(kind: str, proto_path: str) -> str:
    """The inverse of :func:`to_proto_path`: a message path as the record names it."""
    known = KIND_MESSAGES.get(kind)
    if known is None:
        return proto_path
    back = {proto: record for record, proto in known.renamed.items()}
    head, dot, rest = proto_path.partition(".")
    return back.get(head, head) + dot + rest


def to_proto_paths(kind: str, record_paths: Iterable[str]) -> list[str]:
    """Every path translated, sorted and unique."""
    return sorted({to_proto_path(kind, p) for p in record_paths})


def resolves(message: Descriptor, path: str) -> bool:
    """Whether ``path`` names a field of ``message`` (through nested and repeated messages).

    Map fields and well-known types end the walk: a path may stop on them
    but not go inside.
    """
    descriptor: Descriptor | None = message
    for segment in path.split("."):
        if descriptor is None:
            return False
        fd = descriptor.fields_by_name.get(segment)
        if fd is None:
            return False
        is_nested = fd.type == FieldDescriptor.TYPE_MESSAGE
        descriptor = fd.message_type if is_nested else None
        if descriptor is not None and (
            descriptor.GetOptions().map_entry or descriptor.full_name.startswith("google.")
        ):
            descriptor = None
    return True
