"""Memory: resident size of the gateway and of the nodes, idle and under load.

Run ``.venv/bin/python -m bench.memory`` (``--quick`` for a smoke run,
``--json`` for machine-readable output, ``--backend sqlite``, ``--rate``,
``--duration``).

Real processes, as operators run them: the gateway, the nodes of
nl-customs (A) and be-police (B), each node's Celery worker, a private
Redis, PostgreSQL. Resident size is ``VmRSS`` from ``/proc/<pid>/status``
(``VmHWM``, the high-water mark, beside it), read:

* **idle**: a few seconds after every process is ready;
* **under load**: sampled every 0.25 s while A's liaison officers issue
  alerts to B at a fixed rate (open loop, several officers at once) and
  B's analyst follows ``WatchAlerts``; the peak of the samples;
* **after**: a few seconds after the load stopped (what was not given back).

Baseline, measured in the same run: a bare gRPC server process built the
same way (this interpreter, ``intelshare.grpc_server.ManagedServer``, the
gateway's TLS credentials, health service only, no application code),
idle. Each figure is shown beside it as a ratio.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from typing import Any

from bench import _harness as h

A, B = "nl-customs", "be-police"
TREATY = "memory-bench"
RATE = 100.0
DURATION = 20.0


def serve_bare(cert: Path, key: Path, ca: Path, ready_file: Path) -> None:
    """An idle gRPC server with the gateway's credentials and nothing else."""
    from intelshare.grpc_server import ManagedServer

    server = ManagedServer(max_workers=64, service_names=["intelshare.bench.Bare"])
    h.serve_until_terminated(server, cert, key, ca, ready_file)


def _mib(kib: int) -> float:
    return round(kib / 1024, 1)


class Sampler:
    """Samples VmRSS of some processes every ``interval`` seconds in a thread."""

    def __init__(self, procs: dict[str, h.Proc], interval: float = 0.25) -> None:
        self.procs = procs
        self.peak: dict[str, int] = dict.fromkeys(procs, 0)
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _run(self, interval: float) -> None:
        while not self._stop.is_set():
            for name, p in self.procs.items():
                self.peak[name] = max(self.peak[name], p.tree_rss_kib())
            self.samples += 1
            self._stop.wait(interval)

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.peak


def _load(w: h.World, rate: float, duration: float) -> dict[str, Any]:
    """A issues to B at ``rate`` for ``duration``; B's analyst follows its feed."""
    arrived: set[str] = set()
    lock = threading.Lock()
    feed_client = w.client(B, "analyst")

    def follow() -> None:
        with suppress(Exception):
            for item in feed_client.watch(after_cursor=0):
                if item.HasField("event") and item.event.type == "alert.received":
                    with lock:
                        arrived.add(item.event.alert.removeprefix("alerts/"))

    feeder = threading.Thread(target=follow, daemon=True)
    feeder.start()
    clients = [w.client(A, "liaison") for _ in range(8)]
    issued: list[str] = []
    errors: list[str] = []

    def issue(n: int) -> None:
        try:
            created = clients[n % len(clients)].create_alert(h.demo_alert([(B, TREATY)], n=n))
        except Exception as exc:
            with lock:
                errors.append(type(exc).__name__)
            return
        with lock:
            issued.append(created.deliveries[0].message_id)

    count = max(1, int(rate * duration))
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=32) as pool:
        for n in range(count):
            delay = start + n / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(issue, n)
    offered = time.monotonic() - start
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with lock:
            if set(issued) <= arrived:
                break
        time.sleep(0.1)
    for c in clients:
        c.close()
    feed_client.close()
    feeder.join(timeout=5)
    with lock:
        return {
            "offered": count,
            "rate": rate,
            "seconds": round(offered, 1),
            "issued": len(issued),
            "arrived": len(set(issued) & arrived),
            "errors": len(errors),
        }


