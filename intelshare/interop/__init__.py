"""Interoperability: STIX 2.1 export and import, MISP import.

Agencies' analysts work in MISP, OpenCTI and other tools that speak STIX
2.1 and TAXII 2.1. This package holds the *pure* mappings between those
formats and intelshare's records, so the officers' command line
(``intelshare alert export`` / ``import``) and the TAXII server
(:mod:`taxii`) use the same code. Nothing here talks to a node or a
network; callers hand in records they read through the node's API.

Export (:mod:`intelshare.interop.stix`, :mod:`intelshare.interop.kinds`)
    One record becomes a set of STIX objects. One engine
    (:mod:`~intelshare.interop.stix`) does what every kind shares: the
    issuing agency as an ``identity`` and ``created_by_ref``, ``created`` and
    ``modified`` (the record's last change, so a re-export is a new version
    of the same ids), markings, ``revoked``, deterministic ids, bundles.
    Each record kind is one small mapping module in
    :mod:`intelshare.interop.kinds`: an alert is a ``report`` of its
    subjects (persons and companies as ``identity``; vehicles, vessels,
    containers and documents, which STIX has no type for, as new object
    types of our published ``extension-definition``,
    :mod:`intelshare.interop.extension`, shipped as
    ``docs/stix/intelshare-extension-definition.json``); a recordation a
    ``grouping`` of its holder, rights, goods and supply chain; a detention
    or detention report a ``report`` of observed goods, transport and
    parties; a risk profile a ``report`` and an ``indicator`` whose pattern
    is its criteria (:mod:`intelshare.interop.patterns`). What STIX has no
    property for (handling code H0-H3, the admiralty evaluation, expiry,
    deadlines, date of birth, EORI...) travels in the same extension as a
    property extension: never as ``x_`` custom properties, which STIX 2.1
    deprecates. Markings are the official TLP 2.0 marking definitions
    (:mod:`intelshare.interop.markings`); a record this node *received*
    also carries a statement marking naming the treaty it arrived under
    and what that treaty says about onward sharing.

    Identifiers are deterministic: UUIDv5 in a namespace of ours over the
    record's resource name (``alerts/{id}``, ``alerts/{id}/subjects/persons/0``,
    ``agencies/{id}``), so exporting the same record again gives the same
    ids and a consumer updates its copy (``modified`` moves with the
    record's revision) instead of holding two. STIX says SDO ids SHOULD be
    UUIDv4; deterministic ids are the one place we depart from that on
    purpose (stix2-validator's check 103, the only one the tests switch off).

Import (:mod:`intelshare.interop.stix_import`, :mod:`intelshare.interop.misp`)
    A STIX 2.1 bundle or a MISP event (MISP's JSON export) becomes a
    :class:`~intelshare.interop.draft.Draft`: an ``Alert`` message with what
    could be mapped, and a summary saying which objects mapped to which
    alert field and which were skipped, and why. A draft is never sent: the
    officer completes it (recipients, treaty, expiry) and issues it.

Record kinds
    Export: one module per kind in :mod:`intelshare.interop.kinds`, found
    by the record's message type (``EXPORTERS``, ``record_objects``).
    Import makes alerts only, one mapper per STIX type or MISP object kept
    in tables (:data:`~intelshare.interop.stix_import.STIX_MAPPERS`,
    :data:`~intelshare.interop.misp.MISP_OBJECT_MAPPERS`).

The core imports neither service (an import-linter contract), so the alert
vocabularies used here are read from the protobuf enums themselves
(:mod:`intelshare.interop.vocab`) rather than from the node's schema module.
"""

from __future__ import annotations

from intelshare.interop.draft import Draft, Mapped, Skipped
from intelshare.interop.kinds import (
    EXPORTERS,
    alert_objects,
    export_alerts,
    export_records,
    record_objects,
)
from intelshare.interop.misp import draft_from_misp
from intelshare.interop.stix import ExportContext, RecordObjects, bundle_of
from intelshare.interop.stix_import import draft_from_stix

__all__ = [
    "EXPORTERS",
    "Draft",
    "ExportContext",
    "Mapped",
    "RecordObjects",
    "Skipped",
    "alert_objects",
    "bundle_of",
    "draft_from_misp",
    "draft_from_stix",
    "export_alerts",
    "export_records",
    "record_objects",
]
