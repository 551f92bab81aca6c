"""Alembic migrations run from code, on the engine the service already has.

Each service (node, gateway) keeps its own migration scripts; this runs them
to ``head`` at start so an operator upgrades by installing the new version
and restarting. On PostgreSQL an advisory lock makes concurrent starts (two
gateway replicas) take turns instead of racing to create the same tables.
"""

from __future__ import annotations

import zlib
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text


def alembic_config(script_location: Path) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    return cfg


def upgrade(engine: Engine, script_location: Path, revision: str = "head") -> None:
    """Bring the database of ``engine`` to ``revision``."""
    cfg = alembic_config(script_location)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            lock_id = zlib.crc32(str(script_location.name).encode())
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_id})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current(engine: Engine, script_location: Path) -> str | None:
    """The revision the database is at, or None before the first migration."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
