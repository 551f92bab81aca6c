"""Reading a document to import: JSON text or bytes into a mapping, with clear errors."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from intelshare.errors import Malformed

#: Documents larger than this are refused before parsing (an alert is small).
MAX_IMPORT_BYTES = 16 * 1024 * 1024


def load_json(data: bytes | str | Mapping[str, Any], what: str) -> Mapping[str, Any]:
    if isinstance(data, Mapping):
        return data
    if len(data) > MAX_IMPORT_BYTES:
        raise Malformed(f"the {what} is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MiB")
    try:
        loaded = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Malformed(f"the {what} is not JSON: {exc}") from None
    if not isinstance(loaded, dict):
        raise Malformed(f"the {what} is not a JSON object")
    return loaded
