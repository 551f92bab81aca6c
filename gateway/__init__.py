"""The federation gateway: authenticated routing, treaty enforcement and
store-and-forward delivery between agency nodes.

How it works
------------
Nodes call the gateway over mutual TLS; the peer certificate, matched by
fingerprint against the signed directory, is the calling agency. A submitted
envelope is checked on its signed header only (:mod:`gateway.admission`):
the gateway holds no key that opens a payload. An accepted envelope is
stored once and queued once per recipient (:mod:`gateway.store`) in the same
transaction as its audit-log entry and its signed receipt, so after a crash
the gateway either has all of it or none of it, and a resubmitted message id
gets the first receipt back instead of a second delivery.

Each recipient agency has its own queue with strictly increasing sequence
numbers. A node pulls its queue over one long-lived server stream
(:mod:`gateway.inbox`), replayed from the last sequence it acknowledged and
then live; nodes behind agency firewalls need no inbound port. Entries leave
the queue when acknowledged or when their envelope expires. Streams are woken
by :class:`intelshare.wakeup.WakeupHub` (Redis pub/sub across replicas), but
always read from the database: a lost wake-up costs at most one heartbeat
interval, never a message.

Several gateway processes can share one PostgreSQL and one Redis: nothing is
kept only in a process except caches that are rebuilt from the database.
"""
