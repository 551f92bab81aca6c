"""The audit append as a PostgreSQL function, version 1 (low level: SQL text only).

Why the database computes the tree here: an appender holds the audit state
row's lock until its transaction commits, and every other appender of the
log waits for it. Computed in Python, a node's append needs the state first
(a round trip), then the interpreter between each statement and the next,
and in a busy process the interpreter is shared by dozens of threads: the
lock was held for milliseconds of waiting for the GIL, and every write of
the node queued behind it. With the frontier update in the database, the
node sends its last statements and its ``COMMIT`` at once
(:meth:`intelshare.audit.log.AuditLog.append_statement`, psycopg's pipeline
mode) and the lock is held only for the server's own work and the commit's
WAL flush.

It is a second implementation of :meth:`intelshare.audit.merkle.Frontier.append`
(the RFC 9162 hashes: ``SHA-256(0x00 || leaf)``, ``SHA-256(0x01 || left ||
right)``), kept honest by :meth:`AuditLog.verify`, which recomputes every
hash in Python, and by the tests that compare the two on the same leaves.

Migrations must not import live definitions, so this text is frozen as
version 1: a change is a new function (``audit_append_v2``) created by a new
migration, never an edit here. The node's migrations create it (and
:func:`intelshare.audit.tables.create_tables`; the gateway keeps the Python
append, whose signed heads and in-memory proofs its receipts need). It is
PostgreSQL only (SQLite appends stay in Python: the database write lock is
the whole transaction's anyway).
"""

from __future__ import annotations

from typing import Any

# Arguments: the log id (written into the state row by the first append,
# checked by every later one), the entries as a JSON list of
# [event, offset, length] into the concatenated leaf bytes, those bytes, and
# the entries' time. Returns the index of the first entry appended.
CREATE = r"""
CREATE OR REPLACE FUNCTION audit_append_v1(
    p_log_id text, p_entries json, p_leaves bytea, p_at timestamptz
) RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
    st_log text;
    st_size bigint;
    st_frontier bytea;
    first_idx bigint;
    e json;
    leaf bytea;
    h bytea;
    pos bigint;
    lvl int;
    ne int := 0;
    nn int := 0;
    e_idx bigint[];
    e_event text[];
    e_leaf bytea[];
    e_hash bytea[];
    n_level smallint[];
    n_idx bigint[];
    n_hash bytea[];
BEGIN
    SELECT log_id, size, frontier INTO st_log, st_size, st_frontier
    FROM audit_state WHERE id = 1 FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO audit_state (id, log_id, size, frontier, updated_at)
        VALUES (1, p_log_id, 0, ''::bytea, p_at) ON CONFLICT (id) DO NOTHING;
        SELECT log_id, size, frontier INTO st_log, st_size, st_frontier
        FROM audit_state WHERE id = 1 FOR UPDATE;
    END IF;
    IF st_log <> p_log_id THEN
        RAISE EXCEPTION USING ERRCODE = 'data_exception',
            MESSAGE = 'this database holds the audit log ' || st_log || ', not ' || p_log_id;
    END IF;
    IF length(st_frontier) <> 32 * length(replace(st_size::bit(64)::text, '0', '')) THEN
        RAISE EXCEPTION USING ERRCODE = 'data_corrupted',
            MESSAGE = 'audit state is corrupt: ' || length(st_frontier)
                      || ' bytes are not a frontier of size ' || st_size;
    END IF;
    first_idx := st_size;
    -- The tree in memory first, then one INSERT per table: a statement per
    -- row would cost more than the hashing.
    FOR e IN SELECT value FROM json_array_elements(p_entries) LOOP
        leaf := substring(p_leaves FROM (e->>1)::int + 1 FOR (e->>2)::int);
        h := sha256('\x00'::bytea || leaf);
        pos := st_size;
        ne := ne + 1;
        e_idx[ne] := pos;
        e_event[ne] := e->>0;
        e_leaf[ne] := leaf;
        e_hash[ne] := h;
        nn := nn + 1;
        n_level[nn] := 0;
        n_idx[nn] := pos;
        n_hash[nn] := h;
        lvl := 0;
        WHILE ((pos >> lvl) & 1) = 1 LOOP
            h := sha256('\x01'::bytea
                        || substring(st_frontier FROM length(st_frontier) - 31 FOR 32) || h);
            st_frontier := substring(st_frontier FROM 1 FOR length(st_frontier) - 32);
            lvl := lvl + 1;
            nn := nn + 1;
            n_level[nn] := lvl;
            n_idx[nn] := pos >> lvl;
            n_hash[nn] := h;
        END LOOP;
        st_frontier := st_frontier || h;
        st_size := st_size + 1;
    END LOOP;
    INSERT INTO audit_entries (idx, event, leaf, leaf_hash, created_at)
    SELECT u.idx, u.event, u.leaf, u.hash, p_at
    FROM unnest(e_idx, e_event, e_leaf, e_hash) AS u(idx, event, leaf, hash);
    INSERT INTO audit_nodes (level, idx, hash)
    SELECT u.level, u.idx, u.hash FROM unnest(n_level, n_idx, n_hash) AS u(level, idx, hash);
    UPDATE audit_state SET size = st_size, frontier = st_frontier, updated_at = p_at
    WHERE id = 1;
    RETURN first_idx;
END
$fn$
"""

DROP = "DROP FUNCTION IF EXISTS audit_append_v1(text, json, bytea, timestamptz)"

#: How a service calls it (psycopg's parameter style).
CALL = "SELECT audit_append_v1(%(log_id)s, %(entries)s::json, %(leaves)s, %(at)s)"


def create(op: Any) -> None:
    """Create the function with ``op`` (an ``alembic.op``); nothing on SQLite."""
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # The driver's own execute: the text is not a SQLAlchemy template
        # (its "::" casts are PostgreSQL's). It holds no "%" for the same reason.
        bind.exec_driver_sql(CREATE)


def drop(op: Any) -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        bind.exec_driver_sql(DROP)
