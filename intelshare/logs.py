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


#: Records a long-running service writes on every tick whether or not anything
#: happened: (logger, message template as logged). At INFO they are dropped; at
#: DEBUG they stay, as DEBUG records. Failures, retries and the services' own
#: lines about work done are not among them.
ROUTINE: frozenset[tuple[str, str]] = frozenset(
    {
        # Celery: every task received and every task that succeeded (beat's
        # periodic tasks, each few seconds), and beat sending each of them
        ("celery.worker.strategy", "Task %(name)s[%(id)s] received"),
        ("celery.app.trace", "Task %(name)s[%(id)s] succeeded in %(runtime)ss: %(return_value)s"),
        ("celery.beat", "Scheduler: Sending due task %s (%s)"),
    }
)


class RoutineFilter(logging.Filter):
    """Keeps :data:`ROUTINE` records out of the log unless it is at DEBUG level."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if (record.name, str(record.msg).strip()) not in ROUTINE:
            return True
        if self.level > logging.DEBUG:
            return False
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    debug = root.getEffectiveLevel() <= logging.DEBUG
    handler.addFilter(RoutineFilter(root.getEffectiveLevel()))
    # Alembic says at INFO which plugins it loaded and which dialect it uses,
    # at every start; intelshare.migrate logs one line when it migrated.
    logging.getLogger("alembic").setLevel(logging.NOTSET if debug else logging.WARNING)
    # Python warnings (a library's DeprecationWarning, Celery's SecurityWarning)
    # go through logging too, so stderr carries JSON lines only.
    logging.captureWarnings(True)
    # SQL echo would log bound values and result rows (payloads, envelopes):
    # it stays off at every --log-level.
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)


def log_celery_messages() -> None:
    """Celery's worker messages as log records, not plain text on stdout.

    Celery writes a few messages itself, each between blank lines, straight
    to the standard output's file descriptor (``celery.apps.worker.safe_say``:
    ``worker: Warm shutdown (MainProcess)``, the Ctrl-C hints); this makes
    them INFO records of the ``celery.apps.worker`` logger, so the worker's
    output stays one JSON object per line. Call it in the process that runs
    the Celery worker, before it starts.
    """
    from celery.apps import worker as celery_worker

    logger = logging.getLogger("celery.apps.worker")

    def say(msg: str, f: object = None) -> None:
        text = str(msg).strip()
        if text:
            logger.info(text)

    celery_worker.safe_say = say
