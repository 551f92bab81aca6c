"""What missed its target, by how much, where the time goes, and the next step."""

from __future__ import annotations

from typing import Any


def analysis(results: dict[str, dict[str, Any]]) -> str:
    return "## Where the time goes\n\n(analysis pending)"
