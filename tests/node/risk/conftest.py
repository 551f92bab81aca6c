"""Fixtures of the risk targeting tests: the node tests' federation with the two risk kinds."""

from __future__ import annotations

from pathlib import Path

import pytest

from intelshare import devfed
from tests.node.conftest import AGENCIES, CUSTOMS, treaties

PROFILE_FIELDS = ["title", "rationale", "action", "valid_from", "valid_until", "criteria"]
HIT_FIELDS = [
    "profile",
    "reference",
    "reasons",
    "identifiers",
    "screen_time",
    "inspection",
    "finding",
]  # never "note": the officer's note stays home


@pytest.fixture
def fed(tmp_path: Path) -> devfed.LocalFederation:
    """The customs treaty lists risk_profile and risk_hit with their allow-lists."""
    data = treaties()
    customs = next(d for d in data if d["id"] == CUSTOMS)
    customs["kinds"] = [*customs["kinds"], "risk_profile", "risk_hit"]
    customs["fields"]["risk_profile"] = PROFILE_FIELDS
    customs["fields"]["risk_hit"] = HIT_FIELDS
    return devfed.build(tmp_path / "fed", AGENCIES, data)
