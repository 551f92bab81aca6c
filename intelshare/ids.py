"""Identifiers: time-ordered message ids and key ids.

Message ids are UUIDv7 (RFC 9562): the millisecond timestamp in the high bits
makes them sort by creation time, which keeps database indexes append-mostly
and lets an operator read the age of a message from its id.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid


def new_message_id(now_ms: int | None = None) -> str:
    """A fresh UUIDv7 in canonical text form."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a, 12 bits
    value |= 0x2 << 62  # variant
    value |= rand & ((1 << 62) - 1)  # rand_b
    return str(uuid.UUID(int=value))


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