def run(
    *,
    quick: bool = False,
    backend: str | None = None,
    rate: float = RATE,
    duration: float = DURATION,
) -> dict[str, Any]:
    backend = h.pick_backend(backend, quick)
    settle = 3.0
    if quick:
        rate, duration, settle = 10.0, 1.0, 0.5
    report: dict[str, Any] = {
        "benchmark": "memory",
        "quick": quick,
        "backend": backend,
        "machine": h.machine(),
    }
    with h.world(backend, [A, B], [h.treaty(TREATY, [A, B])], prefix="intelshare-memory") as w:
        srv = w.fed.gateway_server_dir
        bare = h.spawn(
            "bare-grpc",
            [
                *("--serve-bare", "--cert", str(srv / "tls.crt"), "--key", str(srv / "tls.key")),
                *("--ca", str(w.fed.ca_file)),
            ],
            w.workdir,
            module="bench.memory",
        )
        w.procs.append(bare)
        w.start_nodes([A, B], worker=not quick)  # quick: no workers (seconds saved)
        procs = {"gateway": w.gateway, f"node {A}": w.nodes[A], f"node {B}": w.nodes[B]}
        procs.update({f"worker {a}": p for a, p in w.workers.items()})
        time.sleep(settle)
        idle = {name: p.tree_rss_kib() for name, p in procs.items()}
        tree = {name: p.tree_size() for name, p in procs.items()}
        bare_kib = bare.rss_kib()
        sampler = Sampler(procs)
        report["load"] = _load(w, rate, duration)
        peak = sampler.stop()
        report["load"]["samples"] = sampler.samples
        time.sleep(settle)
        after = {name: p.tree_rss_kib() for name, p in procs.items()}
        hwm = {name: p.status().get("VmHWM", 0) for name, p in procs.items()}
        threads = {name: p.status().get("Threads", 0) for name, p in procs.items()}
        report["loadavg_end"] = h.loadavg()
    report["baseline"] = {
        "name": "bare gRPC server (ManagedServer, TLS, health)",
        "rss_mib": _mib(bare_kib),
    }
    report["processes"] = {
        name: {
            "idle_mib": _mib(idle[name]),
            "load_peak_mib": _mib(peak[name]),
            "after_mib": _mib(after[name]),
            "hwm_mib": _mib(hwm[name]),
            "threads": threads[name],
            "processes": tree[name],
            "idle_ratio": h.ratio(idle[name], bare_kib),
            "load_ratio": h.ratio(peak[name], bare_kib),
        }
        for name in idle
    }
    return report


def format_table(result: dict[str, Any]) -> str:
    base = result["baseline"]["rss_mib"]
    lines = [
        "| process | idle MiB | under load, peak MiB | after load MiB | VmHWM MiB (main) "
        "| threads (main) | processes | idle / baseline | load / baseline |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| baseline: {result['baseline']['name']} | {base:g} | — | — | — | — | 1 | 1 | — |",
    ]
    for name, p in result["processes"].items():
        lines.append(
            f"| {name} | {p['idle_mib']:g} | {p['load_peak_mib']:g} | {p['after_mib']:g} "
            f"| {p['hwm_mib']:g} | {p['threads']} | {p['processes']} | {p['idle_ratio']:g} "
            f"| {p['load_ratio']:g} |"
        )
    ld = result["load"]
    lines += [
        "",
        f"Load: {ld['offered']} alerts offered at {ld['rate']:g}/s over {ld['seconds']:g} s, "
        f"{ld['issued']} issued, {ld['arrived']} arrived on the feed, {ld['errors']} errors; "
        f"{ld['samples']} samples.",
    ]
    return "\n".join(lines)


def report(result: dict[str, Any]) -> str:
    """The README section for a memory run."""
    return "\n".join(
        [
            "## Memory: resident size idle and under load (bench/memory.py)",
            "",
            "```",
            ".venv/bin/python -m bench.memory            # PostgreSQL, about a minute",
            ".venv/bin/python -m bench.memory --quick    # smoke run, figures meaningless",
            "```",
            "",
            "`VmRSS` of the real processes from `/proc/<pid>/status`: idle a few seconds "
            "after start, the peak of samples every 0.25 s while nl-customs issues alerts to "
            "be-police at a fixed rate (open loop) and be-police's analyst follows its feed, "
            "and a few seconds after. A process's figure includes its children (the "
            "worker command supervises a Celery child process; shared pages count in each). "
            "Baseline in the same run: a bare gRPC server process "
            "(`ManagedServer` with the gateway's TLS credentials and the health service, "
            f"no application code). Backend: {result['backend']}.",
            "",
            format_table(result),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run, figures meaningless")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default=None)
    parser.add_argument("--rate", type=float, default=RATE)
    parser.add_argument("--duration", type=float, default=DURATION)
    parser.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cert", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--key", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--ca", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--ready-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--log-level", default="WARNING", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_bare:
        serve_bare(args.cert, args.key, args.ca, args.ready_file)
        return 0
    result = run(quick=args.quick, backend=args.backend, rate=args.rate, duration=args.duration)
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
