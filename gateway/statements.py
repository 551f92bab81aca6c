"""The SQL of the gateway's store: every statement its transactions run.

Each is an :class:`intelshare.db.Statement`, which holds a statement's form
for each database and runs the one for the connection it is given. Most are
text written once per dialect and run on the driver's own cursor, for two
reasons. Speed: a submit, a delivery and an acknowledgement run a handful of
short statements each, and text is not built, compiled or cache-keyed per
call; it is also the same for any batch size (lists travel as JSON text,
byte strings run together in one parameter), so psycopg prepares it once per
connection. And the databases differ where it matters: PostgreSQL does in one
statement (data-modifying CTEs) what SQLite does in several, and SQLite orders
writers by its database write lock where PostgreSQL relies on row locks taken
in one order (see :class:`gateway.store.GatewayStore`).

What there is:

* acceptance, one algorithm per database (``GatewayStore._accept_pg`` and
  ``_accept_sqlite``): ``ALLOCATE`` / ``ALLOCATE_ONE`` raise the recipients'
  queue counters, counting only messages not stored yet, and return the
  messages stored already; ``INSERT`` / ``INSERT_ONE`` write the message and
  inbox rows. The ``SQLITE_*`` statements are SQLite's steps of the same;
* the inbox: ``READ_INBOX``, ``POSITION``, ``FIND_MESSAGE``, and ``MARK``
  (first deliveries);
* release: ``ACKNOWLEDGE`` (PostgreSQL, one statement) or ``RAISE_FLOOR``,
  ``RELEASE`` and ``DROP_ORPHANS`` (SQLite, one after the other);
  ``EXPIRE`` and ``DROP_ORPHANS`` for expired entries;
* ``SAVE_DIRECTORY`` and ``SAVE_TREATY``, off the hot path, built from the
  tables with each dialect's ``INSERT ... ON CONFLICT DO NOTHING``.

Parameters are named in psycopg's style (``%(name)s``), which
:class:`~intelshare.db.Statement` turns into ``:name`` for SQLite; SQLite's
own texts may use ``:name`` or ``?`` directly.
"""

from __future__ import annotations

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite

from gateway.tables import directories, treaties
from intelshare.db import Statement

# --- the hot statements ----------------------------------------------------------------
#
# Written once per dialect as driver SQL: nothing is built, compiled or
# cache-keyed per call, and the text is the same for any batch size (lists
# travel as JSON text, byte strings run together in one parameter), so
# psycopg prepares each statement once per connection and runs no array
# dumper per element. Parameters are named; SQLite takes ``:name``.

_PG_ALLOCATE = """
WITH r AS (
    SELECT * FROM json_to_recordset(%(pairs)s::json) AS r(mid varchar, agency varchar)
), fresh AS (
    SELECT agency, count(*) AS n FROM r
    WHERE NOT EXISTS (SELECT 1 FROM gw_messages m WHERE m.message_id = r.mid)
    GROUP BY agency
), q AS (
    INSERT INTO gw_queues AS g (agency_id, last_sequence, acked_sequence)
    SELECT agency, n, 0 FROM fresh ORDER BY agency
    ON CONFLICT (agency_id) DO UPDATE SET last_sequence = g.last_sequence + excluded.last_sequence
    RETURNING agency_id, last_sequence
)
SELECT 'q', agency_id, last_sequence, NULL::bytea, NULL::bytea FROM q
UNION ALL
SELECT 'm', message_id, log_index, envelope_sha256, receipt FROM gw_messages
WHERE message_id = ANY(ARRAY(SELECT json_array_elements_text(%(ids)s::json)))
"""

