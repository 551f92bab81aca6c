"""Deterministic STIX identifiers: UUIDv5 over a record's resource name.

A record exported twice must keep its ids, so that a consumer (MISP,
OpenCTI, a TAXII client) updates what it holds instead of keeping two
copies. Resource names are unique per node (alert ids are UUIDv7 message
ids; a received alert is named by the envelope that carried it), so the
name alone is enough; the namespace keeps our ids apart from anybody
else's UUIDv5 over the same text.
"""

from __future__ import annotations

import uuid
from typing import Final

#: The UUIDv5 namespace of intelshare's STIX ids (fixed; never change it).
NAMESPACE: Final = uuid.UUID("399e1509-0d6a-4dcb-8e26-5a095c33ec19")


def stix_id(stix_type: str, name: str) -> str:
    """``{stix_type}--{uuid5(NAMESPACE, name)}``."""
    return f"{stix_type}--{uuid.uuid5(NAMESPACE, name)}"


def agency_identity_id(agency_id: str) -> str:
    """The ``identity`` of an agency of the federation."""
    return stix_id("identity", f"agencies/{agency_id}")
