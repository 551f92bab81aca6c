"""The collections of the API root: one per treaty, one for the agency's own records.

A collection is a filter on the node's ``ListAlerts``: the agency's own
collection lists the alerts it issued (``direction = ISSUED``), a treaty's
collection the alerts shared or received under that treaty
(``treaty_id``). Ids are UUIDv5 of the agency and treaty, so a client's
configuration survives restarts; the treaty id is the collection's alias.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from intelshare.interop.ids import NAMESPACE
from intelshare.treaty import Treaty
from intelshare.v1 import alert_pb2

MEDIA_TYPE_STIX = "application/stix+json;version=2.1"


@dataclass(frozen=True)
class Collection:
    id: str
    title: str
    description: str
    alias: str
    #: Keyword arguments of NodeClient.list_alerts that select the collection.
    filters: dict[str, Any] = field(default_factory=dict)

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
        title=f"{agency_id}: alerts we issued",
        description=f"Every alert {agency_id} issued, as its officers read it.",
        alias="own",
        filters={"direction": alert_pb2.ALERT_DIRECTION_ISSUED},
    )
    out = {own.id: own}
    for treaty in treaties:
        c = Collection(
            id=str(uuid.uuid5(NAMESPACE, f"taxii/{agency_id}/treaties/{treaty.id}")),
            title=treaty.title or treaty.id,
            description=(
                f"Alerts shared or received under treaty {treaty.id} "
                f"({treaty.purpose or 'no purpose stated'}). "
                f"{_RULES.get(treaty.onward_sharing.value, '')}; received records say so in "
                "their markings."
            ),
            alias=treaty.id,
            filters={"treaty_id": treaty.id},
        )
        out[c.id] = c
    return out
