"""The ordered scales a treaty caps and a header carries, and the onward-sharing rules.

Handling codes and TLP markings are ordered from least to most restrictive,
so "within the treaty's maximum" is a comparison. Their values equal the
protobuf enums, so a header's field converts directly.
"""

from __future__ import annotations

import enum

from intelshare.v1 import envelope_pb2


class Handling(enum.IntEnum):
    """Handling codes H0-H3, ordered from least to most restrictive.

    Values equal the ``HandlingCode`` protobuf enum, so a header's value
    converts with ``Handling(header.handling)``.
    """

    H0 = envelope_pb2.HANDLING_CODE_H0
    H1 = envelope_pb2.HANDLING_CODE_H1
    H2 = envelope_pb2.HANDLING_CODE_H2
    H3 = envelope_pb2.HANDLING_CODE_H3


class Tlp(enum.IntEnum):
    """TLP 2.0 markings, ordered from least to most restrictive.

    Values equal the ``Tlp`` protobuf enum. ``AMBER+STRICT`` (the TLP 2.0
    spelling) is accepted on input; the canonical name is ``AMBER_STRICT``.
    """

    CLEAR = envelope_pb2.TLP_CLEAR
    GREEN = envelope_pb2.TLP_GREEN
    AMBER = envelope_pb2.TLP_AMBER
    AMBER_STRICT = envelope_pb2.TLP_AMBER_STRICT
    RED = envelope_pb2.TLP_RED


class OnwardSharing(enum.StrEnum):
    """What a recipient may do with a record beyond the original recipients."""

    FORBIDDEN = "forbidden"
    WITH_ORIGINATOR_CONSENT = "with_originator_consent"
    WITHIN_TREATY = "within_treaty"


def _parse_handling(value: object) -> Handling | None:
    if isinstance(value, Handling):
        return value
    if isinstance(value, str) and value in Handling.__members__:
        return Handling[value]
    return None


def _parse_tlp(value: object) -> Tlp | None:
    if isinstance(value, Tlp):
        return value
    if isinstance(value, str):
        name = value.replace("+", "_")
        if name in Tlp.__members__:
            return Tlp[name]
    return None


def _parse_onward(value: object) -> OnwardSharing | None:
    try:
        return OnwardSharing(value) if isinstance(value, str) else None
    except ValueError:
        return None
