"""A draft record made by an import, and the summary of what was mapped.

Import never sends anything: it reads a foreign document and fills what it
can of an ``Alert``. The officer reads the summary, completes the draft
(recipients, treaty, expiry, whatever could not be mapped) and issues it
with ``intelshare alert issue``. The summary is as important as the
draft: an analyst must see what from the source did *not* make it in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from google.protobuf.json_format import MessageToDict

from intelshare.v1 import alert_pb2


@dataclass(frozen=True)
class Mapped:
    """One source object or attribute that became part of the draft."""

    source: str  # e.g. "identity--…" or "MISP object person 5f1c…"
    target: str  # the draft field path, e.g. "subjects.persons[0]"


@dataclass(frozen=True)
class Skipped:
    """One source object or attribute left out, and why."""

    source: str
    reason: str


@dataclass
class Draft:
    """An Alert to complete and issue, with the import's summary."""

    alert: alert_pb2.Alert
    source_format: str  # "stix-2.1" or "misp"
    mapped: list[Mapped] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    #: What the officer still has to give before issuing, e.g. "recipients".
    missing: list[str] = field(default_factory=list)

    def map(self, source: str, target: str) -> None:
        self.mapped.append(Mapped(source, target))

    def skip(self, source: str, reason: str) -> None:
        self.skipped.append(Skipped(source, reason))

    def finish(self) -> Draft:
        """Work out ``missing`` from what the alert has now."""
        a = self.alert
        missing = []
        if not a.kind:
            missing.append("kind")
        if not a.description:
            missing.append("description")
        missing.append("recipients")  # never taken from a foreign document
        if not a.HasField("expire_time"):
            missing.append("expiry")
        self.missing = missing
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "source_format": self.source_format,
            "draft": MessageToDict(self.alert, preserving_proto_field_name=True),
            "mapped": [{"source": m.source, "target": m.target} for m in self.mapped],
            "skipped": [{"source": s.source, "reason": s.reason} for s in self.skipped],
            "missing": list(self.missing),
        }
