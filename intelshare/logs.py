"""Structured JSON logs that never carry payloads or keys.

Log lines are JSON objects (time, level, logger, message, and any ``extra``
fields), one per line, for log shippers. The code logs identifiers only:
message ids, agency ids, reasons. Payloads and key material are never passed
to a logger in the first place; as a second line of defence this formatter
drops ``extra`` fields whose names suggest secret content.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

_RESERVED = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
_SECRET_HINTS = ("payload", "plaintext", "secret", "token", "private", "password", "key_pem")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name in _RESERVED or name.startswith("_"):
                continue
            if any(h in name.lower() for h in _SECRET_HINTS):
                continue
            doc[name] = value if isinstance(value, str | int | float | bool | None) else str(value)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, sort_keys=True)


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
