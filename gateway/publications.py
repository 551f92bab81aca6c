"""The directory and the treaties as nodes fetch and publish them.

GetDirectory, PublishDirectory, ListTreaties, GetTreaty and PublishTreaty:
the trust material admission checks against. A published directory must
verify against the federation's anchor and be no older than the one in use;
a published treaty must carry a valid signature of every party under the
directory in use (else ``TREATY_NOT_IN_FORCE``). Either is stored, audited
(``directory_published``, ``treaty_published``) and announced on its wake-up
topic, so that the other replicas reload their caches
(:mod:`gateway.maintenance`).

Treaties are listed a page at a time from the process's cache, behind an
opaque page token, each with whether it is in force now.
"""

from __future__ import annotations

import base64

import grpc

from gateway.state import DIRECTORY_TOPIC, TREATY_TOPIC, GatewayState, ms
from intelshare import errors
from intelshare.treaty import SignedTreatyDoc, verify_signatures
from intelshare.v1 import directory_pb2, gateway_service_pb2, gateway_service_pb2_grpc, treaty_pb2

DEFAULT_PAGE = 50
MAX_PAGE = 500


class PublicationMethods(gateway_service_pb2_grpc.GatewayServiceServicer):
    """The directory and treaty methods, mixed into :class:`gateway.service.GatewayServicer`
    (which sets ``s``)."""

    s: GatewayState

    # --- directory ------------------------------------------------------

    def GetDirectory(
        self, request: gateway_service_pb2.GetDirectoryRequest, context: grpc.ServicerContext
    ) -> directory_pb2.SignedDirectory:
        return directory_pb2.SignedDirectory.FromString(self.s.directory.signed_bytes)

    def PublishDirectory(
        self, request: gateway_service_pb2.PublishDirectoryRequest, context: grpc.ServicerContext
    ) -> gateway_service_pb2.PublishDirectoryResponse:
        s = self.s
        signed = request.directory.SerializeToString()
        trusted = s.install_directory(signed)
        s.store.save_directory(trusted.version, trusted.signed_bytes, ms(s.clock()))
        s.store.record("directory_published", {"version": trusted.version})
        s.hub.notify(DIRECTORY_TOPIC)
        return gateway_service_pb2.PublishDirectoryResponse(version=s.directory.version)

    # --- treaties -------------------------------------------------------

    def ListTreaties(
        self, request: gateway_service_pb2.ListTreatiesRequest, context: grpc.ServicerContext
    ) -> gateway_service_pb2.ListTreatiesResponse:
        s = self.s
        if request.page_size < 0:
            raise errors.PageSizeInvalid(
                "page_size must not be negative", violations={"page_size": "must be >= 0"}
            )
        size = min(request.page_size or DEFAULT_PAGE, MAX_PAGE)
        offset = _decode_token(request.page_token)
        docs = s.treaties.all()
        page = docs[offset : offset + size]
        now = s.clock()
        directory = s.directory
        listings = [
            gateway_service_pb2.TreatyListing(
                treaty=d.treaty.to_proto(), in_force=s.treaties.in_force(d, directory, now)
            )
            for d in page
        ]
        more = offset + size < len(docs)
        token = _encode_token(offset + size) if more else ""
        return gateway_service_pb2.ListTreatiesResponse(treaties=listings, next_page_token=token)

    def GetTreaty(
        self, request: gateway_service_pb2.GetTreatyRequest, context: grpc.ServicerContext
    ) -> treaty_pb2.SignedTreaty:
        doc = self.s.treaties.get(request.treaty_id, request.version)
        if doc is None:
            raise errors.TreatyNotFound(
                f"treaty {request.treaty_id!r} is not known",
                metadata={"treaty_id": request.treaty_id},
            )
        return doc.to_proto()

    def PublishTreaty(
        self, request: gateway_service_pb2.PublishTreatyRequest, context: grpc.ServicerContext
    ) -> gateway_service_pb2.PublishTreatyResponse:
        s = self.s
        s.peer_agency(context)
        doc = SignedTreatyDoc.from_proto(request.treaty)
        now = s.clock()
        directory = s.directory
        signed_by = verify_signatures(doc, directory, now)
        missing = sorted(set(doc.treaty.parties) - signed_by)
        if missing:
            raise errors.TreatyNotInForce(
                f"treaty {doc.treaty.label} lacks a valid signature from {', '.join(missing)}"
            )
        s.store.save_treaty(doc.treaty.id, doc.treaty.version, doc.to_bytes(), ms(now))
        s.treaties.put(doc)
        s.store.record(
            "treaty_published",
            {
                "treaty": f"{doc.treaty.id}@{doc.treaty.version}",
                "parties": list(doc.treaty.parties),
            },
        )
        s.hub.notify(TREATY_TOPIC)
        return gateway_service_pb2.PublishTreatyResponse(
            treaty=doc.treaty.to_proto(), in_force=s.treaties.in_force(doc, directory, now)
        )


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def _decode_token(token: str) -> int:
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
        kind, _, value = text.partition(":")
        if kind != "o" or not value.isdigit():
            raise ValueError(token)
        return int(value)
    except (ValueError, UnicodeDecodeError):
        raise errors.PageTokenInvalid(
            "page_token is not valid", violations={"page_token": "not a token from this server"}
        ) from None
