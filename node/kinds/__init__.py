"""Record kinds: one module per kind, each declaring only what is its own.

A kind owns its records' tables, its validation (through its wire form in
:mod:`node.schema`), what it sends (through :mod:`node.sharing.engine`,
never around it), how a received copy is applied, and what its control
messages mean. It registers its inbound handlers with the engine; the
engine never imports a kind. Kinds do not import each other.

``node.kinds.alerts``
    cross-border alerts: issue, update, revoke, acknowledge, hit reports,
    delivery status, expiry and retention.
``node.kinds.cases``
    joint cases: entries, membership kept in step by the owner, history
    for new members, relay, local case teams, retention.

How to add one is in ``docs/architecture.md`` ("Adding a record kind").
"""
