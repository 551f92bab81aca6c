"""The officers' gRPC API: servicers over the record kinds.

Each servicer authenticates the caller (:mod:`node.storage.officers`),
checks its role and runs a mutation once per ``request_id``
(:class:`node.api.base.Idempotent`); the one exception tree of
:mod:`intelshare.errors` becomes gRPC status with ``ErrorInfo`` at this
boundary (the server's :class:`~intelshare.grpc_errors.TranslateErrors`).
Feeds (``WatchAlerts``, ``WatchCase``) replay from the event log after the
caller's cursor, then follow live.
"""
