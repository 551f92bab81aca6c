"""Webhooks: registration, secrets at rest, signing, and one delivery attempt.

A webhook is a URL the agency registers with the event types it wants
(``alert.received``, ``alert.*``, ``case.*``, ``detention.*``, ``*``). Each
delivery is a POST of a small JSON document that names the event and the
resources it concerns — never their content (*notify, then fetch*): the
receiver calls the node's API with its own credentials to read what
changed, and is checked for access then.

Whose webhook
-------------
The agency's webhooks (``intelshare node webhook add``, an admin's) see
every event. An officer registers webhooks of its own through the API
(``CreateIprWebhook``) for IPR events only (:data:`OFFICER_FAMILIES`); such
a webhook stops with its officer (a disabled officer's get nothing). A
rights holder's webhook (``holder_key`` set) takes ``detention.*`` and
``recordation.*`` only (:data:`HOLDER_FAMILIES`), and receives an event
only when the holder may see its record: a detention that names one of
the holder's recordations, one of its own recordations. That is decided
twice, when the event is fanned out and again just before each POST (a
detention changed meanwhile to name no recordation of the holder's is not
POSTed: the delivery is dead with that reason). An IPR event's body also
names the resource and summarises it (a detention's state, the owner's
recordations it names and its deadlines), built from the view its owner
has (:func:`node.ipr.views.holder_view` for a holder), so it never holds
more than the owner could read.

Signature (Stripe/GitHub style, so receivers can use what they know)::

    X-Intelshare-Timestamp: 1767225600
    X-Intelshare-Signature: v1=<hex HMAC-SHA256(secret, "1767225600." + body)>
    X-Intelshare-Event-Id:  <event uuid>      (receivers dedupe on this)

The receiver recomputes the HMAC over the exact body bytes and refuses a
timestamp older than a few minutes (:func:`verify`), which bounds replays.

Secrets must be usable for signing, so they cannot be stored hashed like
officer tokens. They are stored encrypted with AES-256-GCM under a key
derived (HKDF-SHA256) from the agency's X25519 encryption key, with the
webhook id as associated data: a copy of the database alone (a backup, a
replica, a DBA's query) does not reveal them; the identity directory
(mode 0700, the same secret that opens every received envelope) is needed
too. The secret is printed once, at registration.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import http.client
import ipaddress
import json
import os
import secrets
import ssl
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from intelshare import errors
from intelshare.keys import AgencyKeys
from node.storage import tables as t
from node.storage.store import EVENT_TYPES, now_ms

SIGNATURE_HEADER = "X-Intelshare-Signature"
TIMESTAMP_HEADER = "X-Intelshare-Timestamp"
EVENT_ID_HEADER = "X-Intelshare-Event-Id"
WEBHOOK_ID_HEADER = "X-Intelshare-Webhook-Id"
USER_AGENT = "intelshare-node-webhooks/1"
_KDF_INFO = b"intelshare node webhook secret v1"

PENDING = "pending"
DELIVERED = "delivered"
DEAD = "dead"

#: The IPR event families an officer's own webhook may name (node.kinds.ipr_common).
OFFICER_FAMILIES = ("detention.", "recordation.", "detention_report.")
#: The families a rights holder's webhook may name.
HOLDER_FAMILIES = ("detention.", "recordation.")


# --- secrets at rest ---------------------------------------------------------------------


def _secret_key(keys: AgencyKeys) -> AESGCM:
    raw = keys.encryption.private_bytes_raw()
    kek = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KDF_INFO).derive(raw)
    return AESGCM(kek)


def seal_secret(keys: AgencyKeys, webhook_id: str, secret: str) -> bytes:
    nonce = os.urandom(12)
    return nonce + _secret_key(keys).encrypt(nonce, secret.encode(), webhook_id.encode())


def open_secret(keys: AgencyKeys, webhook_id: str, sealed: bytes) -> str:
    try:
        plain = _secret_key(keys).decrypt(sealed[:12], sealed[12:], webhook_id.encode())
    except InvalidTag:
        raise errors.WebhookSecretUnreadable(
            f"the secret of webhook {webhook_id} cannot be opened with this agency's key "
            "(the identity was replaced?); remove the webhook and add it again",
            metadata={"webhook_id": webhook_id},
        ) from None
    return plain.decode()


# --- signing -------------------------------------------------------------------------------


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``v1=`` + hex HMAC-SHA256 over ``"<timestamp>." + body``."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_seconds: int = 300,
    now: float | None = None,
) -> bool:
    """What a receiver does: check the signature and that the timestamp is recent."""
    lowered = {k.lower(): v for k, v in headers.items()}
    stamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    given = lowered.get(SIGNATURE_HEADER.lower(), "")
    if not stamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(stamp)) > tolerance_seconds:
        return False
    return hmac.compare_digest(signature(secret, int(stamp), body), given)


def event_body(row: Any, ipr: Mapping[str, Any] | None = None) -> bytes:
    """The JSON a webhook receives: ids and type (and an IPR event's resource and summary)."""
    doc: dict[str, Any] = {
        "event_id": row.event_id,
        "type": row.type,
        "cursor": int(row.seq),
        "alert": f"alerts/{row.alert_id}" if row.alert_id else None,
        "case": f"cases/{row.case_id}" if row.case_id else None,
        "agency_id": row.agency_id,
        "create_time_ms": int(row.created_ms),
    }
    if ipr is not None:
        doc.update(ipr)
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
    """One POST; returns the HTTP status, raises OSError on a network failure."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(
            host, parts.port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        conn = http.client.HTTPConnection(host, parts.port, timeout=timeout)
    try:
        conn.request(
            "POST",
            path,
            body=body,
            headers={
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                **headers,
            },
        )
        response = conn.getresponse()
        response.read(64 * 1024)
        return int(response.status)
    finally:
        conn.close()


# --- registry --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Webhook:
    webhook_id: str
    url: str
    events: tuple[str, ...]
    created_ms: int
    disabled: bool
    #: the officer who registered it through the API (None: the agency's)
    officer_id: str | None = None
    #: a rights holder's webhook: the holder it is bound to
    holder_key: str | None = None


@dataclass(frozen=True)
class Delivery:
    webhook_id: str
    event_id: str
    seq: int
    state: str
    attempts: int
    last_status: int | None
    last_error: str | None
    created_ms: int
    dead_ms: int | None


def matches(patterns: Sequence[str], event_type: str) -> bool:
    for p in patterns:
        if p == "*" or p == event_type:
            return True
        if p.endswith(".*") and event_type.startswith(p[:-1]):
            return True
    return False


def _family_pattern(p: str, families: Sequence[str]) -> bool:
    """``family.*`` or ``family.<type>`` for one of ``families``."""
    for family in families:
        rest = p[len(family) :] if p.startswith(family) else ""
        if rest == "*" or (rest and rest.replace("_", "").isalnum()):
            return True
    return False


def check_patterns(
    patterns: Sequence[str], *, families: Sequence[str] | None = None
) -> tuple[str, ...]:
    """Clean event patterns; ``families``: only patterns of these (an officer's webhook)."""
    cleaned = tuple(dict.fromkeys(p.strip() for p in patterns if p.strip()))
    if not cleaned:
        example = ", ".join(f"{f}*" for f in families) if families else "alert.*, case.*, *"
        raise errors.FieldInvalid(
            f"name at least one event type (e.g. {example})",
            violations={"events": "required"},
        )
    for p in cleaned:
        if families is not None:
            if not _family_pattern(p, families):
                raise errors.FieldInvalid(
                    f"this webhook may receive {', '.join(f + '*' for f in families)} events "
                    f"only, not {p!r}",
                    violations={"events": f"{p!r} is not one of {', '.join(families)}"},
                )
            continue
        ok = (
            p in ("*", "alert.*")
            or p in EVENT_TYPES
            or _family_pattern(p, ("case.", *OFFICER_FAMILIES))
        )
        if not ok:
            raise errors.FieldInvalid(
                f"unknown event type {p!r} (known: {', '.join(sorted(EVENT_TYPES))}, "
                "case.<type>, detention.<type>, recordation.<type>, alert.*, case.*, "
                "detention.*, recordation.*, detention_report.*, *)",
                violations={"events": f"unknown event type {p!r}"},
            )
    return cleaned


def check_url(url: str, *, allow_http: bool = False) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise errors.FieldInvalid(
            f"webhook URL must be an absolute https:// URL, got {url!r}",
            violations={"url": "absolute https URL"},
        )
    if parts.scheme == "http" and not allow_http:
        try:
            loopback = ipaddress.ip_address(parts.hostname).is_loopback
        except ValueError:
            loopback = parts.hostname == "localhost"
        if not loopback:
            raise errors.FieldInvalid(
                "plain http:// is allowed only to this machine (127.0.0.1, ::1, localhost) "
                "or with --allow-http",
                violations={"url": "https required"},
            )
    return url


class WebhookRegistry:
    """The agency's webhooks and their deliveries (admin operations)."""

    def __init__(self, engine: Engine, keys: AgencyKeys) -> None:
        self.engine = engine
        self.keys = keys

    def add(
        self,
        url: str,
        events: Sequence[str],
        *,
        allow_http: bool = False,
        officer_id: str | None = None,
        holder_key: str | None = None,
        conn: Connection | None = None,
    ) -> tuple[Webhook, str]:
        """Register a webhook; returns it with its secret (shown only this once).

        With ``officer_id`` it is that officer's (IPR events only), with
        ``holder_key`` too a rights holder's (its own detentions and
        recordations only); ``conn``: in that transaction.
        """
        url = check_url(url, allow_http=allow_http)
        families: tuple[str, ...] | None = None
        if holder_key:
            families = HOLDER_FAMILIES
        elif officer_id:
            families = OFFICER_FAMILIES
        patterns = check_patterns(events, families=families)
        webhook_id = str(uuid.uuid4())
        secret = "whsec_" + secrets.token_urlsafe(32)
        created = now_ms()
        statement = insert(t.webhooks).values(
            webhook_id=webhook_id,
            url=url,
            events=json.dumps(list(patterns)),
            secret=seal_secret(self.keys, webhook_id, secret),
            created_ms=created,
            disabled=False,
            officer_id=officer_id,
            holder_key=holder_key or None,
        )
        if conn is not None:
            conn.execute(statement)
        else:
            with self.engine.begin() as own:
                own.execute(statement)
        hook = Webhook(webhook_id, url, patterns, created, False, officer_id, holder_key or None)
        return hook, secret

    def owned(self, officer_id: str) -> builtins.list[Webhook]:
        """The webhooks ``officer_id`` registered, oldest first."""
        w = t.webhooks
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(w)
                .where(w.c.officer_id == officer_id)
                .order_by(w.c.created_ms, w.c.webhook_id)
            ).all()
        return [_webhook(r) for r in rows]

    def secret(self, webhook_id: str, officer_id: str) -> str:
        """The signing secret of one of ``officer_id``'s webhooks (a retried registration)."""
        w = t.webhooks
        with self.engine.connect() as conn:
            sealed = conn.execute(
                select(w.c.secret).where(w.c.webhook_id == webhook_id, w.c.officer_id == officer_id)
            ).scalar_one_or_none()
        if sealed is None:
            raise errors.WebhookNotFound(
                f"no webhook {webhook_id} of yours", metadata={"webhook_id": webhook_id}
            )
        return open_secret(self.keys, webhook_id, bytes(sealed))

    def remove_owned(self, conn: Connection, webhook_id: str, officer_id: str) -> None:
        """Remove one of ``officer_id``'s webhooks (NOT_FOUND for anyone else's)."""
        w = t.webhooks
        mine = (w.c.webhook_id == webhook_id, w.c.officer_id == officer_id)
        found = conn.execute(select(w.c.webhook_id).where(*mine)).first()
        if found is None:
            raise errors.WebhookNotFound(
                f"no webhook iprWebhooks/{webhook_id} of yours",
                metadata={"name": f"iprWebhooks/{webhook_id}"},
            )
        conn.execute(
            delete(t.webhook_deliveries).where(t.webhook_deliveries.c.webhook_id == webhook_id)
        )
        conn.execute(delete(w).where(*mine))

    def list(self) -> list[Webhook]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.webhooks).order_by(t.webhooks.c.created_ms)).all()
        return [_webhook(r) for r in rows]

    def get(self, conn: Connection, webhook_id: str) -> tuple[Webhook, str] | None:
        row = conn.execute(select(t.webhooks).where(t.webhooks.c.webhook_id == webhook_id)).first()
        if row is None:
            return None
        return _webhook(row), open_secret(self.keys, webhook_id, bytes(row.secret))

    def remove(self, webhook_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                delete(t.webhook_deliveries).where(t.webhook_deliveries.c.webhook_id == webhook_id)
            )
            gone = conn.execute(delete(t.webhooks).where(t.webhooks.c.webhook_id == webhook_id))
        if not gone.rowcount:
            raise errors.WebhookNotFound(
                f"no webhook {webhook_id}", metadata={"webhook_id": webhook_id}
            )

    def deliveries(self, *, state: str | None = None, limit: int = 1000) -> builtins.list[Delivery]:
        query = select(t.webhook_deliveries)
        if state:
            query = query.where(t.webhook_deliveries.c.state == state)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(t.webhook_deliveries.c.seq).limit(limit)).all()
        return [
            Delivery(
                webhook_id=r.webhook_id,
                event_id=r.event_id,
                seq=int(r.seq),
                state=r.state,
                attempts=int(r.attempts),
                last_status=r.last_status,
                last_error=r.last_error,
                created_ms=int(r.created_ms),
                dead_ms=r.dead_ms,
            )
            for r in rows
        ]

    def delivery_counts(self) -> dict[tuple[str, str], int]:
        """Deliveries per (webhook id, state), counted by the database."""
        wd = t.webhook_deliveries
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(wd.c.webhook_id, wd.c.state, func.count()).group_by(
                    wd.c.webhook_id, wd.c.state
                )
            ).all()
        return {(r[0], r[1]): int(r[2]) for r in rows}

    def dead_letters(self, limit: int = 1000) -> builtins.list[Delivery]:
        return self.deliveries(state=DEAD, limit=limit)

    def retry_dead(
        self, *, webhook_id: str | None = None, event_id: str | None = None
    ) -> builtins.list[tuple[str, str]]:
        """Put dead letters back in the queue with a fresh attempt budget."""
        cond = [t.webhook_deliveries.c.state == DEAD]
        if webhook_id:
            cond.append(t.webhook_deliveries.c.webhook_id == webhook_id)
        if event_id:
            cond.append(t.webhook_deliveries.c.event_id == event_id)
        with self.engine.begin() as conn:
            rows = conn.execute(
                update(t.webhook_deliveries)
                .where(*cond)
                .values(
                    state=PENDING,
                    attempts=0,
                    next_attempt_ms=now_ms(),
                    lease_until_ms=None,
                    dead_ms=None,
                )
                .returning(t.webhook_deliveries.c.webhook_id, t.webhook_deliveries.c.event_id)
            ).all()
        return [(r.webhook_id, r.event_id) for r in rows]


def matching_webhooks(conn: Connection, event_type: str, created_ms: int) -> list[str]:
    """Enabled webhooks that want this event and existed when it happened."""
    rows = conn.execute(
        select(t.webhooks.c.webhook_id, t.webhooks.c.events).where(
            t.webhooks.c.disabled.is_(False), t.webhooks.c.created_ms <= created_ms
        )
    ).all()
    return [r.webhook_id for r in rows if matches(json.loads(r.events), event_type)]


def _webhook(r: Any) -> Webhook:
    return Webhook(
        webhook_id=r.webhook_id,
        url=r.url,
        events=tuple(json.loads(r.events)),
        created_ms=int(r.created_ms),
        disabled=bool(r.disabled),
        officer_id=r.officer_id,
        holder_key=r.holder_key,
    )
