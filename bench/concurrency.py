"""``CreateAlert`` latency under concurrent callers, beside the sequential figure.

Run ``.venv/bin/python -m bench.concurrency`` (``--quick`` for a smoke run,
``--json`` for machine-readable output, ``--backend sqlite`` or
``postgresql`` for one of them, ``--calls 200``, ``--concurrency 8,32``,
``--rounds``).

What runs, each in its own process as operators run them: a gateway, the
issuing node nl-customs and the receiving node be-police, one ``intelshare
worker`` per node, a private ``redis-server``, on SQLite files or on fresh
PostgreSQL databases of the machine's server. This process is the
officers: ``--calls`` ``CreateAlert`` calls at nl-customs (each a fresh
alert to be-police under one treaty), first one at a time, then by 8 and
by 32 concurrent callers (threads, each with its own channel), in the same
run on the same node. A call's latency is from its start until its answer.

Why: an independent client measured a sequential p99 of 27-38 ms and, with
8 concurrent callers on SQLite, a p99 of 0.54-1.1 s (issue 22, item 8).
Every call is one write transaction and SQLite has one writer at a time:
a writer that finds the database locked sleeps in SQLite's busy handler
(1, 2, 5, 10, ... up to 100 ms at a time) and tries again, while a writer
that arrives at the right moment takes the lock first, so a few unlucky
calls wait through many sleeps. The node now queues its writers in front
of SQLite (:class:`intelshare.db.WriterQueue`, taken by
:meth:`node.storage.store.Store.write`): they take the database in arrival
order and the next one starts the moment the previous commits.

On SQLite both paths run in the same run, alternating by round: **queued**
is the node as shipped; **busy retry** is the node with its writer queue
taken out (``bench/_unqueued_node.py`` starts it so, for this bench only),
the path before. On PostgreSQL writers wait on row locks in the server,
which serves them in order already; the node has no queue there and only
the shipped path runs.

The machine is shared: the load average before each measurement is in the
report, and figures from a loaded machine are worth only what it was.

Its figures are in the report of the last ``make bench`` (bench/README.md).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import _harness as h

A, B = "nl-customs", "be-police"
TREATY = "concurrency-bench"
QUEUED, BUSY_RETRY = "queued", "busy_retry"
#: module that starts a node without its writer queue (the path before)
UNQUEUED_NODE = "bench._unqueued_node"


def _variants(backend: str) -> tuple[str, ...]:
    return (BUSY_RETRY, QUEUED) if backend == "sqlite" else (QUEUED,)


def _start(w: h.World, variant: str) -> None:
    """nl-customs as ``variant`` (with its worker), be-police as shipped."""
    config = w.prepare(A)
    worker = h.spawn_worker(f"worker-{A}", config, w.workdir, wait=False)
    w.workers[A] = worker
    w.procs.append(worker)
    module = UNQUEUED_NODE if variant == BUSY_RETRY else "intelshare.cli"
    node = h.spawn(A, ["node", "serve", "--config", str(config)], w.workdir, module=module)
    w.nodes[A] = node
    w.procs.append(node)
    worker.wait_ready()
    w.start_node(B)


def _calls(
    w: h.World, callers: int, calls: int, first: int
) -> tuple[list[float], float, list[str]]:
    """``calls`` CreateAlert calls by ``callers`` threads: latencies (s), wall time, failures.

    A failed call is counted and its error kept (the caller goes on), so a
    path that fails under load shows as failures in the report.
    """
    clients = [w.client(A, "liaison") for _ in range(callers)]
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    next_call = [first]
    last = first + calls
    start = threading.Barrier(callers + 1)

    def caller(n: int) -> None:
        client = clients[n]
        mine: list[float] = []
        start.wait()
        while True:
            with lock:
                i = next_call[0]
                if i >= last:
                    break
                next_call[0] += 1
            alert = h.demo_alert([(B, TREATY)], n=i)
            t0 = time.perf_counter()
            try:
                client.create_alert(alert)
            except Exception as exc:  # counted and reported
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}"[:300])
                continue
            mine.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(callers)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    for c in clients:
        c.close()
    return latencies, wall, errors


def _stats(
    latencies: Sequence[float], wall: float, load: float, errors: Sequence[str]
) -> dict[str, Any]:
    if not latencies:
        raise RuntimeError(f"every call failed: {errors[0] if errors else '?'}")
    return {
        "calls": len(latencies),
        "failed": len(errors),
        "first_error": errors[0] if errors else "",
        "p50_ms": round(h.percentile(latencies, 50) * 1000, 1),
        "p99_ms": round(h.percentile(latencies, 99) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
        "wall_s": round(wall, 2),
        "calls_per_second": round(len(latencies) / wall, 1) if wall else 0.0,
        "loadavg_before": load,
    }


def _measure(
    backend: str, variant: str, calls: int, concurrency: Sequence[int], warmup: int
) -> dict[str, Any]:
    treaty = h.treaty(TREATY, [A, B])
    with h.world(backend, [A, B], [treaty], prefix="intelshare-concurrency") as w:
        _start(w, variant)
        done = failed = 0
        if warmup:
            _, _, lost = _calls(w, 1, warmup, done)
            done, failed = done + warmup, failed + len(lost)
        out: dict[str, Any] = {"backend": backend, "variant": variant, "by_concurrency": {}}
        for callers in (1, *concurrency):
            load = h.loadavg()
            latencies, wall, lost = _calls(w, callers, calls, done)
            done, failed = done + calls, failed + len(lost)
            out["by_concurrency"][str(callers)] = _stats(latencies, wall, load, lost)
        with w.client(A, "admin") as admin:
            issued = len(admin.list_all())
        # a call that failed on the client may still have committed (e.g. a timeout)
        if not done - failed <= issued <= done:
            raise RuntimeError(f"{done - failed} alerts answered but the node lists {issued}")
        out["alerts_issued"] = issued
        if failed:
            out["node_log_tail"] = _errors_in_log(w.nodes[A].log)
        return out


def _errors_in_log(log: Path) -> list[str]:
    """The node's last logged errors (why calls failed), for the report."""
    lines = log.read_text(errors="replace").splitlines()
    return [line[:500] for line in lines if "error" in line.lower()][-5:]


