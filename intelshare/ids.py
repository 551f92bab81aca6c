"""Identifiers: time-ordered message ids and key ids.

Message ids are UUIDv7 (RFC 9562): the millisecond timestamp in the high bits
makes them sort by creation time, which keeps database indexes append-mostly
and lets an operator read the age of a message from its id.

Case ids are UUIDv7 too, with the owner's agency bound into their random
bits (:func:`new_case_id`): a node that meets a case id for the first time
takes the sender of its first membership message as the owner, so without
the binding a member that knows an id could claim it at an agency before the
real owner adds that agency, and lock the owner out there. With it, only
the agency that made the id can open the case anywhere (the binding is
checked by :func:`case_id_owned_by` at the gateway and at every receiver).
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid


def _uuid7(now_ms: int | None) -> int:
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a, 12 bits
    value |= 0x2 << 62  # variant
    value |= rand & ((1 << 62) - 1)  # rand_b
    return value


def new_message_id(now_ms: int | None = None) -> str:
    """A fresh UUIDv7 in canonical text form."""
    return str(uuid.UUID(int=_uuid7(now_ms)))


#: Bits of a case id's rand_b that bind it to its owner. 32 bits: a member
#: cannot choose the id it wants to claim (it is the owner's), so claiming
#: one means a 1 in 2^32 chance per case, while 30 random bits plus rand_a's
#: 12 keep ids made by one agency in the same millisecond apart.
_OWNER_BITS = 32
_OWNER_MASK = (1 << _OWNER_BITS) - 1


def _owner_tag(high64: int, agency_id: str) -> int:
    digest = hashlib.sha256(
        b"intelshare case owner\x00" + high64.to_bytes(8, "big") + agency_id.encode()
    ).digest()
    return int.from_bytes(digest[:4], "big")


def new_case_id(owner_agency: str, now_ms: int | None = None) -> str:
    """A fresh case id: a UUIDv7 whose low 32 bits bind it to ``owner_agency``."""
    value = _uuid7(now_ms) & ~_OWNER_MASK
    return str(uuid.UUID(int=value | _owner_tag(value >> 64, owner_agency)))


def case_id_owned_by(case_id: str, agency_id: str) -> bool:
    """True when ``case_id`` is a case id made by ``agency_id`` (see :func:`new_case_id`)."""
    if not is_message_id(case_id):
        return False
    value = uuid.UUID(case_id).int
    return value & _OWNER_MASK == _owner_tag(value >> 64, agency_id)


def is_message_id(text: str) -> bool:
    """True when ``text`` is a canonical UUIDv7."""
    try:
        parsed = uuid.UUID(text)
    except (ValueError, TypeError, AttributeError):
        return False
    return parsed.version == 7 and str(parsed) == text


def key_id(public_key_raw: bytes) -> str:
    """Key id used in the directory: hex of the first 16 bytes of SHA-256."""
    return hashlib.sha256(public_key_raw).hexdigest()[:32]
