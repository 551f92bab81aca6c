"""A read-only TAXII 2.1 server for the agency's own tools, over the node's officer API.

``intelshare taxii serve --config taxii.yaml`` serves one API root with one
collection per treaty the agency holds (alerts shared or received under it)
and one for the agency's own records (alerts it issued). Objects are the
STIX 2.1 export of :mod:`intelshare.interop`; nothing here reads a database.

Who sees what
    A caller authenticates with its officer token (``Authorization: Bearer``,
    or HTTP Basic with the token as password, which is what most TAXII
    clients offer). The token is forwarded to the node's gRPC API with every
    call, so a caller sees exactly what that officer may read on the node,
    and every read of a received alert is audited there as the officer's.
    Only the node's own officers have tokens, so received records never
    reach anyone else through this server: it serves the agency's own
    systems, never a third party, and each received record carries the
    treaty's onward-sharing rule as a STIX statement marking. Read-only:
    writes are refused with 403.

Paging
    The node lists alerts newest first, with opaque page tokens; TAXII pages
    oldest first by ``date_added`` (the alert's creation time: every object
    of an alert has it). A request without ``next`` reads the node's list
    once, from the newest alert down to ``added_after``, and keeps that
    snapshot (the alerts, serialized) under a random ``next`` key for
    :attr:`~taxii.config.TaxiiConfig.traversal_ttl_seconds`; later pages
    are served from it, so paging through N alerts reads each once and a
    page never shows an object twice or skips one, whatever is issued
    meanwhile (new alerts come with the next ``added_after`` poll). Pages
    end between two ``date_added`` values where they can, so resuming with
    ``added_after`` set to the last page's ``X-TAXII-Date-Added-Last`` misses
    nothing. Shared objects (agency identities, marking and extension
    definitions) come once per traversal, with the first record that
    refers to them.

    An alert updated or revoked after a client read it keeps its
    ``date_added``: an ``added_after`` poll does not bring the new version
    (the node's list has no "changed since" filter yet); a full re-read
    does, with the same ids and a newer ``modified``.

Layout: :mod:`taxii.config` (the YAML file), :mod:`taxii.collections`
(what each collection lists), :mod:`taxii.paging` (snapshots and pages),
:mod:`taxii.nodeclients` (authentication and the officers' gRPC clients),
:mod:`taxii.app` (the Starlette application: routes, media types, errors),
:mod:`taxii.server` (uvicorn in a thread) and :mod:`taxii.cli`.
"""
