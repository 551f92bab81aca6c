"""Sharing: the engine that carries any record kind between agencies.

Below the record kinds (:mod:`node.kinds`), above storage. A kind calls
the engine; the engine never imports a kind: kinds register their inbound
handlers with it (:meth:`node.sharing.engine.Sharing.register`), so adding
a kind touches nothing here.

``node.sharing.engine``
    the life every kind shares: the treaty in force and its decision (the
    precise ``PolicyRefused`` reason), per-treaty redaction into *views*,
    sealing each view once for its recipients, the durable outbound queue,
    control messages on the treaty of the record they refer to, receipts
    (each kind marks what it shared), send failures, and the registry of
    inbound handlers by message kind.
``node.sharing.records``
    generic record kinds: a :class:`~node.sharing.records.RecordKind`
    declares its name, message, JSON form, validation, categories and
    expiry; :class:`~node.sharing.records.Records` stores, shares, updates,
    withdraws, receipts, purges and audits it.
``node.sharing.outbound``
    sealing and the send queue: an operation commits its envelopes with its
    change; a sender thread submits them in order with backoff, idempotent
    on message id at the gateway.
``node.sharing.inbound``
    the inbox stream: verify and open, re-check the treaty, store the
    verbatim envelope, the record, the event and the cursor in one
    transaction, and only then acknowledge to the gateway.
``node.sharing.receipts``
    receipts owed for received records, sealed in batches per issuer.
``node.sharing.trust``
    the directory and treaties (verified against the pinned anchor, cached,
    never downgraded, fail-closed when expired).
``node.sharing.evidence``
    disclosure of an author's content key so a forwarded envelope stays
    attributable to its author.
"""
