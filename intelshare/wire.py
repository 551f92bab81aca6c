"""Protobuf wire format by hand, for the messages that carry an envelope.

Why: an envelope is signed bytes (~2 KB) and stays bytes from the issuer's
outbox to the recipient's :func:`intelshare.envelope.open_envelope`. An
embedded message is encoded exactly like a ``bytes`` field (tag, length,
content), so the gRPC messages around it (``SubmitEnvelopeRequest``,
``StreamInboxResponse``) are written and read here around the envelope's
bytes, without parsing it into a protobuf message and serializing it again
at every hop. What is written is what the generated code writes for the
same values (fields in number order, no defaults); what is read is that
usual encoding, taken apart in place, and a caller hands anything else (an
unknown or repeated field, another order) to the generated parser.

Not for speed: reading two fields in Python costs about what the generated
(C) parser costs to parse and re-serialize them (a few µs, measured with
``timeit`` on a 1.2 KB envelope). What it spares is the envelope's bytes
being turned into a message and back on the way, so that the one parse left
at each verifier is the one that checks the encoding.

Only the few framing helpers these messages need; everything else goes
through the generated classes.
"""

from __future__ import annotations


def _slow_varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


#: Varints of one and two bytes (below 2**14), looked up rather than computed.
_SHORT_VARINTS = tuple(_slow_varint(n) for n in range(1 << 14))


def varint(n: int) -> bytes:
    """``n`` (non-negative) as a protobuf varint."""
    return _SHORT_VARINTS[n] if n < 0x4000 else _slow_varint(n)


def length_delimited(field: int, data: bytes, *, message: bool = False) -> bytes:
    """Field ``field`` holding ``data``: a string or bytes, or with ``message`` an embedded message.

    proto3 leaves an empty string out; an embedded message that is set is
    written even when empty.
    """
    if not data and not message:
        return b""
    return b"".join((varint(field << 3 | 2), varint(len(data)), data))


class WireError(ValueError):
    """The bytes are not protobuf wire format this reader takes apart."""


def _read_varint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    if pos < len(data) and data[pos] < 0x80:  # one byte: most lengths and sequences
        return data[pos], pos + 1
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise WireError("truncated or overlong varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def take(data: bytes, pos: int, key: int) -> tuple[bytes | None, int]:
    """The length-delimited field at ``pos`` when its key byte is ``key``.

    Returns its content and the position after it, or ``(None, pos)`` when
    the field there is another one (or ``pos`` is the end). Inline and
    without a generator: this reads every submission and inbox entry, and
    must cost less than the generated parser it spares (a few µs).
    """
    if pos >= len(data) or data[pos] != key:
        return None, pos
    size, pos = _read_varint(data, pos + 1)
    end = pos + size
    if end > len(data):
        raise WireError("truncated length-delimited field")
    return data[pos:end], end


def take_varint(data: bytes, pos: int, key: int) -> tuple[int | None, int]:
    """The varint field at ``pos`` when its key byte is ``key`` (as :func:`take`)."""
    if pos >= len(data) or data[pos] != key:
        return None, pos
    return _read_varint(data, pos + 1)


__all__ = ["WireError", "length_delimited", "take", "take_varint", "varint"]
