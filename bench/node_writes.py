"""Node write transactions per second on PostgreSQL: pipelined against one by one.

Run ``.venv/bin/python -m bench.node_writes`` (``--quick`` for a smoke run,
``--json`` for machine-readable output, ``--threads 4,16``, ``--seconds``,
``--rounds``).

Why this bench: every event-writing transaction of a node holds the event
counter row and the audit state row from the statement that takes them
until its commit, so the node's write rate is bounded by how long that is.
Before the pipelined commit the hold included two waits for this process
(the answer, then the interpreter: dozens of threads share it in a node)
and the audit append computed in Python; now the audit append runs in the
database and the last statements leave with the ``COMMIT`` in one round
trip (``node/storage/store.py``, ``intelshare/audit/append_v1.py``).

What runs, in this process: a node store (``node.storage.store.Store``, the node's
migrations, its audit log) on a fresh PostgreSQL database per measurement,
and N threads that each loop: some Python work outside the transaction (an
Ed25519 signature and a JSON encoding, about what a request does between
its writes), then one unit of work shaped like issuing an alert: an
``alert.issued`` event and two audit entries. **pipelined** is the node's
own ``Store.write``; **one by one** is the same transaction written here,
in the bench, as the node wrote it before (:func:`_one_by_one`): the event
statement, then the audit append computed in Python, then the ``COMMIT``,
each waiting for its answer. (The node has no switch for it: a bench mode
does not belong in production code.) The two alternate in rounds, so that
a drift of the machine hits both.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench import _harness as h

MODES = ("one_by_one", "pipelined")


def _measure(db_url: str, *, pipelined: bool, threads: int, seconds: float) -> dict[str, Any]:
    from intelshare import migrate
    from intelshare.audit.log import AuditLog
    from intelshare.db import make_engine
    from intelshare.ids import key_id
    from intelshare.keys import raw_public
    from intelshare.wakeup import WakeupHub
    from node.server import MIGRATIONS
    from node.storage.store import Store

    engine = make_engine(db_url, pool_size=threads + 2)
    migrate.upgrade(engine, MIGRATIONS)
    key = Ed25519PrivateKey.generate()
    audit = AuditLog(engine, "nl-customs", key, key_id(raw_public(key.public_key())))
    hub = WakeupHub(None)
    store = Store(engine, audit, hub)
    work_key = Ed25519PrivateKey.generate()
    latencies: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(threads + 1)
    stop_at = [0.0]

    def run(n: int) -> None:
        mine: list[float] = []
        i = 0
        start.wait()
        while time.monotonic() < stop_at[0]:
            work_key.sign(json.dumps({"writer": n, "i": i, "pad": "x" * 512}).encode())
            t0 = time.perf_counter()
            entries: list[tuple[str, dict[str, Any]]] = [
                ("alert_issued", {"alert_id": f"a-{n}-{i}", "officer_id": f"o-{n}"}),
                ("sealed", {"message_id": f"m-{n}-{i}", "kind": "ALERT"}),
            ]
            if pipelined:
                with store.write() as w:
                    w.event("alert.issued", alert_id=f"a-{n}-{i}")
                    for event, fields in entries:
                        w.audit(event, fields)
            else:
                _one_by_one(store, f"a-{n}-{i}", entries)
            mine.append(time.perf_counter() - t0)
            i += 1
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for t in workers:
        t.start()
    database = engine.url.database
    stop_at[0] = time.monotonic() + seconds
    server0 = _backends_cpu(database)
    cpu0 = time.process_time()
    start.wait()
    for t in workers:
        t.join()
    cpu = time.process_time() - cpu0
    server1 = _backends_cpu(database)
    server = sum(c - server0.get(pid, 0.0) for pid, c in server1.items())
    count = len(latencies)
    size = audit.size()
    verified = audit.verify(audit.public_key).entries_checked
    hub.close()
    engine.dispose()
    if size != 2 * count or verified != size or store.head_seq() != count:
        raise RuntimeError(f"{count} transactions left {size} audit entries ({verified} verified)")
    return {
        "transactions": count,
        "per_second": round(count / seconds, 1),
        "p50_ms": round(h.percentile(latencies, 50) * 1000, 2),
        "p99_ms": round(h.percentile(latencies, 99) * 1000, 2),
        "client_cpu_ms_per_tx": round(cpu * 1000 / max(1, count), 3),
        "server_cpu_ms_per_tx": round(server * 1000 / max(1, count), 3),
    }


def _one_by_one(store: Any, alert_id: str, entries: list[tuple[str, dict[str, Any]]]) -> None:
    """The unit of work as the node wrote it before its pipelined commit.

    The event statement (the counter and the event row, one statement) and
    its answer, then :meth:`AuditLog.append_many` (the append computed in
    Python), then ``COMMIT``: three waits while the counter and audit rows
    are locked. The baseline only; the node's own path is ``Store.write``.
    """
    import uuid

    from intelshare.db import Statement
    from node.storage.store import _pg_flush_statement, now_ms

    event = {
        "event_id": str(uuid.uuid4()),
        "type": "alert.issued",
        "alert_id": alert_id,
        "case_id": None,
        "agency_id": None,
        "entry_id": None,
        "record_id": None,
    }
    with store.engine.begin() as conn:
        sql, params = _pg_flush_statement([], [event], now_ms())
        if not Statement(postgresql=sql).execute(conn, params).rows:
            raise RuntimeError("the event counter is missing")
        store.audit.append_many(conn, entries)


def _backends_cpu(database: str | None) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend connected to ``database`` (Linux /proc).

    The backends of the store's pool live through a measurement (the pool
    keeps them), so the difference of two readings is the server's work for
    the transactions in between: parsing, executing, the audit function,
    commits; not the WAL writer's or the checkpointer's.
    """
    import psycopg

    with psycopg.connect(h.PG_ADMIN_URL, autocommit=True) as conn:
        pids = [
            int(r[0])
            for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (database,)
            ).fetchall()
        ]
    return {pid: h.cpu_seconds(pid) for pid in pids}


