"""The wire form of one row of the identifier index: a ``RelatedRecord``.

Shared by every read that shows related records (FindRelated, and the
``related`` list of GetAlert, GetRecordation, GetDetention, GetRiskHit), so
the index row becomes the same message whichever kind is read.
"""

from __future__ import annotations

from typing import Any, Final

from intelshare.v1 import risk_profile_pb2 as P
from node.schema.alert import ms_to_ts

#: the index's direction column in the wire's enum
_DIRECTIONS: Final = {
    "issued": P.RISK_PROFILE_DIRECTION_ISSUED,
    "received": P.RISK_PROFILE_DIRECTION_RECEIVED,
}


def related_proto(row: Any) -> P.RelatedRecord:
    return P.RelatedRecord(
        name=row.record_name,
        kind=row.record_kind,
        key=row.key,
        role=row.role,
        direction=_DIRECTIONS.get(row.direction, P.RISK_PROFILE_DIRECTION_UNSPECIFIED),
        origin_agency=row.origin_agency,
        create_time=ms_to_ts(row.create_ms),
    )
