"""Protobuf wire format by hand, for the messages that carry an envelope.

Why: an envelope is signed bytes (~2 KB) and stays bytes from the issuer's
outbox to the recipient's :func:`intelshare.envelope.open_envelope`. An
embedded message is encoded exactly like a ``bytes`` field (tag, length,
content), so the gRPC messages around it (``SubmitEnvelopeRequest``,
``StreamInboxResponse``) are written and read here around the envelope's
bytes, without parsing it into a protobuf message and serializing it again
at every hop. What is written is what the generated code writes for the
same values (fields in number order, no defaults); what is read accepts any
encoding the generated parser accepts for the fields named, and hands the
rest (an unknown or repeated field) back to that parser.

Only the few framing helpers these messages need; everything else goes
through the generated classes.
"""

from __future__ import annotations

from collections.abc import Iterator


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


def fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """``(field number, wire type, value)`` of each top-level field, in order.

    Varints as ints, length-delimited fields as bytes (copied out of
    ``data``); other wire types raise :class:`WireError` (the messages read
    here have none), as does anything truncated.
    """
    view = memoryview(data)
    pos, end = 0, len(data)
    while pos < end:
        key, pos = _read_varint(view, pos)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        if wire_type == 0:
            value, pos = _read_varint(view, pos)
            yield number, wire_type, value
        elif wire_type == 2:
            size, pos = _read_varint(view, pos)
            if pos + size > end:
                raise WireError("truncated length-delimited field")
            yield number, wire_type, bytes(view[pos : pos + size])
            pos += size
        else:
            raise WireError(f"wire type {wire_type} is not read here")


__all__ = ["WireError", "fields", "length_delimited", "take", "take_varint", "varint"]
