"""The agency node: officers' API, storage, outbound sealing, inbound opening.

Each agency runs one node. Its officers talk only to it (gRPC over TLS,
bearer tokens, roles — :mod:`node.storage.officers`); it talks to the federation only
through the gateway (mTLS with the agency certificate). Nothing here
imports the gateway package: the two meet on the wire contract.

How a node is built
-------------------
``node.server``
    wires the pieces and runs the officer API, the inbox thread, the sender
    thread and a maintenance thread in one process.
``node.storage.store`` / ``node.storage.tables`` / ``node/storage/migrations``
    SQLAlchemy Core over SQLite (default) or PostgreSQL, Alembic migrations
    run at start. Every change goes through one unit of work that writes the
    change, its **event row** (the transactional outbox and feed log, with
    sequence numbers allocated from a counter row so commit order equals
    sequence order) and its audit entry in one transaction; wake-ups fire
    only after commit.
``node.sharing.trust``
    the directory (fetched from the gateway, verified against the pinned
    anchor, cached on disk, never downgraded, fail-closed when expired) and
    the treaties (fetched, cached, checked for being in force at each use).
``node.kinds.alerts``
    the alert domain, both directions: issue (per-treaty checks, redaction,
    one envelope per distinct redacted view), update, revoke, acknowledge,
    hit reports, receipts, per-recipient delivery status, expiry events and
    retention purges.
``node.kinds.cases`` / ``node.schema.case`` / ``node.sharing.evidence``
    joint cases, both directions: open, entries, membership (the owner's
    state messages, history for new members, relay of entries an author
    sent before it knew of a member), the local case teams that decide what
    analysts see, and the forwarding of authors' signed envelopes with their
    content keys so every entry stays attributable to its author.
    ``node.api.cases`` is the ``CaseService`` servicer (``WatchCase``).
``node.sharing.outbound``
    sealing, and the durable send queue: an operation commits its envelopes
    with its change; a sender thread submits them in order with backoff, so
    issuing works while the gateway is down and delivery follows when it
    returns. Gateway submission is idempotent on message id, so resending
    after a crash is safe.
``node.sharing.inbound``
    the inbox stream: verify and open, check the treaty again, store the
    verbatim envelope, the record, the event and the cursor in one
    transaction, and only then acknowledge to the gateway; duplicates are
    stored once; bad envelopes are audited and skipped.
``node.api.alerts``
    the ``AlertService`` servicer: role checks, idempotent mutations by
    ``request_id``, ``WatchAlerts`` (replay from the event log after a
    cursor, then live through :class:`~intelshare.wakeup.WakeupHub`).
``node.admin.node`` / ``node.cli.alert`` / ``node.cli.client``
    ``intelshare node ...`` for the agency's IT team, ``intelshare alert ...``
    for officers.

Invariants worth keeping
------------------------
* A partner never receives a field its treaty does not allow: redaction
  happens before sealing, and the receiving node refuses (and audits) a
  record that carries one anyway.
* Nothing is acknowledged to the gateway before it is durable here.
* Every mutation and its event commit together; events carry ids only.
* Every officer read of a received record is in the agency's audit log.
* Bad input is ``INVALID_ARGUMENT`` with per-field violations and leaves
  nothing written.

Designed for what comes next: cases and task forces add tables through a
new migration, handlers through :meth:`node.sharing.inbound.Inbound.register`,
event types ``case.*`` through the same unit of work, and their service in
its own proto file. Notifications (:mod:`node.notify`): a relay thread
hands ``node_events`` rows where ``notified_ms IS NULL`` to Celery workers
(``intelshare worker``), which wake feeds in every node process and call
the agency's webhooks.
"""
