from __future__ import annotations

import json
from typing import Any

from stix2validator import ValidationOptions, validate_string

#: Check 103 ("SDO ids SHOULD be UUIDv4") is the one STIX recommendation our
#: exports depart from on purpose: ids are UUIDv5 of the record name, so a
#: re-export updates instead of duplicating (see intelshare.interop).
DETERMINISTIC_ID_CHECK = "103"


def validate(bundle_json: str) -> tuple[list[str], list[str]]:
    """stix2-validator's errors and warnings for a bundle (check 103 off, see above)."""
    result = validate_string(
        bundle_json, ValidationOptions(version="2.1", disabled=[DETERMINISTIC_ID_CHECK])
    )
    return [str(e) for e in result.errors], [str(w) for w in result.warnings]


def objects_of(bundle_json: str) -> list[dict[str, Any]]:
    return list(json.loads(bundle_json)["objects"])
