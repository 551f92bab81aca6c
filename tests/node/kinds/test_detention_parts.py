"""The parts of a node's detentions are made only together.

A move (``DetentionChanges``) reports a confirmation through a hook that
the reports part provides; the core declares it abstract, so a class
that leaves the reports out is refused when it is made, before any
detention is confirmed.
"""

from __future__ import annotations

from typing import Any

import pytest

from node.kinds.detentions import Detentions
from node.kinds.detentions.changes import DetentionChanges
from node.kinds.detentions.reading import DetentionReading


def test_a_class_without_the_reports_part_cannot_be_made() -> None:
    # Refused by object.__new__, before __init__ would look at its arguments.
    parts: dict[str, Any] = {
        "agency_id": "nl-customs",
        "store": None,
        "records": None,
        "sharing": None,
        "calendar": None,
    }
    for part in (DetentionChanges, DetentionReading):
        with pytest.raises(TypeError, match="_report_on_confirmation"):
            part(**parts)
    assert Detentions.__abstractmethods__ == frozenset()