def run(
    *,
    quick: bool = False,
    backends: Sequence[str] | None = None,
    calls: int = 200,
    concurrency: Sequence[int] = (8, 32),
    rounds: int = 1,
) -> dict[str, Any]:
    if quick:
        calls, concurrency, rounds = 16, (4,), 1
    chosen = list(backends or (["sqlite", "postgresql"] if h.pg_reachable() else ["sqlite"]))
    if quick and backends is None:
        chosen = ["sqlite"]
    result: dict[str, Any] = {
        "benchmark": "concurrency",
        "quick": quick,
        "machine": h.machine(),
        "calls": calls,
        "concurrency": [1, *concurrency],
        "rounds": rounds,
        "runs": [],
    }
    for backend in chosen:
        for _ in range(rounds):
            for variant in _variants(backend):
                result["runs"].append(
                    _measure(backend, variant, calls, concurrency, warmup=5 if quick else 20)
                )
    return result


def _label(variant: str) -> str:
    return {QUEUED: "queued (as shipped)", BUSY_RETRY: "busy retry (before)"}[variant]


def report(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        "## CreateAlert under concurrent callers (bench/concurrency.py)",
        "",
        "```",
        ".venv/bin/python -m bench.concurrency            # SQLite and PostgreSQL",
        ".venv/bin/python -m bench.concurrency --quick    # smoke run, figures meaningless",
        "```",
        "",
        f"{result['calls']} `CreateAlert` calls per step at one node (gateway, two nodes, "
        "their workers and Redis in processes of their own), one at a time and then by "
        "N concurrent callers, in the same run. Latency from the call's start to its "
        f"answer. Machine: {m['cpu']}, {m['nproc']} cores, load average "
        f"{', '.join(format(x, 'g') for x in m['loadavg'])} at the start "
        "(shared with other work: the load before each step is in the table).",
        "",
        "| backend | writers | callers | p50 ms | p99 ms | max ms | calls/s | failed "
        "| load before |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    errors: list[str] = []
    for r in result["runs"]:
        for callers, s in r["by_concurrency"].items():
            lines.append(
                f"| {r['backend']} | {_label(r['variant'])} | {callers} | {s['p50_ms']:g} "
                f"| {s['p99_ms']:g} | {s['max_ms']:g} | {s['calls_per_second']:g} "
                f"| {s['failed']} | {s['loadavg_before']:g} |"
            )
            if s["failed"]:
                errors.append(
                    f"{r['backend']}, {_label(r['variant'])}, {callers} callers: "
                    f"{s['failed']} failed, first: {s['first_error']}"
                )
    if errors:
        lines += ["", "Failed calls:", "", *(f"* {e}" for e in errors)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run, figures meaningless")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--backend", choices=("sqlite", "postgresql"), help="one backend (default: both)"
    )
    parser.add_argument("--calls", type=int, default=200, help="calls per step")
    parser.add_argument(
        "--concurrency", default="8,32", help="concurrent callers after the sequential step"
    )
    parser.add_argument("--rounds", type=int, default=1, help="rounds (paths alternate)")
    args = parser.parse_args(argv)
    result = run(
        quick=args.quick,
        backends=[args.backend] if args.backend else None,
        calls=args.calls,
        concurrency=tuple(int(n) for n in args.concurrency.split(",") if n),
        rounds=args.rounds,
    )
    print(json.dumps(result, indent=2) if args.json else report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
