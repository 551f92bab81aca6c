from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from intelshare.db import make_engine, normalize_url, warm_pool


def test_postgres_urls_use_psycopg3() -> None:
    assert normalize_url("postgresql://u@h/db").startswith("postgresql+psycopg://")
    assert normalize_url("postgres://u@h/db").startswith("postgresql+psycopg://")
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"


def test_engine_connects_on_both_backends(db_url: str) -> None:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(text("select 1")).scalar() == 1
        if db_url.startswith("sqlite"):
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            # FULL (2): a commit is on disk before the services promise anything on it
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 2
    engine.dispose()


def test_driver_cursor_errors_are_sqlalchemys_and_a_lost_connection_is_invalidated(
    postgres_server_url: str,
) -> None:
    """What retry-on-disconnect code relies on, through psycopg's own cursor."""
    import pytest
    from sqlalchemy.exc import DBAPIError, IntegrityError

    from intelshare.db import pg_execute

    engine = make_engine(postgres_server_url)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("CREATE TEMP TABLE t (k int PRIMARY KEY)")
            assert pg_execute(conn, "INSERT INTO t VALUES (%(k)s) RETURNING k", {"k": 1}) == (
                1,
                [(1,)],
            )
            assert pg_execute(conn, "UPDATE t SET k = 2 WHERE k = %(k)s", {"k": 5}) == (0, [])
            with pytest.raises(IntegrityError) as dup:
                pg_execute(conn, "INSERT INTO t VALUES (%(k)s)", {"k": 1})
            assert not dup.value.connection_invalidated
            assert "[parameters" not in str(dup.value)  # bound values are never shown
            conn.rollback()
            pid = pg_execute(conn, "SELECT pg_backend_pid()", {})[1][0][0]
            with engine.connect() as other:
                other.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
            with pytest.raises(DBAPIError) as lost:
                pg_execute(conn, "SELECT 1", {})
            assert lost.value.connection_invalidated
            assert conn.invalidated
    finally:
        engine.dispose()


def test_postgres_sessions_commit_durably_even_where_the_database_says_otherwise(
    postgres_server_url: str,
) -> None:
    """A database tuned to ``synchronous_commit = off`` would let a crash take back
    a commit the gateway already signed a receipt for: sessions turn it on again,
    and leave the stricter replication levels alone."""
    import uuid

    import psycopg

    admin = postgres_server_url.rsplit("/", 1)[0] + "/postgres"
    name = f"intelshare_sync_{uuid.uuid4().hex[:8]}"
    url = postgres_server_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        for configured, expected in (("off", "on"), ("remote_apply", "remote_apply")):
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = {configured}')
            with psycopg.connect(url) as raw:  # what a session gets without us
                row = raw.execute("SHOW synchronous_commit").fetchone()
                assert row is not None
                assert row[0] == configured
            engine = make_engine(url)
            try:
                with engine.connect() as conn:
                    assert conn.execute(text("SHOW synchronous_commit")).scalar() == expected
                    conn.rollback()  # the setting is the session's, not the transaction's
                    assert conn.execute(text("SHOW synchronous_commit")).scalar() == expected
            finally:
                engine.dispose()
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_warm_pool_opens_the_pool_with_the_tables_loaded(db_url: str) -> None:
    """Every connection the pool keeps is open before the first request needs it."""
    engine = make_engine(db_url, pool_size=3)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE warm_me (id int PRIMARY KEY)")
    database = engine.url.database
    import psycopg

    from tests.conftest import PG_ADMIN_URL

    def sessions() -> int:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            row = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (database,)
            ).fetchone()
            assert row is not None
            return int(row[0])

    engine.dispose()
    assert sessions() == 0
    assert warm_pool(engine, ["warm_me"]) == 3
    assert engine.pool.checkedin() == 3  # type: ignore[attr-defined]
    assert sessions() == 3
    with engine.connect() as conn:  # a kept connection: no new session
        assert conn.exec_driver_sql("SELECT count(*) FROM warm_me").scalar() == 0
    assert sessions() == 3
    with pytest.raises(DBAPIError):  # a missing table is the caller's mistake, raised
        warm_pool(engine, ["no_such_table"])
    assert engine.pool.checkedin() == 3  # and the pool is intact
    engine.dispose()


def test_warm_pool_does_nothing_on_sqlite(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    assert warm_pool(engine, ["anything"]) == 0
    engine.dispose()


def test_sqlite_files_and_their_new_folder_are_private(tmp_path: Path) -> None:
    import os
    import stat

    from sqlalchemy import text

    from intelshare.db import make_engine

    os.umask(0o022)  # the usual default: files 0644, folders 0755 unless the code says otherwise
    db = tmp_path / "data" / "node" / "nl.db"
    engine = make_engine(f"sqlite:///{db}")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x TEXT)"))
            conn.execute(text("INSERT INTO t VALUES ('passport NX1234567')"))
        files = [db, db.with_name("nl.db-wal"), db.with_name("nl.db-shm")]
        assert all(f.exists() for f in files)
        for f in files:
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
        assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    finally:
        engine.dispose()
    # A database file left readable by others (an older release) is narrowed.
    old = tmp_path / "old.db"
    old.touch(mode=0o644)
    os.chmod(old, 0o644)
    make_engine(f"sqlite:///{old}").dispose()
    assert stat.S_IMODE(old.stat().st_mode) == 0o600
