"""Page tokens: opaque to the caller, authenticated by the service that issued them.

A listing's next-page token carries where the next page starts (the last
row's sort key), and the service must be able to trust it: an edited
position could skip the access checks a listing makes on its first page,
and a token replayed by another officer or at another node must not work.
So a token is the position sealed with AES-256-GCM under a key only the
issuing service has, together with what it is valid for:

* the **listing** it came from (``alerts``, ``cases/ID/entries``, ...),
* the **filters** of the request that issued it (a fingerprint), so the
  next request cannot change them halfway through,
* the **caller** (the officer's id), so a token handed to a colleague is
  refused,
* an **expiry** (an hour by default), after which the listing starts again.

The caller sees only base64url bytes. A token that does not open (forged,
edited, from another node or from before a key change) is
``PAGE_TOKEN_INVALID``, as is one for another listing, filter set or
caller (each with its own message); an old one is ``PAGE_TOKEN_EXPIRED``.

The key is derived with HKDF from a service secret (the node uses its
agency signing key), so nothing new is stored and a key rotation simply
invalidates the tokens in flight, which is harmless: listings restart.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from intelshare import errors

#: Tokens older than this are refused (PAGE_TOKEN_EXPIRED).
DEFAULT_LIFETIME_SECONDS = 3600
_INFO = b"intelshare/v1 page tokens"
_AAD = b"intelshare/v1 page token"
_NONCE = 12
#: A token longer than this is not one of ours (refused before any decoding).
_MAX_TOKEN = 2048


class PageTokens:
    """Issues and reads the page tokens of one service."""

    def __init__(
        self,
        secret: bytes,
        *,
        lifetime_seconds: int = DEFAULT_LIFETIME_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret)
        self._aead = AESGCM(key)
        self.lifetime_seconds = lifetime_seconds
        self._clock = clock

    @classmethod
    def ephemeral(cls) -> PageTokens:
        """Tokens valid only in this process (for tools and tests without a service key)."""
        return cls(os.urandom(32))

    def issue(
        self, *, listing: str, filters: str, caller: str, position: Sequence[str | int]
    ) -> str:
        """A token for the page after ``position`` of ``listing``, for ``caller`` only."""
        body = json.dumps(
            {
                "l": listing,
                "f": filters,
                "c": caller,
                "x": int(self._clock()) + self.lifetime_seconds,
                "p": list(position),
            },
            separators=(",", ":"),
        ).encode()
        nonce = os.urandom(_NONCE)
        sealed = nonce + self._aead.encrypt(nonce, body, _AAD)
        return base64.urlsafe_b64encode(sealed).decode().rstrip("=")

    def read(
        self, token: str, *, listing: str, filters: str, caller: str, size: int | None
    ) -> list[Any] | None:
        """The position of ``token`` (``size`` values, when given), or None for the first page.

        Raises ``PAGE_TOKEN_INVALID`` or ``PAGE_TOKEN_EXPIRED`` with the
        violation on ``page_token``.
        """
        if not token:
            return None
        data = self._open(token)
        if data.get("l") != listing:
            _invalid("this page token belongs to another listing")
        if data.get("c") != caller:
            _invalid("this page token was issued to another officer")
        if data.get("f") != filters:
            _invalid("the filters changed since this page token was issued; start again")
        if not isinstance(data.get("x"), int) or data["x"] < self._clock():
            raise errors.PageTokenExpired(
                "the page token has expired; start the listing again",
                violations={"page_token": "expired"},
            )
        position = data.get("p")
        if not isinstance(position, list) or (size is not None and len(position) != size):
            _invalid("the page token does not hold a position of this listing")
        return position

    def _open(self, token: str) -> dict[str, Any]:
        if len(token) > _MAX_TOKEN:
            _invalid("the page token is not one this node issued")
        try:
            sealed = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            body = self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], _AAD)
            data = json.loads(body)
        except (ValueError, InvalidTag):
            _invalid("the page token is not one this node issued (or it was changed)")
        if not isinstance(data, dict):
            _invalid("the page token is not one this node issued")
        return dict(data)


def _invalid(message: str) -> Any:
    raise errors.PageTokenInvalid(message, violations={"page_token": message})
