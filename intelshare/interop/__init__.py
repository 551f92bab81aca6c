"""Interoperability: STIX 2.1 export and import, MISP import.

Agencies' analysts work in MISP, OpenCTI and other tools that speak STIX
2.1 and TAXII 2.1. This package holds the *pure* mappings between those
formats and intelshare's records, so the officers' command line
(``intelshare alert export`` / ``import``) and the TAXII server
(:mod:`taxii`) use the same code. Nothing here talks to a node or a
network; callers hand in records they read through the node's API.

Export (:mod:`intelshare.interop.stix`)
    One record becomes a set of STIX objects: the holding or issuing agency
    as an ``identity``, the record as a ``report`` whose ``object_refs`` are
    its subjects, persons and companies as ``identity`` objects (the STIX
    type for people and organisations), and vehicles, vessels, containers
    and documents, which STIX has no type for, as new object types of our
    published ``extension-definition`` (:mod:`intelshare.interop.extension`,
    shipped as ``docs/stix/intelshare-extension-definition.json``). What
    STIX has no property for (handling code H0-H3, the admiralty
    evaluation, expiry, date of birth, passport number...) travels in the
    same extension as a property extension: never as ``x_`` custom
    properties, which STIX 2.1 deprecates. Markings are the official TLP
    2.0 marking definitions (:mod:`intelshare.interop.markings`); a record
    this node *received* also carries a statement marking naming the treaty
    it arrived under and what that treaty says about onward sharing.

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
    Each kind has its own small functions: ``alert_objects`` for export and
    one mapper per STIX type or MISP object for import, kept in tables
    (:data:`~intelshare.interop.stix_import.STIX_MAPPERS`,
    :data:`~intelshare.interop.misp.MISP_OBJECT_MAPPERS`), so detentions,
    recordations and risk profiles add their own functions beside them
    without touching the alert's.

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
