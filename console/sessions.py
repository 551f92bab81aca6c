"""Server-side sessions: the officer's token never leaves the console.

The browser holds only a random session id (256 bits) in an HttpOnly,
SameSite=Strict cookie; the token it unlocks, the node connection made with
it, and the CSRF secret live here, in memory. A console restart therefore
signs everyone out, which is the safe direction. A session ends at sign-out,
when its lifetime or idle time runs out, or when the node answers
UNAUTHENTICATED (token revoked or officer disabled).

Before sign-in a browser gets an anonymous session that holds only the CSRF
secret of the sign-in form; signing in replaces it with a new id, so an id
planted before sign-in is worth nothing after it.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from console.node_client import ConsoleClient

#: The node's role for a rights holder's account (``intelshare node officer add --role``).
RIGHTS_HOLDER = "rights_holder"
#: Anonymous (pre-sign-in) sessions kept at most, oldest dropped first.
MAX_ANONYMOUS = 10_000
#: How long the sign-in form stays valid.
ANONYMOUS_SECONDS = 30 * 60


def new_secret() -> str:
    return secrets.token_urlsafe(32)


@dataclass
class Session:
    """One browser's session; ``client`` is None until the officer signs in."""

    id: str
    csrf: str
    created: float
    last_seen: float
    client: ConsoleClient | None = None
    #: ``rights_holder`` for a rights holder's account (what the node said at
    #: sign-in), '' for a customs officer: it chooses the navigation only.
    role: str = ""
    #: Whether the node let this officer list the alerts waiting for review at
    #: sign-in (role ``approver`` or admin): it adds *Pending reviews* to the
    #: navigation only; the node decides every review itself.
    approves: bool = False
    #: Likewise, whether the node let this officer list partners' consent
    #: requests (roles with the ``consent`` permission): *Consent requests*.
    consents: bool = False
    #: Highest event cursor this session has seen on any live stream: pages
    #: start their streams here, so nothing after what they show is missed.
    cursor: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def signed_in(self) -> bool:
        return self.client is not None

    @property
    def holder(self) -> bool:
        """A rights holder's session: its recordations and detentions only."""
        return self.role == RIGHTS_HOLDER

    def check_csrf(self, offered: str | None) -> bool:
        return bool(offered) and hmac.compare_digest(self.csrf, str(offered))

    def saw_cursor(self, cursor: int) -> None:
        with self.lock:
            self.cursor = max(self.cursor, cursor)


class SessionStore:
    """Sessions by id, with absolute and idle expiry."""

    def __init__(self, *, lifetime_seconds: float, idle_seconds: float) -> None:
        self.lifetime = lifetime_seconds
        self.idle = idle_seconds
        self._lock = threading.Lock()
        self._signed_in: dict[str, Session] = {}
        self._anonymous: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        with self._lock:
            return len(self._signed_in)

    def anonymous(self) -> Session:
        now = time.monotonic()
        session = Session(new_secret(), new_secret(), now, now)
        with self._lock:
            self._anonymous[session.id] = session
            while len(self._anonymous) > MAX_ANONYMOUS:
                self._anonymous.popitem(last=False)
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this id, its idle clock restarted; None if gone."""
        if not session_id:
            return None
        now = time.monotonic()
        expired: Session | None = None
        with self._lock:
            session = self._signed_in.get(session_id)
            if session is not None:
                if now - session.created > self.lifetime or now - session.last_seen > self.idle:
                    expired = self._signed_in.pop(session_id)
                    session = None
                else:
                    session.last_seen = now
            else:
                session = self._anonymous.get(session_id)
                if session is not None and now - session.created > ANONYMOUS_SECONDS:
                    del self._anonymous[session_id]
                    session = None
        if expired is not None and expired.client is not None:
            expired.client.close()
        return session

    def sign_in(
        self,
        previous: Session | None,
        client: ConsoleClient,
        role: str = "",
        approves: bool = False,
        consents: bool = False,
    ) -> Session:
        """A new signed-in session (new id, new CSRF secret); ``previous`` is dropped."""
        now = time.monotonic()
        session = Session(
            new_secret(),
            new_secret(),
            now,
            now,
            client=client,
            role=role,
            approves=approves,
            consents=consents,
        )
        with self._lock:
            if previous is not None:
                self._anonymous.pop(previous.id, None)
                self._signed_in.pop(previous.id, None)
            self._signed_in[session.id] = session
        return session

    def end(self, session: Session) -> None:
        """Sign out: forget the session and close its node connection."""
        with self._lock:
            self._signed_in.pop(session.id, None)
            self._anonymous.pop(session.id, None)
        if session.client is not None:
            session.client.close()

    def sweep(self) -> int:
        """Drop every expired session; returns how many were signed in."""
        now = time.monotonic()
        with self._lock:
            gone = [
                s
                for s in self._signed_in.values()
                if now - s.created > self.lifetime or now - s.last_seen > self.idle
            ]
            for s in gone:
                del self._signed_in[s.id]
            for sid in [
                sid for sid, s in self._anonymous.items() if now - s.created > ANONYMOUS_SECONDS
            ]:
                del self._anonymous[sid]
        for s in gone:
            if s.client is not None:
                s.client.close()
        return len(gone)

    def close_all(self) -> None:
        with self._lock:
            sessions = list(self._signed_in.values())
            self._signed_in.clear()
            self._anonymous.clear()
        for s in sessions:
            if s.client is not None:
                s.client.close()
