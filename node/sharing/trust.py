"""What the node believes about the federation: directory and treaties.

The directory comes from the gateway but is verified against the anchor the
agency pinned out of band; the gateway cannot substitute a key. The newest
verified copy is kept in a :class:`~intelshare.directory.DirectoryCache`
file (never replaced by an older version) so a restarted node works before
it reaches the gateway. Lookups fail closed: once the directory expires,
sealing, opening and treaty checks all refuse with ``DIRECTORY_INVALID``
until a fresh one arrives.

Treaties are fetched from the gateway as signed documents and cached in the
database (``node_treaties``). Holding a document is not trusting it: every
use checks :func:`intelshare.treaty.in_force` against the directory at that
moment, so a treaty whose validity ended, or whose party was revoked, stops
permitting anything without the node being told. (A treaty found in force
is taken as in force again for :data:`CURRENT_REUSE` while the directory
object and the treaties held are the same, never past its end: a new
directory is checked at once.)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from intelshare import errors
from intelshare.directory import Anchor, DirectoryCache, TrustedDirectory
from intelshare.gateway_client import GatewayClient
from intelshare.treaty import SignedTreatyDoc, in_force
from node.storage import tables as t
from node.storage.store import now_ms

log = logging.getLogger(__name__)

#: How long :meth:`Trust.current` reuses a treaty found in force, by the
#: node's clock, as long as the directory and the treaties held are the same
#: (a new directory or treaty is looked at at once; so is the treaty's end).
CURRENT_REUSE = timedelta(seconds=1)


class Trust:
    """Directory and treaty caches of one node."""

    def __init__(
        self,
        *,
        agency_id: str,
        anchor: Anchor,
        directory_file: Path,
        engine: Engine,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.agency_id = agency_id
        self.anchor = anchor
        self.cache = DirectoryCache(directory_file, anchor, clock=clock)
        self.engine = engine
        self.clock = clock
        self._lock = threading.Lock()
        self._directory: TrustedDirectory | None = None
        self._treaties: dict[tuple[str, int], SignedTreatyDoc] = {}
        #: gateway client for on-demand treaty fetches (set by node.server)
        self.client: GatewayClient | None = None
        self._asked: dict[str, float] = {}
        self._treaties_version = 0  # bumped whenever _treaties changes
        # treaty id -> (directory, treaties version, found at, doc) for current()
        self._current: dict[str, tuple[TrustedDirectory, int, datetime, SignedTreatyDoc]] = {}
        # treaty found in force by in_force_at: (directory, treaties version, when)
        self._found_in_force: dict[
            tuple[str, int], tuple[SignedTreatyDoc, TrustedDirectory, int, datetime]
        ] = {}

    # --- directory ---------------------------------------------------------------

    def load_cached(self) -> None:
        """Use the cached directory file and the stored treaties, if any."""
        try:
            trusted = self.cache.load()
        except errors.DirectoryInvalid as exc:
            log.warning("cached directory not usable: %s", exc.message)
            trusted = None
        if trusted is not None:
            with self._lock:
                self._directory = trusted
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.treaties.c.signed)).all()
        for (signed,) in rows:
            try:
                doc = SignedTreatyDoc.from_bytes(bytes(signed))
            except errors.IntelshareError as exc:
                log.error("stored treaty refused: %s", exc.message)
                continue
            with self._lock:
                self._treaties[(doc.treaty.id, doc.treaty.version)] = doc
                self._treaties_version += 1

    @property
    def directory(self) -> TrustedDirectory:
        """The directory in use; ``DIRECTORY_INVALID`` when there is none or it expired."""
        with self._lock:
            current = self._directory
        if current is None:
            raise errors.DirectoryInvalid(
                "this node has no federation directory yet; it is fetched from the gateway"
            )
        if not current.is_fresh():
            raise errors.DirectoryInvalid(
                f"directory version {current.version} expired at "
                f"{current.expire_time.isoformat()}; the node cannot refresh it from the gateway"
            )
        return current

    def has_fresh_directory(self) -> bool:
        with self._lock:
            current = self._directory
        return current is not None and current.is_fresh()

    def refresh_directory(self, client: GatewayClient) -> TrustedDirectory:
        """Fetch, verify and keep the gateway's directory (never a downgrade)."""
        signed = client.get_directory()
        trusted = self.cache.store(signed)
        with self._lock:
            if self._directory is None or trusted.version >= self._directory.version:
                self._directory = trusted
        return trusted

    # --- treaties ----------------------------------------------------------------

    def refresh_treaties(self, client: GatewayClient) -> int:
        """Fetch treaties this agency is party to that are not cached yet."""
        fetched = 0
        for listing in client.list_treaties():
            treaty = listing.treaty
            if self.agency_id not in treaty.parties:
                continue
            if (treaty.treaty_id, treaty.version) in self._treaties:
                continue
            if self._fetch(client, treaty.treaty_id, treaty.version) is not None:
                fetched += 1
        return fetched

    def _fetch(self, client: GatewayClient, treaty_id: str, version: int) -> SignedTreatyDoc | None:
        try:
            doc = SignedTreatyDoc.from_proto(client.get_treaty(treaty_id, version))
        except errors.NotFound:
            return None
        if doc.treaty.id != treaty_id or (version and doc.treaty.version != version):
            log.error("gateway answered treaty %s v%s with another document", treaty_id, version)
            return None
        self.keep(doc)
        return doc

    def keep(self, doc: SignedTreatyDoc) -> None:
        """Hold ``doc``: one fetched from the gateway, or one obtained out of band."""
        key = (doc.treaty.id, doc.treaty.version)
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    t.treaties.insert().values(
                        treaty_id=key[0], version=key[1], signed=doc.to_bytes(), fetched_ms=now_ms()
                    )
                )
        except IntegrityError:
            # Known already (another thread fetched it, or a newer signature
            # set): keep the one in the database, replace it only when the
            # new document has more valid signatures.
            with self.engine.begin() as conn:
                conn.execute(
                    t.treaties.update()
                    .where(t.treaties.c.treaty_id == key[0], t.treaties.c.version == key[1])
                    .values(signed=doc.to_bytes(), fetched_ms=now_ms())
                )
        with self._lock:
            self._treaties[key] = doc
            self._treaties_version += 1

    def held(self) -> list[SignedTreatyDoc]:
        """Every treaty version this node holds, in force or not (read-only view)."""
        with self._lock:
            return list(self._treaties.values())

    def treaty(
        self, treaty_id: str, version: int, client: GatewayClient | None = None
    ) -> SignedTreatyDoc | None:
        """One treaty version; fetched from the gateway when missing and a client is given."""
        with self._lock:
            doc = self._treaties.get((treaty_id, version))
        if doc is None and client is not None:
            doc = self._fetch(client, treaty_id, version)
        return doc

    def in_force(self, doc: SignedTreatyDoc, at: datetime | None = None) -> bool:
        return in_force(doc, self.directory, at or self.clock())

    def in_force_at(self, doc: SignedTreatyDoc, directory: TrustedDirectory, at: datetime) -> bool:
        """:func:`intelshare.treaty.in_force` of ``doc`` with ``directory`` at ``at``.

        For the inbox, which checks the treaty of every envelope: a treaty
        found in force is found so again for :data:`CURRENT_REUSE` after ``at``
        without its signatures being checked again, under the rules of
        :meth:`current`: the same directory object (a new one, e.g. revoking a
        party, is checked at once), the same treaties held, never at or past
        the treaty's end, never for a moment before the one it was found at.
        Only "in force" is reused; "not in force" is checked every time.
        """
        key = (doc.treaty.id, doc.treaty.version)
        with self._lock:
            held = self._treaties_version
            found = self._found_in_force.get(key)
        if (
            found is not None
            and found[0] is doc
            and found[1] is directory
            and found[2] == held
            and found[3] <= at < found[3] + CURRENT_REUSE
            and at < doc.treaty.valid_end
        ):
            return True
        if not in_force(doc, directory, at):
            return False
        with self._lock:
            self._found_in_force[key] = (doc, directory, held, at)
        return True

    def _versions(self, treaty_id: str) -> list[SignedTreatyDoc]:
        with self._lock:
            return sorted(
                (d for (tid, _v), d in self._treaties.items() if tid == treaty_id),
                key=lambda d: d.treaty.version,
                reverse=True,
            )

    def _newest_in_force(self, treaty_id: str) -> SignedTreatyDoc | None:
        directory = self.directory
        now = self.clock()
        with self._lock:
            held = self._treaties_version
            found = self._current.get(treaty_id)
        if (
            found is not None
            and found[0] is directory
            and found[1] == held
            and found[2] <= now < found[2] + CURRENT_REUSE
            and now < found[3].treaty.valid_end
        ):
            return found[3]
        for doc in self._versions(treaty_id):
            if in_force(doc, directory, now):
                with self._lock:
                    self._current[treaty_id] = (directory, held, now, doc)
                return doc
        return None

    def current(self, treaty_id: str) -> SignedTreatyDoc:
        """The newest version of ``treaty_id`` in force now; ``TREATY_NOT_IN_FORCE`` otherwise.

        When no version held is in force, the gateway is asked once (at most
        every ten seconds per treaty) whether a treaty or an amendment was
        published since the last refresh, so a new treaty works at once
        rather than after the next periodic refresh.
        """
        doc = self._newest_in_force(treaty_id)
        if doc is None and self.client is not None:
            last = self._asked.get(treaty_id, 0.0)
            if time.monotonic() - last > 10.0:
                self._asked[treaty_id] = time.monotonic()
                try:
                    self.refresh_treaties(self.client)
                except errors.IntelshareError as exc:
                    log.info("treaty refresh for %s failed: %s", treaty_id, exc.reason)
                doc = self._newest_in_force(treaty_id)
        if doc is not None:
            return doc
        if not self._versions(treaty_id):
            raise errors.TreatyNotInForce(
                f"treaty {treaty_id} is not known to this node or the gateway",
                metadata={"treaty_id": treaty_id},
            )
        raise errors.TreatyNotInForce(
            f"treaty {treaty_id} is not in force (not signed by every party, or outside "
            "its validity)",
            metadata={"treaty_id": treaty_id},
        )
