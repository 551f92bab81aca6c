"""Storage: the node's tables, its one unit of work, and its officers.

The lowest layer of the node (above only :mod:`node.schema` and
:mod:`node.config`); nothing here knows about treaties, envelopes or record
kinds.

``node.storage.tables`` / ``node/storage/migrations``
    SQLAlchemy Core tables over SQLite (the embedded default) or PostgreSQL,
    chosen by URL; Alembic migrations run at start and never import the
    tables (a migration states the schema of its own day).
``node.storage.store``
    the unit of work (:class:`~node.storage.store.Writer`): a change, its
    **event row** (the transactional outbox and the feed log, sequence
    numbers from a counter row so commit order equals sequence order) and
    its audit entry commit in one transaction; wake-ups fire only after
    commit. Idempotency records for ``request_id`` live here too.
``node.storage.officers``
    officers, roles and permissions; bearer tokens are stored as SHA-256
    digests only.
"""
