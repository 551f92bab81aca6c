"""Alembic migrations run from code, on the engine the service already has.

Each service (node, gateway) keeps its own migration scripts; this runs them
to ``head`` at start so an operator upgrades by installing the new version
and restarting. On PostgreSQL an advisory lock makes concurrent starts (two
gateway replicas) take turns instead of racing to create the same tables.
"""

from __future__ import annotations

import logging
import zlib
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

log = logging.getLogger(__name__)


def alembic_config(script_location: Path) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    return cfg


def upgrade(engine: Engine, script_location: Path, revision: str = "head") -> None:
    """Bring the database of ``engine`` to ``revision``.

    Alembic's own INFO lines (its plugins, the dialect, every step) are kept
    for ``--log-level DEBUG`` (:func:`intelshare.logs.configure_logging`);
    at INFO a start logs one line, and only when it migrated something.
    """
    from alembic.runtime.migration import MigrationContext

    cfg = alembic_config(script_location)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            lock_id = zlib.crc32(str(script_location.name).encode())
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_id})
        before = MigrationContext.configure(conn).get_current_revision()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        after = MigrationContext.configure(conn).get_current_revision()
    if after != before:
        log.info(
            "database migrated from %s to %s",
            before or "an empty database",
            after,
            extra={"from_revision": before, "to_revision": after},
        )


def current(engine: Engine, script_location: Path) -> str | None:
    """The revision the database is at, or None before the first migration."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
