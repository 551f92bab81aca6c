"""A client for a node's CaseService (used by the ``case`` commands and tests).

It is a :class:`node.cli.client.NodeClient` — same TLS channel, same bearer
token, same error translation — with the case methods added, so one
connection serves an officer's alert and case calls alike. Every mutation
gets a fresh ``request_id`` unless the caller passes one (to retry safely,
pass the same id again).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from intelshare.v1 import case_pb2, case_service_pb2, case_service_pb2_grpc
from node.cli.client import NodeClient


def case_name(name: str) -> str:
    """``cases/ID`` for an id or a name."""
    return name if name.startswith("cases/") else f"cases/{name}"


class CaseClient(NodeClient):
    """TLS channel to one node, authenticated as one officer, with case calls."""

    def __init__(self, target: str, *, ca_pem: bytes, server_name: str, token: str, **kw: float):
        super().__init__(target, ca_pem=ca_pem, server_name=server_name, token=token, **kw)
        self.cases = case_service_pb2_grpc.CaseServiceStub(self.channel)

    def __enter__(self) -> CaseClient:
        return self

    def create_case(self, case: case_pb2.Case, request_id: str | None = None) -> case_pb2.Case:
        req = case_service_pb2.CreateCaseRequest(case=case, request_id=request_id or _rid())
        return self._call(self.cases.CreateCase, req)

    def get_case(self, name: str) -> case_pb2.Case:
        return self._call(self.cases.GetCase, case_service_pb2.GetCaseRequest(name=case_name(name)))

    def list_cases(
        self, *, page_size: int = 0, page_token: str = "", state: int = 0, treaty_id: str = ""
    ) -> case_service_pb2.ListCasesResponse:
        req = case_service_pb2.ListCasesRequest(
            page_size=page_size,
            page_token=page_token,
            state=state,  # type: ignore[arg-type]
            treaty_id=treaty_id,
        )
        return self._call(self.cases.ListCases, req)

    def all_cases(self, limit: int | None = None, **filters: int | str) -> list[case_pb2.Case]:
        return self.collect(
            lambda token, size: self.list_cases(page_token=token, page_size=size, **filters),  # type: ignore[arg-type]
            "cases",
            limit,
        )

    def add_entry(
        self, name: str, entry: case_pb2.CaseEntry, request_id: str | None = None
    ) -> case_pb2.CaseEntry:
        req = case_service_pb2.AddCaseEntryRequest(
            parent=case_name(name), entry=entry, request_id=request_id or _rid()
        )
        return self._call(self.cases.AddCaseEntry, req)

    def list_entries(
        self, name: str, *, page_size: int = 0, page_token: str = ""
    ) -> case_service_pb2.ListCaseEntriesResponse:
        req = case_service_pb2.ListCaseEntriesRequest(
            parent=case_name(name), page_size=page_size, page_token=page_token
        )
        return self._call(self.cases.ListCaseEntries, req)

    def all_entries(self, name: str, page_size: int = 0) -> list[case_pb2.CaseEntry]:
        return self.collect(
            lambda token, _size: self.list_entries(name, page_size=page_size, page_token=token),
            "entries",
        )

    def add_member(self, name: str, agency_id: str, request_id: str | None = None) -> case_pb2.Case:
        req = case_service_pb2.AddCaseMemberRequest(
            name=case_name(name), agency_id=agency_id, request_id=request_id or _rid()
        )
        return self._call(self.cases.AddCaseMember, req)

    def remove_member(
        self, name: str, agency_id: str, request_id: str | None = None
    ) -> case_pb2.Case:
        req = case_service_pb2.RemoveCaseMemberRequest(
            name=case_name(name), agency_id=agency_id, request_id=request_id or _rid()
        )
        return self._call(self.cases.RemoveCaseMember, req)

    def close_case(self, name: str, request_id: str | None = None) -> case_pb2.Case:
        req = case_service_pb2.CloseCaseRequest(
            name=case_name(name), request_id=request_id or _rid()
        )
        return self._call(self.cases.CloseCase, req)

    def add_officer(self, name: str, officer: str, request_id: str | None = None) -> case_pb2.Case:
        req = case_service_pb2.AddCaseOfficerRequest(
            name=case_name(name), officer=officer, request_id=request_id or _rid()
        )
        return self._call(self.cases.AddCaseOfficer, req)

    def remove_officer(
        self, name: str, officer: str, request_id: str | None = None
    ) -> case_pb2.Case:
        req = case_service_pb2.RemoveCaseOfficerRequest(
            name=case_name(name), officer=officer, request_id=request_id or _rid()
        )
        return self._call(self.cases.RemoveCaseOfficer, req)

    def watch_case(
        self, name: str = "", after_cursor: int = 0
    ) -> Iterator[case_service_pb2.WatchCaseResponse]:
        """Events after the cursor, then live, until the caller stops iterating."""
        return self._stream(
            self.cases.WatchCase,
            case_service_pb2.WatchCaseRequest(
                name=case_name(name) if name else "", after_cursor=after_cursor
            ),
        )


def _rid() -> str:
    return str(uuid.uuid4())