# The rows as JSON text and their byte strings (envelopes, digests,
# receipts) run together in one bytea, each row naming where its own are: a
# psycopg list dump per column would cost far more than the statement.
_PG_INSERT = """
WITH r AS (
    SELECT * FROM json_to_recordset(%(rows)s::json) AS r(
        mid varchar, sender varchar, treaty varchar, idx bigint, accept bigint, expire bigint,
        env_at int, env_len int, sha_at int, sha_len int, rec_at int, rec_len int)
), m AS (
    INSERT INTO gw_messages (message_id, sender, treaty_id, envelope, envelope_sha256,
                             log_index, receipt, accept_ms, expire_ms)
    SELECT mid, sender, treaty, substring(%(blob)s::bytea FROM env_at FOR env_len),
           substring(%(blob)s::bytea FROM sha_at FOR sha_len), idx,
           substring(%(blob)s::bytea FROM rec_at FOR rec_len), accept, expire
    FROM r
)
INSERT INTO gw_inbox (agency_id, sequence, message_id, expire_ms)
SELECT * FROM json_to_recordset(%(inbox)s::json) AS i(agency varchar, seq bigint, mid varchar,
                                                       expire bigint)
"""

# The same for a group of one (the usual case unless submits are concurrent):
# scalars where they can be, and the lists as JSON text, which psycopg binds
# far more cheaply than arrays (a dumper looked up and run per list).
_PG_ALLOCATE_ONE = """
WITH q AS (
    INSERT INTO gw_queues AS g (agency_id, last_sequence, acked_sequence)
    SELECT agency, 1, 0 FROM json_array_elements_text(%(agencies)s::json) AS r(agency)
    WHERE NOT EXISTS (SELECT 1 FROM gw_messages m WHERE m.message_id = %(mid)s)
    ORDER BY agency
    ON CONFLICT (agency_id) DO UPDATE SET last_sequence = g.last_sequence + 1
    RETURNING agency_id, last_sequence
)
SELECT 'q', agency_id, last_sequence, NULL::bytea, NULL::bytea FROM q
UNION ALL
SELECT 'm', message_id, log_index, envelope_sha256, receipt FROM gw_messages
WHERE message_id = %(mid)s
"""

_PG_INSERT_ONE = """
WITH m AS (
    INSERT INTO gw_messages (message_id, sender, treaty_id, envelope, envelope_sha256,
                             log_index, receipt, accept_ms, expire_ms)
    VALUES (%(mid)s, %(sender)s, %(treaty)s, %(env)s, %(sha)s, %(index)s, %(receipt)s,
            %(accept)s, %(expire)s)
)
INSERT INTO gw_inbox (agency_id, sequence, message_id, expire_ms)
SELECT key, value::bigint, %(mid)s, %(expire)s FROM json_each_text(%(seqs)s::json)
"""

# Acceptance is one algorithm per database (GatewayStore._accept_pg and
# _accept_sqlite); these are their statements.
ALLOCATE = Statement(postgresql=_PG_ALLOCATE)
INSERT = Statement(postgresql=_PG_INSERT)
ALLOCATE_ONE = Statement(postgresql=_PG_ALLOCATE_ONE)
INSERT_ONE = Statement(postgresql=_PG_INSERT_ONE)

# On SQLite the first write takes the database write lock (pysqlite begins
# lazily, before it), so counting the new messages in the allocating upsert
# sees every committed message and no other writer until commit. It also
# counts the messages already stored (rarely any), whose receipts are then read.
_SQLITE_ALLOCATE = """
INSERT INTO gw_queues (agency_id, last_sequence, acked_sequence)
SELECT json_extract(value, '$[1]') AS agency, count(*), 0 FROM json_each(:pairs)
WHERE NOT EXISTS (
    SELECT 1 FROM gw_messages m WHERE m.message_id = json_extract(value, '$[0]')
)
GROUP BY agency
ON CONFLICT (agency_id) DO UPDATE SET last_sequence = last_sequence + excluded.last_sequence
RETURNING agency_id, last_sequence, (
    SELECT count(*) FROM gw_messages WHERE message_id IN (SELECT value FROM json_each(:ids))
)
"""

