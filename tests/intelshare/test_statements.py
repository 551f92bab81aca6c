"""One statement, its forms per database in one place (intelshare.db.Statement).

On both databases: the form of the connection's database runs (its own
text, else the portable construct), inside the caller's transaction, and a
driver error comes out as SQLAlchemy's.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, insert, literal, select
from sqlalchemy.exc import IntegrityError

from intelshare.db import KeptReader, Statement, make_engine

_md = MetaData()
_things = Table(
    "stmt_things",
    _md,
    Column("k", Integer, primary_key=True, autoincrement=False),
    Column("v", String(20)),
)

WHICH = Statement(
    select(literal("portable")),
    postgresql="SELECT 'postgresql' WHERE %(x)s = 1",
    sqlite="SELECT 'sqlite' WHERE %(x)s = 1",
)
PORTABLE = Statement(select(literal("portable")))
ADD = Statement(
    insert(_things),
    postgresql="INSERT INTO stmt_things (k, v) VALUES (%(k)s, %(v)s)",
    sqlite="INSERT INTO stmt_things (k, v) VALUES (%(k)s, %(v)s)",
)
ADD_PORTABLE = Statement(insert(_things))
BY_KEY = Statement(
    select(_things.c.k, _things.c.v).where(_things.c.k == bindparam("k")),
    postgresql="SELECT k, v FROM stmt_things WHERE k = %(k)s",
    named=True,
)


def test_each_database_runs_its_own_form(db_url: str) -> None:
    engine = make_engine(db_url)
    dialect = engine.dialect.name
    try:
        _md.create_all(engine)
        with engine.begin() as conn:
            assert WHICH.execute(conn, {"x": 1}).scalars() == [dialect]
            assert WHICH.execute(conn, {"x": 2}).first() is None
            assert PORTABLE.execute(conn).scalars() == ["portable"]
            # a list of parameter sets runs the statement for each
            ADD.execute(conn, [{"k": 1, "v": "a"}, {"k": 2, "v": "b"}])
            assert ADD.execute(conn, {"k": 3, "v": "c"}).rowcount == 1
            ADD_PORTABLE.execute(conn, [{"k": 4, "v": "d"}])
            row = BY_KEY.execute(conn, {"k": 2}).first()
            assert (row.k, row.v) == (2, "b")  # attribute access on both
        with engine.connect() as conn:
            count = conn.execute(select(_things.c.k).order_by(_things.c.k)).scalars().all()
        assert count == [1, 2, 3, 4]

        # a driver error is SQLAlchemy's, and rolls back the caller's transaction whole
        def add_then_clash() -> None:
            with engine.begin() as conn:
                ADD.execute(conn, {"k": 5, "v": "e"})
                ADD.execute(conn, {"k": 1, "v": "again"})

        with pytest.raises(IntegrityError):
            add_then_clash()
        with engine.connect() as conn:
            assert BY_KEY.execute(conn, {"k": 5}).first() is None
        # a kept reader gives the same rows, connection kept on PostgreSQL only
        reader = KeptReader(engine)
        assert reader.execute(BY_KEY, {"k": 3}).first().v == "c"
        assert (reader.connection is not None) == (dialect == "postgresql")
        reader.close()
        assert reader.connection is None
    finally:
        _md.drop_all(engine)
        engine.dispose()


def test_a_statement_without_a_form_for_the_database_says_so(db_url: str) -> None:
    engine = make_engine(db_url)
    other = "sqlite" if engine.dialect.name == "postgresql" else "postgresql"
    only_other = Statement(**{other: "SELECT 1"})  # type: ignore[arg-type]
    try:
        with engine.connect() as conn, pytest.raises(RuntimeError, match="no form"):
            only_other.execute(conn)
    finally:
        engine.dispose()
