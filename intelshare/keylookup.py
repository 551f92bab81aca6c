"""Where public keys come from when something must be verified or sealed.

Envelopes, treaties and audit tree heads are all verified against agency
keys that the signed federation directory publishes. The code that verifies
depends only on this small protocol, not on the directory itself, so it can
be tested with fixed keys and so that the directory stays the single place
that decides whether a key is trusted at a given time (status, validity,
rotation history).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric import ed25519, x25519


class PublicKeyLookup(Protocol):
    """Trusted public keys of the federation's agencies."""

    def signing_key(self, agency_id: str, key_id: str, at: datetime) -> ed25519.Ed25519PublicKey:
        """The Ed25519 key ``key_id`` of ``agency_id`` if it was valid at ``at``.

        Raises :class:`~intelshare.errors.VerificationError` (or a subclass)
        when the agency is unknown, revoked, or the key was not valid then.
        Suspended agencies' keys still verify for messages made before the
        suspension took effect.
        """
        ...

    def encryption_key(self, agency_id: str) -> tuple[str, x25519.X25519PublicKey]:
        """The current X25519 key (id, key) to seal for ``agency_id``.

        Raises :class:`~intelshare.errors.AgencyUnknown` or
        :class:`~intelshare.errors.AgencyNotActive`.
        """
        ...
