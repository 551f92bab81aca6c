"""Alert vocabularies read from the protobuf enums (the wire contract).

The node has the same tables in ``node.schema.alert``; the core may not
import the node, and the enums are the source of truth both follow: the
record name of ``ALERT_KIND_WANTED_PERSON`` is ``wanted_person``, of
``SOURCE_RELIABILITY_B`` is ``B``. Deriving them keeps a kind added to the
proto flowing through export and import without a second table to update.
"""

from __future__ import annotations

from typing import Final

from google.protobuf.descriptor import EnumDescriptor

from intelshare.v1 import alert_pb2, envelope_pb2


def _names(enum: EnumDescriptor, prefix: str, *, lower: bool) -> dict[int, str]:
    out: dict[int, str] = {}
    for value in enum.values:
        if value.number == 0:
            continue  # *_UNSPECIFIED: not a value a record carries
        name = value.name.removeprefix(prefix)
        out[value.number] = name.lower() if lower else name
    return out


KINDS: Final = _names(alert_pb2.AlertKind.DESCRIPTOR, "ALERT_KIND_", lower=True)
URGENCIES: Final = _names(alert_pb2.Urgency.DESCRIPTOR, "URGENCY_", lower=True)
STATES: Final = _names(alert_pb2.AlertState.DESCRIPTOR, "ALERT_STATE_", lower=True)
DIRECTIONS: Final = _names(alert_pb2.AlertDirection.DESCRIPTOR, "ALERT_DIRECTION_", lower=True)
HANDLINGS: Final = _names(envelope_pb2.HandlingCode.DESCRIPTOR, "HANDLING_CODE_", lower=False)
TLPS: Final = _names(envelope_pb2.Tlp.DESCRIPTOR, "TLP_", lower=False)
RELIABILITIES: Final = _names(
    alert_pb2.SourceReliability.DESCRIPTOR, "SOURCE_RELIABILITY_", lower=False
)
CREDIBILITIES: Final = {
    number: int(name)
    for number, name in _names(
        alert_pb2.InformationCredibility.DESCRIPTOR, "INFORMATION_CREDIBILITY_", lower=False
    ).items()
}

KIND_BY_NAME: Final = {v: k for k, v in KINDS.items()}
URGENCY_BY_NAME: Final = {v: k for k, v in URGENCIES.items()}
HANDLING_BY_NAME: Final = {v: k for k, v in HANDLINGS.items()}
TLP_BY_NAME: Final = {v: k for k, v in TLPS.items()}
RELIABILITY_BY_NAME: Final = {v: k for k, v in RELIABILITIES.items()}
CREDIBILITY_BY_NUMBER: Final = {v: k for k, v in CREDIBILITIES.items()}

#: The subject lists of ``Subjects``, in proto order, and their message types.
SUBJECT_LISTS: Final = tuple(f.name for f in alert_pb2.Subjects.DESCRIPTOR.fields)


def enum_label(enum: EnumDescriptor, number: int) -> str | None:
    """The record name of an enum value (lower case, type prefix removed); None if unset.

    The prefix is the enum's name in UPPER_SNAKE (``RightType`` -> ``RIGHT_TYPE_``),
    which is how every enum of the protos names its values.
    """
    if number == 0:
        return None
    value = enum.values_by_number.get(number)
    if value is None:
        return None
    prefix = "".join("_" + c if c.isupper() else c.upper() for c in enum.name).lstrip("_") + "_"
    return value.name.removeprefix(prefix).lower()
