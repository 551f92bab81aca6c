"""The part of a node's cases every other part stands on.

:class:`CaseCore` holds the collaborators (store, sharing engine, keys),
seals a message about a case with the case's header facts, builds the
owner's membership state, and decides which officers may see which cases
("Access on a node" in :mod:`node.kinds.cases`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Row, select

from intelshare import errors
from intelshare.keys import AgencyKeys
from intelshare.treaty import Treaty, redact
from intelshare.v1 import envelope_pb2
from node.kinds.cases import db
from node.kinds.cases.db import (
    MAX_WAIT_DAYS,
    OWNER,
)
from node.schema import case as cr
from node.sharing.engine import Sharing
from node.sharing.sealing import Sealed
from node.storage import tables as t
from node.storage.officers import Officer, Permission
from node.storage.store import Store, now_ms

log = logging.getLogger(__name__)


class CaseCore:
    """What every part of a node's cases shares: collaborators, sealing, access."""

    def __init__(
        self,
        *,
        agency_id: str,
        store: Store,
        sharing: Sharing,
        keys: AgencyKeys,
        max_payload_bytes: int,
    ) -> None:
        self.agency_id = agency_id
        self.store = store
        self.sharing = sharing
        self.trust = sharing.trust
        self.keys = keys
        self.max_payload_bytes = max_payload_bytes

    def _seal(
        self,
        treaty: Treaty,
        case: Mapping[str, Any],
        *,
        kind: envelope_pb2.MessageKind.ValueType,
        recipients: Iterable[str],
        payload: Mapping[str, Any],
    ) -> Sealed:
        """A message about ``case``: its header facts, waiting at most the treaty's retention."""
        return self.sharing.seal(
            treaty,
            kind=kind,
            recipients=sorted(recipients),
            handling=int(case["handling"]),
            tlp=int(case["tlp"]),
            categories=json.loads(case["categories"]),
            expire_ms=now_ms() + min(treaty.retention_days, MAX_WAIT_DAYS) * 86_400_000,
            payload=payload,
            case_id=str(case["case_id"]),
        )

    def require_case(self, conn: Connection, officer: Officer, case_id: str) -> Row[Any]:
        """The case, if ``officer`` may see it (see "Access on a node")."""
        name = cr.case_name(case_id)
        if not officer.can(Permission.ISSUE):
            assigned = conn.execute(
                select(t.case_officers.c.case_id).where(
                    t.case_officers.c.case_id == case_id,
                    t.case_officers.c.officer_id == officer.officer_id,
                )
            ).first()
            if assigned is None:
                raise errors.NotOnCaseTeam(
                    f"you are not on the team of case {name}; a liaison officer can add you",
                    metadata={"name": name, "role": officer.role},
                )
        row = db.case_row(conn, case_id)
        if row is None:
            raise errors.CaseNotFound(f"case {name} does not exist", metadata={"name": name})
        return row

    def _require_owner_open(self, row: Row[Any], what: str) -> None:
        name = cr.case_name(row.case_id)
        if row.standing != OWNER:
            raise errors.NotCaseOwner(
                f"case {name} is owned by {row.owner_agency}; only the owner can {what}",
                metadata={"name": name, "owner_agency": row.owner_agency},
            )
        if row.status != cr.OPEN:
            raise errors.CaseClosed(
                f"case {name} is closed", metadata={"name": name, "state": "closed"}
            )

    def visible_case_ids(self, conn: Connection, officer: Officer) -> set[str] | None:
        """Case ids ``officer`` may see, or None for "every case" (liaison, admin)."""
        if officer.can(Permission.ISSUE):
            return None
        return {
            r.case_id
            for r in conn.execute(
                select(t.case_officers.c.case_id).where(
                    t.case_officers.c.officer_id == officer.officer_id
                )
            )
        }

    def _state(
        self,
        case: Mapping[str, Any],
        treaty: Treaty,
        members: Sequence[str],
        entries: Sequence[Mapping[str, Any]] = (),
    ) -> dict[str, Any]:
        """The owner's CASE_MEMBERSHIP payload (see :mod:`node.schema.case`)."""
        title = case.get("title")
        return {
            "op": "state",
            "revision": int(case["revision"]),
            "owner": self.agency_id,
            "status": case["status"],
            "created_ms": int(case["create_ms"]),
            "members": sorted(members),
            "case": redact({"title": title} if title else {}, treaty, "case_membership"),
            "entries": list(entries),
        }
