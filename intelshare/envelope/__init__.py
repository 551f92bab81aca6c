"""Seal and open envelopes: the only way anything crosses an agency boundary.

The API is deliberately small. :func:`seal` makes a signed, end-to-end
encrypted envelope for a set of recipient agencies; :func:`verify` checks an
envelope's structure and its sender's signature without any private key
(the gateway routes on that); :func:`open` does everything :func:`verify`
does, then unwraps the recipient's key block and decrypts.

Every way an envelope can be wrong, from garbage bytes to a signature by a
revoked agency to a key block that unwraps a different key than the header
commits to, ends in the same :class:`~intelshare.errors.EnvelopeInvalid`
with the same message. Only ``audit_detail`` says what happened, and it goes
to the audit log, never back to whoever sent the bytes: distinguishable
failures are an oracle (which check failed tells an attacker how far a
forgery got). The one exception is size: an oversize envelope raises
:class:`~intelshare.errors.PayloadTooLarge`, because refusing it before
parsing is a resource limit, not a verification result, and the caller
should learn it cannot retry as is.

Nothing here logs: payloads, keys and even which check failed are for the
caller to put in the audit log with its own context.

Expiry is not checked here: whether an expired alert may still be stored,
shown or only acknowledged is policy, and the policy layer has the header.

Layout: one module per step, imports in one direction (each only from
those above it), the public names re-exported here:

* :mod:`~intelshare.envelope.header`: :class:`HeaderFields`, the format
  version, the message-id form, Timestamp conversions,
  :func:`lookup_recipient_keys`;
* :mod:`~intelshare.envelope.limits`: payload and envelope size limits, the
  allowed clock skew;
* :mod:`~intelshare.envelope.sealing`: :func:`seal`;
* :mod:`~intelshare.envelope.reading`: :func:`read` (parse once, check
  nothing) and the opaque error;
* :mod:`~intelshare.envelope.opening`: structure checks, :func:`verify`,
  :func:`open_envelope`, :class:`Opened`, :func:`envelope_sha256`;
* :mod:`~intelshare.envelope.disclosed`: forwarding with the author's
  signature (:func:`disclose_content_key`, :func:`open_disclosed`).

The primitives they build on are :mod:`intelshare.hazmat`, which nothing
outside this package should call.
"""

from __future__ import annotations

from intelshare.envelope.disclosed import disclose_content_key, open_disclosed
from intelshare.envelope.header import (
    ENVELOPE_VERSION,
    HeaderFields,
    RecipientKey,
    lookup_recipient_keys,
)
from intelshare.envelope.limits import (
    DEFAULT_CLOCK_SKEW,
    ENVELOPE_OVERHEAD_BYTES,
    MAX_PAYLOAD_BYTES,
    max_envelope_bytes,
)
from intelshare.envelope.opening import Opened, envelope_sha256, open_envelope, verify
from intelshare.envelope.reading import Unverified, read
from intelshare.envelope.sealing import seal

__all__ = [
    "DEFAULT_CLOCK_SKEW",
    "ENVELOPE_OVERHEAD_BYTES",
    "ENVELOPE_VERSION",
    "MAX_PAYLOAD_BYTES",
    "HeaderFields",
    "Opened",
    "RecipientKey",
    "Unverified",
    "disclose_content_key",
    "envelope_sha256",
    "lookup_recipient_keys",
    "max_envelope_bytes",
    "open",
    "open_disclosed",
    "open_envelope",
    "read",
    "seal",
    "verify",
]

#: ``open`` reads naturally at call sites (``envelope.open(...)``); the long
#: name is there for code that imports names directly next to the builtin.
open = open_envelope
