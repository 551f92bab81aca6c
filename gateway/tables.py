"""The gateway's tables (SQLAlchemy Core), as the code sees them today.

Migrations in ``gateway/migrations/versions`` create them; a migration never
imports this module, since a migration describes one step forever while these
definitions follow the code (``gateway/migrations/env.py`` hands this metadata
to Alembic as its target). Times are integer milliseconds since the epoch
(``*_ms``), the same on SQLite and PostgreSQL.

Table by table:

``gw_messages``
    each accepted envelope once, with its digest, audit log index and signed
    receipt. The row outlives its envelope: once no queue holds the message
    the bytes are dropped, and the id, digest and receipt stay, so that a
    replayed message id is still recognised.
``gw_queues``
    one row per recipient agency: the last sequence number allocated and the
    acknowledged floor (``acked_sequence``), below which entries were released.
``gw_inbox``
    one row per recipient and envelope until it is acknowledged or expires;
    ``delivered_ms`` is set once a stream has sent it.
``gw_directories`` and ``gw_treaties``
    the signed directory and treaty versions the gateway was given.

The statements on them are in :mod:`gateway.statements`, the transactions in
:mod:`gateway.store`.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
)

metadata = MetaData()

messages = Table(
    "gw_messages",
    metadata,
    Column("message_id", String(64), primary_key=True),
    Column("sender", String(128), nullable=False),
    Column("treaty_id", String(128), nullable=False),
    Column("envelope", LargeBinary, nullable=False),
    Column("envelope_sha256", LargeBinary(32), nullable=False),
    Column("log_index", BigInteger, nullable=False),
    Column("receipt", LargeBinary, nullable=False),
    Column("accept_ms", BigInteger, nullable=False),
    Column("expire_ms", BigInteger, nullable=False),
)

queues = Table(
    "gw_queues",
    metadata,
    Column("agency_id", String(128), primary_key=True),
    Column("last_sequence", BigInteger, nullable=False, default=0),
    Column("acked_sequence", BigInteger, nullable=False, default=0),
)

inbox = Table(
    "gw_inbox",
    metadata,
    Column("agency_id", String(128), primary_key=True),
    Column("sequence", BigInteger, primary_key=True),
    Column(
        "message_id",
        String(64),
        ForeignKey("gw_messages.message_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("expire_ms", BigInteger, nullable=False),
    Column("delivered_ms", BigInteger, nullable=True),
)
Index("gw_inbox_expiry", inbox.c.expire_ms)
Index("gw_inbox_message", inbox.c.message_id)

directories = Table(
    "gw_directories",
    metadata,
    Column("version", BigInteger, primary_key=True, autoincrement=False),
    Column("signed", LargeBinary, nullable=False),
    Column("publish_ms", BigInteger, nullable=False),
)

treaties = Table(
    "gw_treaties",
    metadata,
    Column("treaty_id", String(128), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("signed", LargeBinary, nullable=False),
    Column("publish_ms", BigInteger, nullable=False),
)
