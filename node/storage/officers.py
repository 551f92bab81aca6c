"""Officers and their bearer tokens.

Officers authenticate to their own node only; they are never identities in
the federation (the agency is). A token is 32 random bytes, URL-safe
base64, shown once when the officer is added and stored only as its SHA-256
(hex). A database leak therefore yields no usable token, and since the
token has 256 bits of entropy an unsalted fast hash is enough: there is
nothing to brute-force.

Every call carries ``authorization: Bearer <token>`` metadata. A missing or
unknown token is ``UNAUTHENTICATED``; a valid token whose role does not
allow the method is ``PERMISSION_DENIED``. The role matrix lives here, in
one place:

============  =======  =======  =======  ========
permission    admin    liaison  analyst  approver
============  =======  =======  =======  ========
read          yes      yes      yes      yes
issue         yes      yes      no       no
acknowledge   yes      no       yes      no
report_hit    yes      no       yes      no
approve       yes      no       no       yes
consent       yes      yes      no       yes
============  =======  =======  =======  ========

``issue`` covers creating, updating and revoking alerts (and, for cases,
what the case engineer maps to it), and forwarding a received alert.
``approve`` releases (or rejects) a record held for review under a treaty
that reserves it (four eyes: never the record's own author, which the
review module checks). ``consent`` answers a partner's request to pass on
an alert this agency issued.

``rights_holder`` is an account for a rights holder's brand protection
team, bound to one holder organisation by its holder key
(:func:`node.ipr.views.holder_key`, e.g. ``eori:NL123456789``). It has none
of the permissions above, so every method that asks for one refuses it
(``PERMISSION_DENIED``); only the IPR service lets it in, to its own
recordations and the detentions that name them (:mod:`node.api.ipr`).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Engine, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from intelshare.db import KeptReader, Statement
from intelshare.errors import (
    FieldInvalid,
    IdInUse,
    OfficerNotFound,
    RoleNotPermitted,
    TokenInvalid,
    TokenMissing,
)
from node.storage import tables as t
from node.storage.store import now_ms

log = logging.getLogger(__name__)

ROLES = ("admin", "liaison", "analyst", "rights_holder", "approver")
#: The role bound to one rights holder organisation (see the module docstring).
RIGHTS_HOLDER = "rights_holder"
_HOLDER_KEY = re.compile(r"eori:[A-Z]{2}[A-Z0-9]{1,15}|reg:[A-Z]{2}:[A-Z0-9]{1,40}")


class Permission(enum.StrEnum):
    READ = "read"
    ISSUE = "issue"
    ACKNOWLEDGE = "acknowledge"
    REPORT_HIT = "report_hit"
    APPROVE = "approve"
    CONSENT = "consent"


ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    "admin": frozenset(Permission),
    "liaison": frozenset({Permission.READ, Permission.ISSUE, Permission.CONSENT}),
    "analyst": frozenset({Permission.READ, Permission.ACKNOWLEDGE, Permission.REPORT_HIT}),
    RIGHTS_HOLDER: frozenset(),
    "approver": frozenset({Permission.READ, Permission.APPROVE, Permission.CONSENT}),
}


@dataclass(frozen=True)
class Officer:
    officer_id: str
    name: str
    role: str
    created_ms: int = 0
    disabled: bool = False
    #: rights_holder officers only: the holder key they are bound to
    holder_key: str = ""

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS.get(self.role, frozenset())


class _HasMetadata(Protocol):
    def invocation_metadata(self) -> object: ...


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """32 random bytes, URL-safe base64 without padding (43 characters)."""
    return secrets.token_urlsafe(32)


def bearer_token(context: _HasMetadata) -> str | None:
    """The token of an ``authorization: Bearer <token>`` metadata entry."""
    metadata = context.invocation_metadata() or ()
    for item in metadata:  # type: ignore[attr-defined]
        key, value = item[0], item[1]
        if key.lower() != "authorization":
            continue
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace")
        scheme, _, token = str(value).partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    return None


# Every call authenticates: on PostgreSQL psycopg's own execute, prepared
# once on the registry's kept connection (intelshare.db.KeptReader).
_AUTHENTICATE = Statement(
    select(t.officers).where(t.officers.c.token_sha256 == bindparam("digest")),
    postgresql=f"SELECT {', '.join(c.name for c in t.officers.c)} "  # noqa: S608
    f"FROM {t.officers.name} WHERE token_sha256 = %(digest)s",
    named=True,
    prepare=True,
)


class OfficerRegistry:
    """Officers stored in the node database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # one connection of its own for the lookup that every call makes,
        # without a pool checkout (ping, reset)
        self._reader = KeptReader(engine)

    def close(self) -> None:
        """Give back the connection of the authentication lookups."""
        self._reader.close()

    def add(self, name: str, role: str, holder_key: str = "") -> tuple[Officer, str]:
        """Create an officer; return it with its token (the only time it is shown).

        A ``rights_holder`` needs the ``holder_key`` of its organisation; no
        other role takes one.
        """
        name = name.strip()
        violations: dict[str, str] = {}
        if not name or len(name) > 200 or any(ord(c) < 32 for c in name):
            violations["name"] = "1 to 200 printable characters"
        if role not in ROLES:
            violations["role"] = f"{role!r} is not one of {', '.join(ROLES)}"
        holder_key = holder_key.strip()
        if role == RIGHTS_HOLDER and not _HOLDER_KEY.fullmatch(holder_key):
            violations["holder"] = (
                "a rights_holder needs its holder key: eori:<EORI number> or "
                "reg:<country>:<registration number>, e.g. eori:NL123456789"
            )
        elif role != RIGHTS_HOLDER and holder_key:
            violations["holder"] = "only a rights_holder is bound to a holder"
        if violations:
            raise FieldInvalid("invalid officer", violations=violations)
        token = new_token()
        officer = Officer(str(uuid.uuid4()), name, role, now_ms(), False, holder_key)
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(t.officers).values(
                        officer_id=officer.officer_id,
                        name=officer.name,
                        role=officer.role,
                        token_sha256=token_sha256(token),
                        created_ms=officer.created_ms,
                        disabled=False,
                        holder_key=holder_key or None,
                    )
                )
        except IntegrityError:
            raise IdInUse(
                f"an officer named {name!r} already exists",
                violations={"name": "already taken"},
            ) from None
        return officer, token

    def list(self) -> list[Officer]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.officers).order_by(t.officers.c.name)).all()
        return [
            Officer(
                r.officer_id, r.name, r.role, r.created_ms, bool(r.disabled), r.holder_key or ""
            )
            for r in rows
        ]

    def disable(self, name: str) -> None:
        with self.engine.begin() as conn:
            done = conn.execute(
                update(t.officers).where(t.officers.c.name == name).values(disabled=True)
            )
        if not done.rowcount:
            raise OfficerNotFound(f"no officer named {name!r}", metadata={"officer": name})

    def authenticate(self, token: str | None) -> Officer:
        """The officer holding ``token``; UNAUTHENTICATED otherwise."""
        if not token or len(token) > 256:
            raise TokenMissing("a bearer token is required (authorization: Bearer <token>)")
        digest = token_sha256(token)
        row = self._reader.execute(_AUTHENTICATE, {"digest": digest}).first()
        # The lookup is by digest; the constant-time comparison keeps the
        # final decision free of timing differences all the same.
        if row is None or not hmac.compare_digest(row.token_sha256, digest) or row.disabled:
            raise TokenInvalid("the bearer token is not valid")
        return Officer(
            row.officer_id,
            row.name,
            row.role,
            row.created_ms,
            bool(row.disabled),
            row.holder_key or "",
        )

    def require(self, context: _HasMetadata, permission: Permission) -> Officer:
        """Authenticate the caller and check ``permission`` against its role."""
        officer = self.authenticate(bearer_token(context))
        if not officer.can(permission):
            raise RoleNotPermitted(
                f"role {officer.role} may not {permission.value.replace('_', ' ')}",
                metadata={"role": officer.role, "permission": permission.value},
            )
        return officer
