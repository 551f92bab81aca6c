"""The collections of the API root: one per treaty, one for the agency's own records.

A collection is a set of record sources (:mod:`taxii.sources`): the
agency's own collection lists what it issued, granted, detained, reported
and wrote (alerts, recordations, detentions, detention reports, risk
profiles); a treaty's collection the records shared or received under that
treaty (detentions never leave the node, so they are in the own collection
only). Ids are UUIDv5 of the agency and treaty, so a client's
configuration survives restarts; the treaty id is the collection's alias.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from intelshare.interop.ids import NAMESPACE
from intelshare.treaty import Treaty
from taxii.sources import Source, own_sources, treaty_sources

MEDIA_TYPE_STIX = "application/stix+json;version=2.1"


@dataclass(frozen=True)
class Collection:
    id: str
    title: str
    description: str
    alias: str
    #: The record kinds it holds, each with its filters.
    sources: tuple[Source, ...] = field(default_factory=tuple)

    def resource(self) -> dict[str, Any]:
        """The TAXII collection resource."""
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "alias": self.alias,
            "can_read": True,
            "can_write": False,
            "media_types": [MEDIA_TYPE_STIX],
        }


_RULES = {
    "forbidden": "Onward sharing is forbidden",
    "with_originator_consent": "Onward sharing only with the originator's consent",
    "within_treaty": "Onward sharing only within the treaty's parties",
}


def collections_for(agency_id: str, treaties: tuple[Treaty, ...]) -> dict[str, Collection]:
    """Collections by id, the agency's own first."""
    own = Collection(
        id=str(uuid.uuid5(NAMESPACE, f"taxii/{agency_id}/own")),
        title=f"{agency_id}: our own records",
        description=(
            f"Every alert {agency_id} issued, recordation it granted, detention it made and "
            "reported, and risk profile it wrote, as the caller may read them."
        ),
        alias="own",
        sources=own_sources(agency_id),
    )
    out = {own.id: own}
    for treaty in treaties:
        c = Collection(
            id=str(uuid.uuid5(NAMESPACE, f"taxii/{agency_id}/treaties/{treaty.id}")),
            title=treaty.title or treaty.id,
            description=(
                f"Alerts, recordations, detention reports and risk profiles shared or received "
                f"under treaty {treaty.id} "
                f"({treaty.purpose or 'no purpose stated'}). "
                f"{_RULES.get(treaty.onward_sharing.value, '')}; received records say so in "
                "their markings."
            ),
            alias=treaty.id,
            sources=treaty_sources(agency_id, treaty.id),
        )
        out[c.id] = c
    return out