def run(
    *,
    quick: bool = False,
    threads: tuple[int, ...] = (4, 16),
    seconds: float = 5.0,
    rounds: int = 3,
) -> dict[str, Any]:
    if not h.pg_reachable():
        raise RuntimeError("this bench needs PostgreSQL on 127.0.0.1:5432")
    if quick:
        threads, seconds, rounds = (2,), 0.5, 1
    result: dict[str, Any] = {
        "benchmark": "node_writes",
        "quick": quick,
        "machine": h.machine(),
        "seconds": seconds,
        "rounds": rounds,
        "cases": [],
    }
    with tempfile.TemporaryDirectory(prefix="intelshare-node-writes-") as tmp:
        for n in threads:
            case: dict[str, Any] = {"threads": n, **{m: [] for m in MODES}}
            for _ in range(rounds):
                for mode in MODES:
                    with h.databases("postgresql", Path(tmp), ["node"]) as dbs:
                        case[mode].append(
                            _measure(
                                dbs["node"],
                                pipelined=mode == "pipelined",
                                threads=n,
                                seconds=seconds,
                            )
                        )
            for mode in MODES:
                runs = case[mode]
                case[f"{mode}_median_per_second"] = sorted(r["per_second"] for r in runs)[
                    len(runs) // 2
                ]
            case["ratio"] = h.ratio(
                case["pipelined_median_per_second"], case["one_by_one_median_per_second"]
            )
            result["cases"].append(case)
    return result


def report(result: dict[str, Any]) -> str:
    lines = [
        "## Node write transactions, pipelined against one by one (bench/node_writes.py)",
        "",
        "```",
        ".venv/bin/python -m bench.node_writes            # PostgreSQL, about two minutes",
        ".venv/bin/python -m bench.node_writes --quick    # smoke run, figures meaningless",
        "```",
        "",
        "N threads of one process commit units of work shaped like issuing an alert (an "
        "event and two audit entries, with an Ed25519 signature's worth of Python work "
        "between transactions) on a fresh PostgreSQL database per measurement. "
        "**one by one** is the node's write path until 2026-12-04, written in the bench: "
        "the event statement, the audit append computed in Python, then `COMMIT`, each "
        "waiting for its answer while the event counter and audit state rows stay locked. "
        "**pipelined** is the node's path now: the audit append computed by the "
        "database (`audit_append_v1`) and both statements sent with the `COMMIT` in "
        "one round trip. Rounds alternate the two; every run checks its audit log "
        f"(`verify`) and event count. {result['rounds']} rounds of "
        f"{result['seconds']:g} s per mode.",
        "",
        "| threads | mode | transactions/s (each round) | p50 ms | p99 ms "
        "| client CPU ms per transaction | server CPU ms per transaction |",
        "|---:|---|---|---|---|---|---|",
    ]
    for case in result["cases"]:
        for mode in MODES:
            runs = case[mode]
            cells = [
                ", ".join(format(r[k], "g") for r in runs)
                for k in (
                    "per_second",
                    "p50_ms",
                    "p99_ms",
                    "client_cpu_ms_per_tx",
                    "server_cpu_ms_per_tx",
                )
            ]
            lines.append(
                f"| {case['threads']} | {mode.replace('_', ' ')} | " + " | ".join(cells) + " |"
            )
    lines.append("")
    lines.append(
        "Median transactions per second, pipelined / one by one: "
        + "; ".join(f"{c['threads']} threads {c['ratio']:g}" for c in result["cases"])
        + "."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run, figures meaningless")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--threads", default="4,16", help="writer threads, comma-separated")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per mode")
    args = parser.parse_args(argv)
    result = run(
        quick=args.quick,
        threads=tuple(int(n) for n in args.threads.split(",") if n),
        seconds=args.seconds,
        rounds=args.rounds,
    )
    print(json.dumps(result, indent=2) if args.json else report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
