"""The CaseService servicer: authentication, idempotency, the case feed.

Conventions are those of :mod:`node.api.alerts` (the alert servicer): each
method authenticates the officer and checks the role before anything about
a case is looked at; mutations run through :class:`node.api.base.Idempotent`
in one transaction with their idempotency record, so a retry with the same
``request_id`` answers as the first call did and an error leaves nothing
behind. Which officer may do what is described in :mod:`node.kinds.cases`.

``WatchCase`` replays the event log after the caller's cursor and then
follows it live through the node's wake-up hub, like ``WatchAlerts``:
sequence numbers are allocated in commit order, so reading ``seq > cursor``
never skips an event and a subscriber that resumes from its last cursor
sees every event once, in order. Access is decided for every event at the
moment it is delivered, against the case teams as they are then: an
analyst taken off a case stops seeing its events at once, and an analyst
who never was on it never sees one. A stream on one case ends with
``PERMISSION_DENIED`` when its caller loses access; a stream on all cases
simply skips what the caller may not see.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import grpc
from sqlalchemy import select

from intelshare import errors
from intelshare.v1 import case_pb2, case_service_pb2, case_service_pb2_grpc
from node.api.base import WATCH_BATCH, KindServicer
from node.kinds.cases import Cases
from node.schema import alert as rec
from node.schema import case as cr
from node.storage import tables as t
from node.storage.officers import Permission
from node.storage.store import EVENTS_TOPIC, Event, now_ms

log = logging.getLogger(__name__)


class CaseServicer(KindServicer, case_service_pb2_grpc.CaseServiceServicer):
    def __init__(self, *, cases: Cases, **common: Any) -> None:
        super().__init__(**common)
        self.cases = cases

    def CreateCase(
        self, request: case_service_pb2.CreateCaseRequest, context: grpc.ServicerContext
    ) -> case_pb2.Case:
        return self.mutate(
            context,
            Permission.ISSUE,
            "CreateCase",
            request,
            case_pb2.Case,
            lambda w, officer: self.cases.create(w, officer, request.case),
        )

    def GetCase(
        self, request: case_service_pb2.GetCaseRequest, context: grpc.ServicerContext
    ) -> case_pb2.Case:
        officer = self.officers.require(context, Permission.READ)
        return self.cases.get(officer, request.name)

    def ListCases(
        self, request: case_service_pb2.ListCasesRequest, context: grpc.ServicerContext
    ) -> case_service_pb2.ListCasesResponse:
        officer = self.officers.require(context, Permission.READ)
        cases, token = self.cases.list_page(
            officer,
            page_size=request.page_size,
            page_token=request.page_token,
            state=request.state,
            treaty_id=request.treaty_id,
        )
        return case_service_pb2.ListCasesResponse(cases=cases, next_page_token=token)

    def AddCaseEntry(
        self, request: case_service_pb2.AddCaseEntryRequest, context: grpc.ServicerContext
    ) -> case_pb2.CaseEntry:
        # Analysts write entries too: the case team decides who may (see node.kinds.cases).
        return self.mutate(
            context,
            Permission.READ,
            "AddCaseEntry",
            request,
            case_pb2.CaseEntry,
            lambda w, officer: self.cases.add_entry(w, officer, request.parent, request.entry),
        )

    def ListCaseEntries(
        self, request: case_service_pb2.ListCaseEntriesRequest, context: grpc.ServicerContext
    ) -> case_service_pb2.ListCaseEntriesResponse:
        officer = self.officers.require(context, Permission.READ)
        entries, token = self.cases.list_entries(
            officer, request.parent, page_size=request.page_size, page_token=request.page_token
        )
        return case_service_pb2.ListCaseEntriesResponse(entries=entries, next_page_token=token)

    def AddCaseMember(
        self, request: case_service_pb2.AddCaseMemberRequest, context: grpc.ServicerContext
    ) -> case_pb2.Case:
        return self.mutate(
            context,
            Permission.ISSUE,
            "AddCaseMember",
            request,
            case_pb2.Case,
            lambda w, officer: self.cases.add_member(w, officer, request.name, request.agency_id),
        )

    def RemoveCaseMember(
        self, request: case_service_pb2.RemoveCaseMemberRequest, context: grpc.ServicerContext
    ) -> case_pb2.Case:
        return self.mutate(
            context,
            Permission.ISSUE,
            "RemoveCaseMember",
            request,
            case_pb2.Case,
            lambda w, officer: self.cases.remove_member(
                w, officer, request.name, request.agency_id
            ),
        )

    def CloseCase(
        self, request: case_service_pb2.CloseCaseRequest, context: grpc.ServicerContext
    ) -> case_pb2.Case:
        return self.mutate(
            context,
            Permission.ISSUE,
            "CloseCase",
            request,
            case_pb2.Case,
            lambda w, officer: self.cases.close(w, officer, request.name),
        )

    def AddCaseOfficer(
        self, request: case_service_pb2.AddCaseOfficerRequest, context: grpc.ServicerContext
    ) -> case_pb2.Case:
        return self.mutate(
            context,
            Permission.ISSUE,
            "AddCaseOfficer",
            request,
            case_pb2.Case,
            lambda w, officer: self.cases.add_officer(w, officer, request.name, request.officer),
        )

    def RemoveCaseOfficer(
        self, request: case_service_pb2.RemoveCaseOfficerRequest, context: grpc.ServicerContext
    ) -> case_pb2.Case:
        return self.mutate(
            context,
            Permission.ISSUE,
            "RemoveCaseOfficer",
            request,
            case_pb2.Case,
            lambda w, officer: self.cases.remove_officer(w, officer, request.name, request.officer),
        )

    def WatchCase(
        self, request: case_service_pb2.WatchCaseRequest, context: grpc.ServicerContext
    ) -> Iterator[case_service_pb2.WatchCaseResponse]:
        """Replay after the cursor, then live; see the module docstring."""
        officer = self.officers.require(context, Permission.READ)
        only = cr.parse_case_name(request.name) if request.name else None
        cursor = self.check_cursor(request.after_cursor)
        if only is not None:
            with self.store.engine.connect() as conn:
                self.cases.require_case(conn, officer, only)
        with self.feeds.slot(officer):
            while context.is_active():
                generation = self.hub.generation(EVENTS_TOPIC)
                # Everything up to the committed head is readable (seq is allocated
                # in commit order), so the cursor may move to the head even when no
                # event of ours lies in between: later reads skip what was seen.
                head = self.store.head_seq()
                events = self._case_events(cursor, head, only)
                if events:
                    with self.store.engine.connect() as conn:
                        # Access as it is now, for this batch (see the module docstring).
                        visible = self.cases.visible_case_ids(conn, officer)
                    for e in events:
                        case_id = e.case_id or ""
                        if visible is not None and case_id not in visible:
                            if only is not None:
                                raise errors.NotOnCaseTeam(
                                    f"you are no longer on the team of case {cr.case_name(only)}",
                                    metadata={"name": cr.case_name(only)},
                                )
                            continue
                        yield case_service_pb2.WatchCaseResponse(
                            event=case_pb2.CaseEvent(
                                cursor=e.seq,
                                event_id=e.event_id,
                                type=e.type,
                                case=cr.case_name(case_id),
                                entry=cr.entry_name(case_id, e.entry_id) if e.entry_id else "",
                                agency_id=e.agency_id or "",
                                create_time=rec.ms_to_ts(e.created_ms),
                            )
                        )
                if len(events) == WATCH_BATCH:
                    cursor = events[-1].seq
                    continue
                cursor = max(cursor, head)
                if events:
                    continue
                if not self.hub.wait(EVENTS_TOPIC, generation, self.heartbeat_seconds):
                    yield case_service_pb2.WatchCaseResponse(
                        heartbeat=case_service_pb2.WatchCaseHeartbeat(
                            head_cursor=cursor, create_time=rec.ms_to_ts(now_ms())
                        )
                    )

    def _case_events(self, cursor: int, head: int, only: str | None) -> list[Event]:
        """Committed case events in ``(cursor, head]``, in order (one case, or all)."""
        query = select(t.events).where(t.events.c.seq > cursor, t.events.c.seq <= head)
        if only is not None:
            query = query.where(t.events.c.case_id == only)
        else:
            query = query.where(t.events.c.case_id.is_not(None))
        with self.store.engine.connect() as conn:
            rows = conn.execute(query.order_by(t.events.c.seq).limit(WATCH_BATCH)).all()
        return [
            Event(
                seq=int(r.seq),
                event_id=r.event_id,
                type=r.type,
                alert_id=r.alert_id,
                case_id=r.case_id,
                agency_id=r.agency_id,
                created_ms=int(r.created_ms),
                notified_ms=None if r.notified_ms is None else int(r.notified_ms),
                entry_id=r.entry_id,
            )
            for r in rows
        ]
