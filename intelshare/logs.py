"""Structured JSON logs that never carry payloads or keys.

Log lines are JSON objects (time, level, logger, message, and any ``extra``
fields), one per line, for log shippers. The code logs identifiers only:
message ids, agency ids, reasons. Payloads and key material are never passed
to a logger in the first place; as a second line of defence this formatter
drops ``extra`` fields whose names suggest secret content, and writes any
``bytes`` value (message argument or extra field: envelope, payload or key
material in every realistic case) as ``<N bytes>``.
"""

from __future__ import annotations

import copy
import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime

_RESERVED = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
_SECRET_HINTS = ("payload", "plaintext", "secret", "token", "private", "password", "key_pem")
_BYTES = (bytes, bytearray, memoryview)


def _redact(value: object) -> object:
    return f"<{len(value)} bytes>" if isinstance(value, _BYTES) else value


def _message(record: logging.LogRecord) -> str:
    """``record.getMessage()`` with bytes arguments replaced by their length."""
    args = record.args
    if isinstance(args, tuple) and any(isinstance(a, _BYTES) for a in args):
        record = copy.copy(record)
        record.args = tuple(_redact(a) for a in args)
    elif isinstance(args, Mapping) and any(isinstance(a, _BYTES) for a in args.values()):
        record = copy.copy(record)
        record.args = {k: _redact(v) for k, v in args.items()}
    return record.getMessage()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": _message(record),
        }
        for name, value in vars(record).items():
            if name in _RESERVED or name.startswith("_"):
                continue
            if any(h in name.lower() for h in _SECRET_HINTS):
                continue
            if isinstance(value, str | int | float | bool | None):
                doc[name] = value
            else:
                doc[name] = str(_redact(value))
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, sort_keys=True)


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Python warnings (a library's DeprecationWarning, Celery's SecurityWarning)
    # go through logging too, so stderr carries JSON lines only.
    logging.captureWarnings(True)
    # SQL echo would log bound values and result rows (payloads, envelopes):
    # it stays off at every --log-level.
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