# The same for a single submission (unless submits are concurrent): no pairs
# to take apart, and no count, since the upsert allocates either for every
# recipient or, when the message is stored already, for none.
_SQLITE_ALLOCATE_ONE = """
INSERT INTO gw_queues (agency_id, last_sequence, acked_sequence)
SELECT value, 1, 0 FROM json_each(:agencies)
WHERE NOT EXISTS (SELECT 1 FROM gw_messages m WHERE m.message_id = :mid)
ON CONFLICT (agency_id) DO UPDATE SET last_sequence = last_sequence + 1
RETURNING agency_id, last_sequence
"""

_SQLITE_EXISTING = """
SELECT message_id, log_index, envelope_sha256, receipt FROM gw_messages
WHERE message_id IN (SELECT value FROM json_each(:ids))
"""

_SQLITE_INSERT_MESSAGE = """
INSERT INTO gw_messages (message_id, sender, treaty_id, envelope, envelope_sha256,
                         log_index, receipt, accept_ms, expire_ms)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

_SQLITE_INSERT_INBOX = """
INSERT INTO gw_inbox (agency_id, sequence, message_id, expire_ms) VALUES (?, ?, ?, ?)
"""

SQLITE_ALLOCATE = Statement(sqlite=_SQLITE_ALLOCATE)
SQLITE_ALLOCATE_ONE = Statement(sqlite=_SQLITE_ALLOCATE_ONE)
SQLITE_EXISTING = Statement(sqlite=_SQLITE_EXISTING)
SQLITE_INSERT_MESSAGE = Statement(sqlite=_SQLITE_INSERT_MESSAGE)
SQLITE_INSERT_INBOX = Statement(sqlite=_SQLITE_INSERT_INBOX)

# Reads and the other statements, each with its text for both databases
# (intelshare.db.Statement: psycopg's or pysqlite's own cursor). Lists
# travel as JSON text on both.
_READ_INBOX = """
SELECT i.sequence, i.message_id, m.envelope, m.receipt, i.delivered_ms, m.accept_ms
FROM gw_inbox i JOIN gw_messages m ON m.message_id = i.message_id
WHERE i.agency_id = %(agency)s AND i.sequence > %(after)s AND i.expire_ms > %(now)s
ORDER BY i.sequence
LIMIT %(limit)s
"""
# A batch is a few hundred rows of ~2 KB, where a result wrapper would cost
# more than the statement; binary, PostgreSQL sends the envelopes as they
# are rather than as hex.
READ_INBOX = Statement(postgresql=_READ_INBOX, sqlite=_READ_INBOX, binary=True)

_POSITION = """
SELECT last_sequence, acked_sequence FROM gw_queues WHERE agency_id = %(agency)s
"""
POSITION = Statement(postgresql=_POSITION, sqlite=_POSITION)

_FIND_MESSAGE = """
SELECT message_id, envelope_sha256, log_index, receipt FROM gw_messages
WHERE message_id = %(mid)s
"""
FIND_MESSAGE = Statement(postgresql=_FIND_MESSAGE, sqlite=_FIND_MESSAGE)

MARK = Statement(
    postgresql="""
UPDATE gw_inbox SET delivered_ms = %(now)s
WHERE agency_id = %(agency)s
  AND sequence = ANY(ARRAY(SELECT json_array_elements_text(%(seqs)s::json)::bigint))
  AND delivered_ms IS NULL
RETURNING sequence, message_id
""",
    sqlite="""
UPDATE gw_inbox SET delivered_ms = %(now)s
WHERE agency_id = %(agency)s AND sequence IN (SELECT value FROM json_each(%(seqs)s))
  AND delivered_ms IS NULL
