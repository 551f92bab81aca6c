"""Growth: officer calls on a node holding 1,000 alerts against one holding 100,000.

Run ``.venv/bin/python -m bench.growth`` (``--quick`` for a smoke run,
``--json`` for machine-readable output, ``--backend sqlite`` for the
embedded default instead of PostgreSQL).

Two node processes of two agencies run side by side on one gateway, each
with its Celery worker and the same private Redis: ``nl-customs`` holds
1,000 stored alerts, ``de-customs`` 100,000 (half received from
``be-police``, half issued to it, with everything a node keeps beside them:
envelopes, receipts, events, outbox rows, audit log). The databases are
filled before the nodes start by :mod:`bench._seed`, through the node's own
writers in this process, not by issuing 100,000 alerts through gRPC.

Timed through the officer API (gRPC over TLS, bearer token), one call at a
time, in alternating rounds (small node first, then large, then the other
way round) so that the machine's neighbours weigh on both sides alike:

* ``GetAlert`` of a received alert (an audited read) and of an issued one;
* ``ListAlerts``, first page (50, newest first) and a deep page (50, from a
  page token 90 % down the list: keyset pagination, no OFFSET);
* ``CreateAlert`` (issue to ``be-police``: treaty check, redaction, sealing,
  one transaction with view, delivery, outbox row, event and audit entry).

The figure is the ratio large / small of the median wall time of each
call; the target is at most 1.5 (flat: no linear scan). The node's own CPU
per call (``/proc``) is shown beside it; the database server's time is in
the wall time only.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from bench import _harness as h
from bench._seed import seed
from node.storage import tables as t

SMALL, LARGE, PARTNER = "nl-customs", "de-customs", "be-police"
TREATY = "growth-bench"
SIZES = (1_000, 100_000)
TARGET_RATIO = 1.5
DEEP = 0.9
OPERATIONS = ("get_received", "get_issued", "list_first", "list_deep", "issue")


def _sample_ids(db_url: str, direction: str, k: int) -> list[str]:
    from intelshare.db import make_engine

    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            ids = list(
                conn.execute(
                    select(t.alerts.c.alert_id).where(t.alerts.c.direction == direction)
                ).scalars()
            )
    finally:
        engine.dispose()
    return random.sample(ids, min(k, len(ids)))


def _deep_token(
    db_url: str, fraction: float, signing_secret: bytes
) -> tuple[str, int, tuple[int, str]]:
    """A ListAlerts page token ``fraction`` down the unfiltered list, its position and row key.

    Page tokens are sealed by the node (:mod:`intelshare.pagetokens`) with a
    key derived from its agency signing key and bound to the officer: the
    bench, holding the agency's keys as its operator does, seals one for its
    liaison officer instead of paging 90 % of the way down first.
    """
    from intelshare.db import make_engine
    from intelshare.pagetokens import PageTokens
    from node.kinds.alerts import ListFilter

    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            total = conn.execute(select(t.alerts.c.alert_id)).all()
            position = int(len(total) * fraction)
            row = conn.execute(
                select(t.alerts.c.create_ms, t.alerts.c.alert_id)
                .order_by(t.alerts.c.create_ms.desc(), t.alerts.c.alert_id.desc())
                .offset(position)
                .limit(1)
            ).one()
            officer_id = conn.execute(
                select(t.officers.c.officer_id).where(t.officers.c.name == "bench-liaison")
            ).scalar_one()
    finally:
        engine.dispose()
    key = (int(row.create_ms), str(row.alert_id))
    token = PageTokens(signing_secret).issue(
        listing="alerts",
        filters=ListFilter().fingerprint(),
        caller=officer_id,
        position=list(key),
    )
    return token, position, key


def explain_deep(db_url: str, after: tuple[int, str]) -> dict[str, Any]:
    """PostgreSQL's plan for the deep page as the node asks for it, and with a row comparison.

    The first query is the one ``node.kinds.alerts.Alerts.list_page`` builds for an
    unfiltered page after a token (``create_ms < c OR (create_ms = c AND
    alert_id < a)``); the second is the same page with the row-value
    comparison ``(create_ms, alert_id) < (c, a)`` that the listing index can
    answer as a range. Both are run with ``EXPLAIN (ANALYZE, BUFFERS)``.
    """
    from sqlalchemy import and_, or_, text, tuple_

    from intelshare.db import make_engine

    create_ms, last_id = after
    a = t.alerts
    order = (a.c.create_ms.desc(), a.c.alert_id.desc())
    as_built = (
        select(a)
        .where(
            or_(a.c.create_ms < create_ms, and_(a.c.create_ms == create_ms, a.c.alert_id < last_id))
        )
        .order_by(*order)
        .limit(51)
    )
    row_value = (
        select(a)
        .where(tuple_(a.c.create_ms, a.c.alert_id) < tuple_(create_ms, last_id))
        .order_by(*order)
        .limit(51)
    )
    engine = make_engine(db_url)
    plans = {}
    try:
        with engine.connect() as conn:
            for name, query in (("as_built", as_built), ("row_value", row_value)):
                sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
                rows = conn.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + sql)).scalars().all()
                plans[name] = [str(r) for r in rows]
    finally:
        engine.dispose()
    return plans


def run(
    *,
    quick: bool = False,
    backend: str | None = None,
    sizes: tuple[int, int] = SIZES,
    rounds: int = 7,
    calls: int = 25,
) -> dict[str, Any]:
    backend = h.pick_backend(backend, quick)
    if quick:
        sizes, rounds, calls = (20, 200), 1, 2
    report: dict[str, Any] = {
        "benchmark": "growth",
        "quick": quick,
        "backend": backend,
        "machine": h.machine(),
        "target_ratio": TARGET_RATIO,
        "sizes": list(sizes),
        "rounds": rounds,
        "calls_per_round": calls,
    }
    parties = [SMALL, LARGE, PARTNER]
    treaty_doc = h.treaty(TREATY, parties)
    with h.world(
        backend, parties, [treaty_doc], nodes=[SMALL, LARGE], prefix="intelshare-growth"
    ) as w:
        alert = h.demo_alert([(PARTNER, TREATY)], days=300)
        seeding = {}
        for agency, count in ((SMALL, sizes[0]), (LARGE, sizes[1])):
            config = w.prepare(agency)
            seeding[agency] = seed(config, w.fed, partner=PARTNER, alert=alert, count=count)
        report["seeding"] = seeding
        targets = {}
        for agency in (SMALL, LARGE):
            token, position, key = _deep_token(
                w.dbs[agency], DEEP, w.fed.agencies[agency].keys.signing.private_bytes_raw()
            )
            targets[agency] = {
                "received": _sample_ids(w.dbs[agency], "received", 200),
                "issued": _sample_ids(w.dbs[agency], "issued", 200),
                "deep_token": token,
                "deep_key": key,
                "deep_position": position,
            }
        w.start_nodes([SMALL, LARGE], worker=not quick)
        report["deep_positions"] = {a: targets[a]["deep_position"] for a in targets}
        report["results"] = measure(w, targets, rounds, calls)
        report["loadavg_end"] = h.loadavg()
        if backend == "postgresql":
            report["explain_deep"] = {
                a: explain_deep(w.dbs[a], targets[a]["deep_key"]) for a in (SMALL, LARGE)
            }
    report["worst_ratio"] = max(r["ratio"] for r in report["results"].values())
    return report


def measure(
    w: h.World, targets: dict[str, dict[str, Any]], rounds: int, calls: int
) -> dict[str, dict[str, Any]]:
    clients = {a: w.client(a, "liaison") for a in (SMALL, LARGE)}
    try:

        def op(name: str, agency: str) -> Callable[[], object]:
            c, tg = clients[agency], targets[agency]
            if name == "get_received":
                return lambda: c.get_alert(random.choice(tg["received"]))
            if name == "get_issued":
                return lambda: c.get_alert(random.choice(tg["issued"]))
            if name == "list_first":
                return lambda: c.list_alerts()
            if name == "list_deep":
                return lambda: c.list_alerts(page_token=tg["deep_token"])
            return lambda: c.create_alert(h.demo_alert([(PARTNER, TREATY)], days=30))

        # warm-up: connections, caches, the first page of each table
        for agency in (SMALL, LARGE):
            for name in OPERATIONS:
                op(name, agency)()
        node_of = {a: w.nodes[a] for a in (SMALL, LARGE)}
        results: dict[str, dict[str, Any]] = {}
        for name in OPERATIONS:
            walls: dict[str, list[float]] = {SMALL: [], LARGE: []}
            cpu: dict[str, float] = {SMALL: 0.0, LARGE: 0.0}
            loads = []
            for r in range(rounds):
                order = (SMALL, LARGE) if r % 2 == 0 else (LARGE, SMALL)
                for agency in order:
                    fn = op(name, agency)
                    before = node_of[agency].cpu_seconds()
                    for _ in range(calls):
                        start = time.perf_counter()
                        fn()
                        walls[agency].append(time.perf_counter() - start)
                    cpu[agency] += node_of[agency].cpu_seconds() - before
                loads.append(h.loadavg())
            n = rounds * calls
            p50 = {a: h.percentile(walls[a], 50) * 1000 for a in walls}
            p90 = {a: h.percentile(walls[a], 90) * 1000 for a in walls}
            results[name] = {
                "small_p50_ms": round(p50[SMALL], 2),
                "large_p50_ms": round(p50[LARGE], 2),
                "small_p90_ms": round(p90[SMALL], 2),
                "large_p90_ms": round(p90[LARGE], 2),
                "ratio": h.ratio(p50[LARGE], p50[SMALL]),
                "small_cpu_ms": round(cpu[SMALL] / n * 1000, 2),
                "large_cpu_ms": round(cpu[LARGE] / n * 1000, 2),
                "cpu_ratio": h.ratio(cpu[LARGE], cpu[SMALL]),
                "calls": n,
                "loadavg": max(loads),
            }
        return results
    finally:
        for c in clients.values():
            c.close()


LABELS = {
    "get_received": "GetAlert, a received alert (audited read)",
    "get_issued": "GetAlert, an issued alert",
    "list_first": "ListAlerts, first page of 50",
    "list_deep": "ListAlerts, page of 50 at 90 % depth (page token)",
    "issue": "CreateAlert (issue to one partner)",
}


def format_table(report: dict[str, Any]) -> str:
    small, large = report["sizes"]
    lines = [
        f"| call | p50 ms at {small:,} | p50 ms at {large:,} | ratio | target "
        f"| node CPU ms at {small:,} | at {large:,} | CPU ratio | met |",
        "|---|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    ordered = sorted(
        report["results"].items(),
        key=lambda kv: OPERATIONS.index(kv[0]) if kv[0] in OPERATIONS else len(OPERATIONS),
    )
    for name, r in ordered:
        met = "yes" if r["ratio"] <= report["target_ratio"] else "**no**"
        lines.append(
            f"| {LABELS.get(name, name)} | {r['small_p50_ms']:.2f} | {r['large_p50_ms']:.2f} "
            f"| {r['ratio']:.2f} | ≤ {report['target_ratio']} | {r['small_cpu_ms']:.2f} "
            f"| {r['large_cpu_ms']:.2f} | {r['cpu_ratio']:.2f} | {met} |"
        )
    return "\n".join(lines)


def report(result: dict[str, Any]) -> str:
    """The README section for a growth run."""
    small, large = result["sizes"]
    seeding = result.get("seeding", {})
    seeded = ", ".join(f"{v['alerts']:,} alerts in {v['seconds']:g} s" for v in seeding.values())
    worst = result["worst_ratio"]
    verdict = (
        f"**Target met**: the worst ratio is {worst:.2f} (≤ {result['target_ratio']})."
        if worst <= result["target_ratio"]
        else f"**Target missed**: the worst ratio is {worst:.2f}, "
        f"{(worst / result['target_ratio'] - 1) * 100:.0f} % over {result['target_ratio']}."
    )
    return "\n".join(
        [
            f"## Growth: {small:,} against {large:,} stored alerts (bench/growth.py)",
            "",
            "```",
            ".venv/bin/python -m bench.growth            # PostgreSQL, a few minutes",
            ".venv/bin/python -m bench.growth --backend sqlite",
            ".venv/bin/python -m bench.growth --quick    # smoke run, figures meaningless",
            "```",
            "",
            "Two node processes side by side on one gateway, each with its worker: "
            f"one holds {small:,} alerts, the other {large:,} (half received, half issued, "
            "with their envelopes, receipts, events, outbox rows and audit log). The "
            "databases are filled before the nodes start by `bench/_seed.py`, through "
            "the node's own writers (issue, and the inbound path for what the partner "
            f"sealed). Seeding: {seeded}.",
            "",
            f"Backend: {result['backend']}. Each call is timed one at a time through the "
            f"officer API, {result['rounds']} alternating rounds of "
            f"{result['calls_per_round']} calls per node (small first, then large, then "
            "the other way round); the ratio is large / small of the median. Node CPU is "
            "the node process's own time per call (the database server's is not in it).",
            "",
            format_table(result),
            "",
            verdict,
            *explain_text(result),
        ]
    )


def _plan_lines(lines: list[str]) -> list[str]:
    keep = ("Limit", "Scan", "Filter", "Rows Removed", "Index Cond", "Execution Time")
    return [ln.rstrip() for ln in lines if any(k in ln for k in keep)][:8]


def explain_text(result: dict[str, Any]) -> list[str]:
    plans = result.get("explain_deep", {}).get(LARGE)
    if not plans:
        return []
    return [
        "",
        f"PostgreSQL's plan for the deep page on the {result['sizes'][1]:,}-alert node, "
        "written the way `node/kinds/alerts.py` first built it "
        "(`create_ms < c OR (create_ms = c AND alert_id < a)`), and with the row comparison "
        "`(create_ms, alert_id) < (c, a)` that it uses now (EXPLAIN ANALYZE, same data, "
        "same run):",
        "",
        "```",
        "-- as built",
        *_plan_lines(plans["as_built"]),
        "-- row comparison",
        *_plan_lines(plans["row_value"]),
        "```",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run, figures meaningless")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default=None)
    parser.add_argument("--small", type=int, default=SIZES[0])
    parser.add_argument("--large", type=int, default=SIZES[1])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=25)
    args = parser.parse_args(argv)
    result = run(
        quick=args.quick,
        backend=args.backend,
        sizes=(args.small, args.large),
        rounds=args.rounds,
        calls=args.calls,
    )
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
