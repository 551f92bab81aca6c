"""Database work per alert: the statements and transactions behind one alert.

Run ``.venv/bin/python -m bench.statements`` (``--quick`` for a smoke run,
``--json`` for machine-readable output, ``--rate``, ``--duration``).

Why a count and not a time: every alert's CPU (ours and PostgreSQL's) is
spread over a few dozen short statements, and their count does not move
with the machine or its neighbours the way milliseconds do. A change that
saves a round trip shows here exactly, on any machine; the latency bench
then says what it was worth there.

What runs: the latency bench's federation (``bench.latency.world``: a
gateway, the nodes nl-customs and be-police, their Celery workers, a
private Redis), but on a **private PostgreSQL server** this bench starts
(``initdb`` into a temporary folder, a free port) with the
``pg_stat_statements`` extension loaded, which the machine's shared server
does not have. After a warm-up the statistics are reset, liaison officers
at nl-customs issue alerts to be-police at a fixed rate, and once every
alert is on be-police's feed the statistics are read per database: every
statement the gateway, each node and its worker ran for those alerts (the
receipts back to the issuer included), ``COMMIT`` counted as a transaction,
and the server's execution time (not the protocol's or the client's).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from bench import _harness as h
from bench import latency

TOP = 12


def _pg_bindir() -> Path | None:
    found = shutil.which("pg_config")
    if found:
        with suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([found, "--bindir"], capture_output=True, text=True, timeout=10)
            path = Path(out.stdout.strip())
            if (path / "initdb").exists():
                return path
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    return None


@contextmanager
def private_postgres(workdir: Path) -> Iterator[str]:
    """A PostgreSQL server of our own with pg_stat_statements; yields its admin URL.

    PostgreSQL refuses to run as root: as root the server runs as the
    ``postgres`` user (``runuser``), in a folder that user owns.
    """
    bindir = _pg_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries (initdb) not found")
    data = workdir / "pgdata"
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(workdir, "postgres")
    port = latency.free_port()
    subprocess.run(
        [*as_user, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    # track=top: the statements the services send; a function's own
    # statements (the node's audit append) count in its call's time.
    options = (
        f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c max_connections=200 "
        "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=top "
        "-c pg_stat_statements.max=5000 -c pg_stat_statements.track_planning=on"
    )
    ctl = str(bindir / "pg_ctl")
    subprocess.run(
        [
            *as_user,
            ctl,
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(workdir / "pg.log"),
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    try:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
        yield url
    finally:
        subprocess.run(
            [*as_user, ctl, "-D", str(data), "-m", "fast", "-w", "stop"],
            capture_output=True,
            timeout=120,
            check=False,
        )


_READ = """
SELECT d.datname, s.calls, s.total_exec_time, s.rows,
       regexp_replace(s.query, '\\s+', ' ', 'g'), s.plans, s.total_plan_time
FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
"""


#: one statement's counts: database, calls, exec ms, rows, text, plans, plan ms
Stat = tuple[str, int, float, int, str, int, float]


def _statistics(url: str) -> list[Stat]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return [
            (str(db), int(calls), float(ms), int(rows), str(query), int(plans), float(plan_ms))
            for db, calls, ms, rows, query, plans, plan_ms in conn.execute(_READ).fetchall()
        ]


#: marks the bench's own queries, which the summary leaves out
_OURS = "/* bench.statements */"
_SETTLED = {
    "gateway": f"SELECT {_OURS} count(*) FROM gw_inbox",
    # receipts owed but not yet sealed (node.sharing.receipts) are work still to come
    "node": f"SELECT {_OURS} (SELECT count(*) FROM node_outbound WHERE state = 'pending') "
    "+ (SELECT count(*) FROM node_receipts_due) "
    "+ (SELECT count(*) FROM node_events WHERE notified_ms IS NULL)",
}


def _settle(databases: dict[str, str], timeout: float = 60.0) -> None:
    """Wait until every message is acknowledged, every answer recorded, every event confirmed.

    Then nothing the alerts started is still running, and the counts taken
    next belong to the alerts counted. Polled: the services are other processes.
    """
    import psycopg

    def left() -> int:
        n = 0
        for name, url in databases.items():
            query = _SETTLED["gateway" if name == "gateway" else "node"]
            with psycopg.connect(url, autocommit=True) as conn:
                n += int(conn.execute(query).fetchone()[0])  # type: ignore[index]
        return n

    h.wait_until(lambda: left() == 0, timeout, what="messages, receipts and events to settle")


def _reset(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")


def summarize(stats: list[Stat], names: dict[str, str], alerts: int) -> dict[str, Any]:
    """Per service: statements, transactions, rows, plans, execution and planning ms per alert.

    A statement psycopg has not prepared on its connection is planned at
    every execution (psycopg prepares after five uses on one connection, and
    forgets them all at a rollback): the plans per alert against the
    statements per alert say how often that happens, and what it costs.
    """
    per: dict[str, dict[str, Any]] = {}
    top: list[dict[str, Any]] = []
    for db, calls, ms, rows, query, plans, plan_ms in stats:
        service = names.get(db)
        if service is None or _OURS in query:
            continue  # the bench's own connections and queries
        s = per.setdefault(
            service,
            {
                "statements": 0,
                "transactions": 0,
                "rows": 0,
                "exec_ms": 0.0,
                "plans": 0,
                "plan_ms": 0.0,
            },
        )
        s["statements"] += calls
        s["rows"] += rows
        s["exec_ms"] += ms
        s["plans"] += plans
        s["plan_ms"] += plan_ms
        if query.strip().upper() == "COMMIT":
            s["transactions"] += calls
        top.append(
            {
                "service": service,
                "per_alert": round(calls / alerts, 2),
                "exec_us_each": round(ms * 1000 / max(1, calls), 1),
                "exec_ms_per_alert": round(ms / alerts, 3),
                "plans_per_alert": round(plans / alerts, 2),
                "plan_ms_per_alert": round(plan_ms / alerts, 3),
                "query": query[:140],
            }
        )
    n = max(1, alerts)
    services = {
        name: {
            "statements_per_alert": round(s["statements"] / n, 1),
            "transactions_per_alert": round(s["transactions"] / n, 1),
            "rows_per_alert": round(s["rows"] / n, 1),
            "exec_ms_per_alert": round(s["exec_ms"] / n, 3),
            "plans_per_alert": round(s["plans"] / n, 1),
            "plan_ms_per_alert": round(s["plan_ms"] / n, 3),
        }
        for name, s in sorted(per.items())
    }
    total = {
        key: round(sum(v[key] for v in services.values()), 3 if key.startswith("exec") else 1)
        for key in (
            "statements_per_alert",
            "transactions_per_alert",
            "exec_ms_per_alert",
            "plans_per_alert",
            "plan_ms_per_alert",
        )
    }
    top.sort(key=lambda r: -(r["exec_ms_per_alert"] + r["plan_ms_per_alert"]))
    return {"services": services, "total": total, "top": top[:TOP]}


def run(*, quick: bool = False, rate: float = 10.0, duration: float = 10.0) -> dict[str, Any]:
    if quick:
        rate, duration = 5.0, 1.0
    report: dict[str, Any] = {
        "benchmark": "statements",
        "quick": quick,
        "machine": latency.machine(),
        "rate": rate,
        "duration_s": duration,
    }
    with (
        tempfile.TemporaryDirectory(prefix="intelshare-statements-") as tmp,
        private_postgres(Path(tmp)) as admin,
    ):
        shared, latency.PG_ADMIN_URL = latency.PG_ADMIN_URL, admin
        try:
            with latency.world("postgresql") as w:
                names = {url.rsplit("/", 1)[1]: name for name, url in w.databases.items()}
                feed = latency.Feed(w.client(latency.B, w.tokens[latency.B]))
                try:
                    latency.run_rate(w, feed, rate, 1.0 if quick else 2.0)  # warm-up
                    _settle(w.databases)  # the warm-up's receipts and notifications
                    _reset(admin)
                    measured = latency.run_rate(w, feed, rate, duration)
                    _settle(w.databases)  # receipts back to nl-customs, notifications
                    stats = _statistics(admin)
                finally:
                    feed.close()
        finally:
            latency.PG_ADMIN_URL = shared
    report["alerts"] = measured["issued"]
    report["arrived"] = measured["arrived"]
    report.update(summarize(stats, names, measured["issued"]))
    return report


def format_table(r: dict[str, Any]) -> str:
    lines = [
        f"{r['alerts']} alerts at {r['rate']:g}/s ({r['arrived']} arrived); per alert:",
        "",
        "| database of | statements | transactions | rows | server exec ms | plans | plan ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in r["services"].items():
        label = name if name == "gateway" else f"{name} (node and its worker)"
        lines.append(
            f"| {label} | {s['statements_per_alert']:g} | {s['transactions_per_alert']:g} | "
            f"{s['rows_per_alert']:g} | {s['exec_ms_per_alert']:g} | "
            f"{s['plans_per_alert']:g} | {s['plan_ms_per_alert']:g} |"
        )
    t = r["total"]
    lines.append(
        f"| **all** | {t['statements_per_alert']:g} | {t['transactions_per_alert']:g} | | "
        f"{t['exec_ms_per_alert']:g} | {t['plans_per_alert']:g} | {t['plan_ms_per_alert']:g} |"
    )
    lines += [
        "",
        "Costliest statements (server execution and planning time per alert):",
        "",
        "| database of | per alert | µs each | ms per alert | plans | plan ms | statement |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for q in r["top"]:
        text = q["query"].replace("|", "\\|")
        lines.append(
            f"| {q['service']} | {q['per_alert']:g} | {q['exec_us_each']:g} | "
            f"{q['exec_ms_per_alert']:g} | {q['plans_per_alert']:g} | "
            f"{q['plan_ms_per_alert']:g} | `{text}` |"
        )
    return "\n".join(lines)


def report(r: dict[str, Any]) -> str:
    """This bench's section of bench/README.md."""
    if r.get("skipped"):
        return f"## Database work per alert (bench/statements.py)\n\nNot run: {r['skipped']}"
    return "\n".join(
        [
            "## Database work per alert (bench/statements.py)",
            "",
            "```",
            ".venv/bin/python -m bench.statements            # a private PostgreSQL, 10/s",
            ".venv/bin/python -m bench.statements --quick    # smoke run, figures meaningless",
            "```",
            "",
            "The latency bench's federation on a private PostgreSQL server with "
            "`pg_stat_statements`: every statement the gateway, each node and its worker "
            "run for an alert issued at nl-customs and stored at be-police (its receipt "
            "back to nl-customs and the notifications included), counted per database "
            "after a warm-up. Counts do not move with the machine the way times do, so a "
            "change that saves round trips shows here exactly; `COMMIT`s are the "
            "transactions; the execution time is the server's own (parse, protocol and "
            "the client's side are not in it).",
            "",
            format_table(r),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run, figures meaningless")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--rate", type=float, default=10.0, help="offered alerts per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds")
    args = parser.parse_args(argv)
    if _pg_bindir() is None:
        result: dict[str, Any] = {
            "benchmark": "statements",
            "quick": args.quick,
            "skipped": "PostgreSQL server binaries (initdb) not found",
        }
    else:
        result = run(quick=args.quick, rate=args.rate, duration=args.duration)
    print(json.dumps(result, indent=2) if args.json else report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
