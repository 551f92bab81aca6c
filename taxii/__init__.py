"""A read-only TAXII 2.1 server for the agency's own tools, over the node's officer API.

``intelshare taxii serve --config taxii.yaml`` serves one API root with one
collection per treaty the agency holds (records shared or received under
it) and one for the agency's own records (alerts, recordations, detentions,
detention reports, risk profiles it made; :mod:`taxii.sources`). Objects
are the STIX 2.1 export of :mod:`intelshare.interop`; nothing here reads a
database.

Who sees what
    A caller authenticates with its officer token (``Authorization: Bearer``,
    or HTTP Basic with the token as password, which is what most TAXII
    clients offer). The token is forwarded to the node's gRPC API with every
    call, so a caller sees exactly what that officer may read on the node,
    and every read of a received alert is audited there as the officer's.
    Only accounts of the node have tokens (its officers, and rights
    holders' accounts, which the node lets read their own recordations,
    received ones too, and the detentions naming them), so received
    records reach no partner through this server: it serves the agency's
    own systems, and each received record carries the treaty's
    onward-sharing rule as a STIX statement marking. Read-only: writes are
    refused with 403. The token is checked before the path, so without a
    valid one every path is 401, and 404 tells only an authenticated
    caller that a collection is not served here.

Paging
    TAXII pages oldest first by ``date_added``: for every object of a
    record, the time its current version reached the node (its
    ``update_time``; the creation for records that never change). A request
    without ``next`` reads the collection's records once (alerts changed
    after ``added_after`` filtered by the node, ``update_time_after``; the
    other, fewer kinds filtered here), sorts them, and keeps that snapshot
    (the records, serialized) under a random ``next`` key for
    :attr:`~taxii.config.TaxiiConfig.traversal_ttl_seconds`; later pages
    are served from it, so paging through N records reads each once and a
    page never shows an object twice or skips one, whatever changes
    meanwhile (changes come with the next ``added_after`` poll: new records
    and new versions of known ones, with a newer ``modified``). Pages end
    between two ``date_added`` values where they can, so resuming with
    ``added_after`` set to the last page's ``X-TAXII-Date-Added-Last`` misses
    nothing. Shared objects (agency identities, marking and extension
    definitions) come once per traversal, with the first record that
    refers to them.

Layout: :mod:`taxii.config` (the YAML file), :mod:`taxii.collections`
(the collections), :mod:`taxii.sources` (what each lists, read from the
node), :mod:`taxii.paging` (snapshots and pages),
:mod:`taxii.nodeclients` (authentication and the officers' gRPC clients),
:mod:`taxii.app` (the Starlette application: routes, media types, errors),
:mod:`taxii.server` (uvicorn in a thread) and :mod:`taxii.cli`.
"""
