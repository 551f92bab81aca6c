"""The agency node: officers' API, record kinds, the sharing engine, storage.

Each agency runs one node. Its officers talk only to it (gRPC over TLS,
bearer tokens, roles: :mod:`node.storage.officers`); it talks to the
federation only through the gateway (mTLS with the agency certificate).
Nothing here imports the gateway package: the two meet on the wire contract.

Layers, top to bottom (imports go down only; ``import-linter`` checks it)
--------------------------------------------------------------------------
``node.admin``
    ``intelshare node ...`` for the agency's IT team and ``intelshare worker``.
``node.server``
    the one place that wires the pieces: the officer API, the inbox thread,
    the sender thread, the receipts thread, maintenance, the outbox relay.
``node.metrics``
    the node's counters and its ``/metrics`` endpoint.
``node.api`` | ``node.notify``
    the gRPC servicers (authentication, idempotent mutations, feeds), and
    notifications (outbox relay, Celery tasks, webhooks).
``node.kinds``
    one module per record kind: what is its own (tables, rules, what a
    received copy does). Kinds do not import each other.
``node.sharing``
    the engine every kind runs on (:mod:`node.sharing.engine`): treaty
    decisions, per-treaty views, sealing, the outbound queue, inbound
    opening, receipts, trust; and generic kinds declared in a few lines
    (:mod:`node.sharing.records`).
``node.storage``
    tables, migrations, the unit of work, officers.
``node.schema`` | ``node.ipr`` | ``node.targeting`` | ``node.config``
    pure: wire forms, domain rules, configuration.

``node.cli`` (the officers' commands) sits beside all this and reaches the
node only through its gRPC API.

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

``docs/architecture.md`` ("The node", "Adding a record kind") tells the
rest.
"""