RETURNING sequence, message_id
""",
)

# The floor only rises, and never past what was allocated; the UPDATE takes
# the queue row's lock first (see the lock order in GatewayStore.accept).
# Never beyond what was allocated (see GatewayStore.acknowledge).
_RAISE_FLOOR = """
UPDATE gw_queues SET acked_sequence = %(seq)s
WHERE agency_id = %(agency)s AND acked_sequence < %(seq)s AND %(seq)s <= last_sequence
RETURNING acked_sequence
"""

_RELEASE = """
DELETE FROM gw_inbox WHERE agency_id = %(agency)s AND sequence <= %(seq)s
RETURNING sequence, message_id, delivered_ms
"""

# The message row (id, digest, receipt) outlives its envelope so that a
# replayed message id is still recognised; only the bytes are dropped, once no
# queue holds the message any more.
_DROP_ORPHANS_SQLITE = """
UPDATE gw_messages SET envelope = x''
WHERE message_id IN (SELECT value FROM json_each(%(ids)s)) AND envelope <> x''
  AND NOT EXISTS (SELECT 1 FROM gw_inbox i WHERE i.message_id = gw_messages.message_id)
"""

# An acknowledgement in one statement on PostgreSQL: raise the floor,
# release the entries up to it, and forget envelopes no other queue entry
# needs (the entries this statement deletes are still visible to its own
# sub-statements, hence their exclusion). Row locks are taken in the order
# of the three statements it stands for: queue row, inbox rows, message
# rows. A row ``r`` carries the new floor; the ``e`` rows, the entries
# released. SQLite runs the three one after the other
# (GatewayStore._acknowledge), its write lock the whole transaction's anyway.
ACKNOWLEDGE = Statement(
    postgresql="""
WITH raised AS (
    UPDATE gw_queues SET acked_sequence = %(seq)s
    WHERE agency_id = %(agency)s AND acked_sequence < %(seq)s AND %(seq)s <= last_sequence
    RETURNING acked_sequence
), released AS (
    DELETE FROM gw_inbox
    WHERE agency_id = %(agency)s AND sequence <= %(seq)s AND EXISTS (SELECT 1 FROM raised)
    RETURNING sequence, message_id, delivered_ms
), dropped AS (
    UPDATE gw_messages AS m SET envelope = ''::bytea
    WHERE m.message_id IN (SELECT message_id FROM released) AND m.envelope <> ''::bytea
      AND NOT EXISTS (
          SELECT 1 FROM gw_inbox i WHERE i.message_id = m.message_id
            AND NOT (i.agency_id = %(agency)s AND i.sequence <= %(seq)s))
)
SELECT 'r', acked_sequence, NULL, NULL FROM raised
UNION ALL
SELECT 'e', sequence, message_id, delivered_ms FROM released
""",
)
RAISE_FLOOR = Statement(sqlite=_RAISE_FLOOR)
RELEASE = Statement(sqlite=_RELEASE)

# On PostgreSQL the rows are locked in queue order first, as marking and
# acknowledging lock them (by the primary key), not in expiry order.
EXPIRE = Statement(
    postgresql="""
DELETE FROM gw_inbox
WHERE (agency_id, sequence) IN (
    SELECT agency_id, sequence FROM gw_inbox WHERE expire_ms <= %(now)s
    ORDER BY agency_id, sequence FOR UPDATE
)
RETURNING agency_id, sequence, message_id
""",
    sqlite="""
DELETE FROM gw_inbox WHERE expire_ms <= %(now)s
RETURNING agency_id, sequence, message_id
""",
)

DROP_ORPHANS = Statement(
    postgresql="""
UPDATE gw_messages AS m SET envelope = ''::bytea
WHERE m.message_id = ANY(ARRAY(SELECT json_array_elements_text(%(ids)s::json)))
  AND m.envelope <> ''::bytea
  AND NOT EXISTS (SELECT 1 FROM gw_inbox i WHERE i.message_id = m.message_id)
""",
    sqlite=_DROP_ORPHANS_SQLITE,
)


def _insert_ignore(table: Table) -> Statement:
    """INSERT that does nothing if the primary key exists (both dialects)."""
    return Statement(
        postgresql=postgresql.insert(table).on_conflict_do_nothing(),
        sqlite=sqlite.insert(table).on_conflict_do_nothing(),
    )


SAVE_DIRECTORY = _insert_ignore(directories)
SAVE_TREATY = _insert_ignore(treaties)
