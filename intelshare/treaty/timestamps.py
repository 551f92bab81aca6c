"""Times at the treaty's edges: aware datetimes required, protobuf Timestamps converted."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from intelshare.errors import InvalidArgument


def _aware(at: datetime, name: str) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidArgument(f"{name} must be timezone-aware", violations={name: "naive datetime"})
    return at


def _timestamp(at: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(at)
    return ts


def _from_timestamp(ts: Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)
