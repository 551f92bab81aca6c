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
    generic record kinds: :class:`~node.sharing.records.Records` stores,
    shares, updates, withdraws, receipts and purges the records of every
    kind registered with it, issued and received.
``node.sharing.record_kind``
    what such a kind declares (:class:`~node.sharing.record_kind.RecordKind`:
    its name, message, JSON form, validation, categories and expiry) and a
    record as the node holds it (``StoredRecord``).
``node.sharing.record_reads``
    reading them: one record, a kind's list, the one paging rule, every read
    of a received record audited.
``node.sharing.sealing``
    envelopes sealed as this agency, and sealed again with the same message
    id when one waited past the gateway's clock skew.
``node.sharing.outbox``
    the durable send queue: an operation commits its envelopes with its
    change.
``node.sharing.outbound``
    the sender threads: they submit the queue in order with backoff,
    idempotent on message id at the gateway.
``node.sharing.incoming``
    what an inbound handler is given and answers (the kinds' side of the
    inbox).
``node.sharing.inbound_checks``
    the verdict on one inbox entry: verify and open it, re-check the treaty,
    find its handler, or refuse it with the precise reason.
``node.sharing.inbound``
    the inbox stream: store the verbatim envelope, the record, the event and
    the cursor in one transaction, and only then acknowledge to the gateway.
``node.sharing.receipts``
    receipts owed for received records, sealed in batches per issuer.
``node.sharing.trust``
    the directory and treaties (verified against the pinned anchor, cached,
    never downgraded, fail-closed when expired).
``node.sharing.evidence``
    disclosure of an author's content key so a forwarded envelope stays
    attributable to its author.
"""
