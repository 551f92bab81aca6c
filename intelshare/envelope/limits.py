"""How large an envelope may be, and how far ahead of the verifier's clock it may be dated.

The seal side refuses to make an envelope its recipients would refuse; the
read side refuses an oversize one before parsing it. Both take their
numbers from here.
"""

from __future__ import annotations

from datetime import timedelta

from intelshare.hazmat import envelope_primitives as prim

#: Default payload limit. Alerts and case entries are structured records, not
#: file transfers; 1 MiB leaves room for a few photos while keeping a burst of
#: envelopes in a gateway queue within memory.
MAX_PAYLOAD_BYTES = 1024 * 1024

#: Room for everything an envelope carries besides the payload: header
#: (recipient list, categories, ids), key blocks (about 200 bytes per
#: recipient), signature and protobuf framing. 64 KiB is some 300 recipients,
#: far beyond any treaty, and bounds what an unauthenticated peer can make a
#: verifier parse.
ENVELOPE_OVERHEAD_BYTES = 64 * 1024

#: How far in the future an envelope's create_time may be. The sender's key
#: is looked up as of create_time, so a far-future time would ask the
#: directory about a moment it cannot vouch for yet.
DEFAULT_CLOCK_SKEW = timedelta(minutes=5)


def max_envelope_bytes(max_payload_bytes: int = MAX_PAYLOAD_BYTES) -> int:
    """Largest serialized envelope accepted for a given payload limit."""
    return max_payload_bytes + prim.CIPHERTEXT_OVERHEAD + ENVELOPE_OVERHEAD_BYTES
