"""A peer: the OASIS TAXII 2.1 reference server against ours, on the same share-then-fetch cycle.

Run ``.venv/bin/python -m bench.taxii_peer`` (``--quick`` for a smoke run,
``--json`` for machine-readable output, ``--backend sqlite``). Needs the
``bench`` extra (``pip install -e '.[bench]'``: ``medallion``,
``taxii2-client``); without it the bench reports why it cannot run.

**The peer**: ``medallion`` (the OASIS TAXII 2.1 reference server) with its
memory backend, served by Flask's threaded server as ``medallion``'s own
``run`` script does (same app, same backend; only Werkzeug's per-request
access log is silenced, which is in the peer's favour), with
``taxii2-client``. One cycle: a producer ``POST``s one STIX 2.1 indicator
(about 1 KiB, the scenario's container of counterfeit medicines, TLP AMBER
marking) to a collection; a consumer ``GET``s that object by id.

**Ours**: gateway, two node processes with their Celery workers,
PostgreSQL, Redis. One cycle: a liaison officer at nl-customs issues the
scenario alert to be-police (``CreateAlert``: treaty check, field
redaction, sealing — Ed25519 signature, HPKE key wrap, AES-GCM — one
transaction with audit entry), the gateway admits it (signature and treaty
checked, stored, receipt signed), be-police's node takes it from its inbox
(verify, open, treaty check again, store, audit, receipt back), the
analyst's ``WatchAlerts`` stream says it arrived, and the analyst
``GetAlert``s it (an audited read).

Both run ``CONCURRENCY`` cycles at once (one thread per producer/consumer
pair, in this process) for a fixed time, in alternating rounds (peer, ours,
peer, ours), the best round of each kept; with 1,000 and then 10,000
objects already stored on the server side (the peer: a collection loaded
from a data file; ours: each node's database filled by
:mod:`bench._seed`).
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import threading
import time
import uuid
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bench import _harness as h
from bench._seed import seed
from intelshare.db import make_engine
from node.storage import tables as t

A, B = "nl-customs", "be-police"
TREATY = "taxii-peer-bench"
SIZES = (1_000, 10_000)
CONCURRENCY = 8
DURATION = 8.0
ROUNDS = 2
TARGET_RATIO = 5.0
API_ROOT = "trustgroup1"
COLLECTION = "91a7b528-80eb-42ed-a74d-c6fbd5a26116"
USER, PASSWORD = "bench", "bench-secret"  # a local throwaway server
TLP_AMBER = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"


def peer_available() -> str | None:
    """None when medallion and taxii2-client import; otherwise why not."""
    try:
        import medallion  # noqa: F401
        import taxii2client  # noqa: F401
    except Exception as exc:  # ImportError, or a broken install of either
        return f"{type(exc).__name__}: {exc} (install the bench extra: pip install -e '.[bench]')"
    return None


# --- the peer ------------------------------------------------------------------------------


def stix_indicator(n: int, at: datetime | None = None) -> dict[str, Any]:
    """A STIX 2.1 indicator carrying what the scenario alert carries (about 1 KiB)."""
    at = at or datetime.now(UTC)
    ts = at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--{uuid.uuid4()}",
        "created": ts,
        "modified": ts,
        "name": f"Counterfeit medicines container {n}",
        "description": (
            f"Bench alert {n}: container of counterfeit medicines expected at Rotterdam; "
            "consignee in Antwerp. Falsified packaging of a prescription anticoagulant, "
            "batch numbers copied from a genuine lot; shipped via Jebel Ali. Consignee "
            "Pharma Trading BV (BE); director Jan Jansen (NL). Source reliability B, "
            "information credibility 2."
        ),
        "indicator_types": ["malicious-activity"],
        "pattern": "[x-container:number = 'MSCU1234566' AND x-container:bill_of_lading = "
        "'MEDU1234567']",
        "pattern_type": "stix",
        "valid_from": ts,
        "valid_until": (at + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "labels": ["counterfeit_goods", "urgency:high", "handling:H1"],
        "object_marking_refs": [TLP_AMBER],
    }


def peer_data(count: int, port: int) -> dict[str, Any]:
    """A memory-backend data file: discovery, one API root, one collection of ``count``."""
    start = datetime.now(UTC) - timedelta(days=90)
    objects, manifest = [], []
    for n in range(count):
        at = start + timedelta(seconds=n * 7)
        obj = stix_indicator(n, at)
        objects.append(obj)
        manifest.append(
            {
                "id": obj["id"],
                "date_added": obj["created"],
                "version": obj["modified"],
                "media_type": "application/stix+json;version=2.1",
            }
        )
    base = f"http://127.0.0.1:{port}"
    return {
        "/discovery": {
            "title": "Bench TAXII server",
            "description": "medallion memory backend for the intelshare bench",
            "contact": "bench@localhost",
            "default": f"{base}/{API_ROOT}/",
            "api_roots": [f"{base}/{API_ROOT}/"],
        },
        API_ROOT: {
            "information": {
                "title": "Bench API root",
                "description": "one collection",
                "versions": ["application/taxii+json;version=2.1"],
                "max_content_length": 9765625,
            },
            "status": [],
            "collections": [
                {
                    "id": COLLECTION,
                    "title": "Alerts",
                    "description": "shared alerts",
                    "can_read": True,
                    "can_write": True,
                    "media_types": ["application/stix+json;version=2.1"],
                    "objects": objects,
                    "manifest": manifest,
                }
            ],
        },
    }


def serve_medallion(config: Path, port: int) -> None:
    """medallion's ``run`` script, less Werkzeug's access log (in the peer's favour)."""
    from medallion import application_instance, register_blueprints, set_config

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    configuration = json.loads(config.read_text())
    set_config(application_instance, "users", configuration)
    set_config(application_instance, "taxii", configuration)
    set_config(application_instance, "backend", configuration)
    register_blueprints(application_instance)
    application_instance.run(host="127.0.0.1", port=port, threaded=True)


def start_peer(workdir: Path, count: int) -> tuple[h.Proc, str]:
    import requests

    port = h.free_port()
    data = workdir / f"taxii-{count}.json"
    data.write_text(json.dumps(peer_data(count, port)))
    config = workdir / f"medallion-{count}.json"
    config.write_text(
        json.dumps(
            {
                "backend": {
                    "module": "medallion.backends.memory_backend",
                    "module_class": "MemoryBackend",
                    "filename": str(data),
                },
                "users": {USER: PASSWORD},
                "taxii": {"max_page_size": 100},
            }
        )
    )
    log = workdir / f"medallion-{count}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(  # fixed argv: this interpreter and this module
            [
                *(sys.executable, "-m", "bench.taxii_peer", "--serve-medallion", str(config)),
                *("--port", str(port)),
            ],
            cwd=h.REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    p = h.Proc(f"medallion-{count}", proc, log, port)
    url = f"http://127.0.0.1:{port}/{API_ROOT}/collections/{COLLECTION}/"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"medallion exited: {log.read_text()[-2000:]}")
        with suppress(Exception):
            r = requests.get(
                url,
                auth=(USER, PASSWORD),
                headers={"Accept": "application/taxii+json;version=2.1"},
                timeout=2,
            )
            if r.status_code == 200:
                return p, url
        if time.monotonic() > deadline:
            p.stop()
            raise RuntimeError("medallion did not answer within 60 s")
        time.sleep(0.1)


class _Loop:
    """``threads`` workers doing cycles until a deadline; cycles and latencies."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.errors: list[str] = []

    def run(self, workers: list[Any], seconds: float) -> dict[str, Any]:
        deadline = time.perf_counter() + seconds
        barrier = threading.Barrier(len(workers) + 1)

        def body(cycle: Any) -> None:
            barrier.wait()
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                try:
                    cycle()
                except Exception as exc:
                    with self.lock:
                        self.errors.append(f"{type(exc).__name__}: {exc}"[:200])
                    time.sleep(0.05)
                    continue
                with self.lock:
                    self.latencies.append(time.perf_counter() - start)

        threads = [threading.Thread(target=body, args=(wk,), daemon=True) for wk in workers]
        for th in threads:
            th.start()
        barrier.wait()
        start = time.perf_counter()
        for th in threads:
            th.join()
        elapsed = time.perf_counter() - start
        n = len(self.latencies)
        return {
            "cycles": n,
            "seconds": round(elapsed, 2),
            "per_second": round(n / elapsed, 1) if elapsed else 0.0,
            "p50_ms": round(h.percentile(self.latencies, 50) * 1000, 1),
            "p99_ms": round(h.percentile(self.latencies, 99) * 1000, 1),
            "errors": len(self.errors),
            "first_error": self.errors[0] if self.errors else "",
        }


def peer_round(url: str, concurrency: int, seconds: float) -> dict[str, Any]:
    from taxii2client.v21 import Collection

    pairs = []
    for _ in range(concurrency):
        producer = Collection(url, user=USER, password=PASSWORD)
        consumer = Collection(url, user=USER, password=PASSWORD)
        producer.refresh()  # collection information, once (can_read / can_write)
        consumer.refresh()
        pairs.append((producer, consumer))
    counter = iter(range(10**9))

    def make(producer: Any, consumer: Any) -> Any:
        def cycle() -> None:
            obj = stix_indicator(next(counter))
            status = producer.add_objects({"objects": [obj]})
            if status.success_count != 1:
                raise RuntimeError(f"peer refused the object: {status.status}")
            got = consumer.get_object(obj["id"])
            if got["objects"][0]["id"] != obj["id"]:
                raise RuntimeError("peer returned another object")

        return cycle

    try:
        return _Loop().run([make(p, c) for p, c in pairs], seconds)
    finally:
        for p, c in pairs:
            p.close()
            c.close()


# --- ours ----------------------------------------------------------------------------------


class Arrivals:
    """be-police's analyst following WatchAlerts: alert id → arrived."""

    def __init__(self, w: h.World, after: int) -> None:
        self.client = w.client(B, "analyst")
        self.arrived: set[str] = set()
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._follow, args=(after,), daemon=True)
        self.thread.start()

    def _follow(self, after: int) -> None:
        with suppress(Exception):
            for item in self.client.watch(after_cursor=after):
                if item.HasField("event") and item.event.type == "alert.received":
                    with self.cond:
                        self.arrived.add(item.event.alert.removeprefix("alerts/"))
                        self.cond.notify_all()

    def wait(self, alert_id: str, timeout: float = 30.0) -> None:
        with self.cond:
            if not self.cond.wait_for(lambda: alert_id in self.arrived, timeout):
                raise TimeoutError(f"alert {alert_id} did not arrive within {timeout:g}s")
            self.arrived.discard(alert_id)

    def close(self) -> None:
        self.client.close()
        self.thread.join(timeout=5)


def _event_head(db_url: str) -> int:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    select(t.counters.c.value).where(t.counters.c.name == "events")
                ).scalar_one()
            )
    finally:
        engine.dispose()


def ours_round(w: h.World, concurrency: int, seconds: float) -> dict[str, Any]:
    arrivals = Arrivals(w, _event_head(w.dbs[B]))
    pairs = [(w.client(A, "liaison"), w.client(B, "analyst")) for _ in range(concurrency)]
    counter = iter(range(10**9))

    def make(issuer: Any, analyst: Any) -> Any:
        def cycle() -> None:
            created = issuer.create_alert(h.demo_alert([(B, TREATY)], n=next(counter)))
            alert_id = created.deliveries[0].message_id
            arrivals.wait(alert_id)
            got = analyst.get_alert(alert_id)
            if got.description != created.description:
                raise RuntimeError("be-police holds another alert")

        return cycle

    try:
        return _Loop().run([make(a, b) for a, b in pairs], seconds)
    finally:
        for a, b in pairs:
            a.close()
            b.close()
        arrivals.close()


def profile_ours(w: h.World, concurrency: int, duration: float) -> dict[str, Any]:
    """One more round of ours, not counted, with py-spy on the gateway and both nodes."""
    targets = {"gateway": w.gateway, f"node {A}": w.nodes[A], f"node {B}": w.nodes[B]}
    profiles = {
        name: h.Profile(p.pid, duration + 1, w.workdir / f"profile-{p.pid}.txt")
        for name, p in targets.items()
    }
    cycles = ours_round(w, concurrency, duration)
    out: dict[str, Any] = {name: prof.result() for name, prof in profiles.items()}
    out["round"] = cycles
    return out


def cpu_per_cycle(w: h.World, concurrency: int, duration: float) -> dict[str, Any]:
    """One more round of ours, not counted: CPU of every process per cycle (ms)."""
    procs = {"gateway": w.gateway, **{f"node {a}": p for a, p in w.nodes.items()}}
    procs.update({f"worker {a}": p for a, p in w.workers.items()})

    def cpu(p: h.Proc) -> float:
        return h.cpu_seconds(p.pid) + sum(h.cpu_seconds(c) for c in h.descendants(p.pid))

    before = {name: cpu(p) for name, p in procs.items()}
    cycles = ours_round(w, concurrency, duration)
    n = max(cycles["cycles"], 1)
    per = {name: round((cpu(p) - before[name]) / n * 1000, 1) for name, p in procs.items()}
    return {"cycles": cycles["cycles"], "cpu_ms": per, "total_ms": round(sum(per.values()), 1)}


# --- the run -------------------------------------------------------------------------------


def _seed_both(w: h.World, count: int) -> dict[str, Any]:
    return {
        agency: seed(
            w.configs[agency],
            w.fed,
            partner=partner,
            alert=h.demo_alert([(partner, TREATY)], days=300),
            count=count,
        )
        for agency, partner in ((A, B), (B, A))
    }


def run(
    *,
    quick: bool = False,
    backend: str | None = None,
    sizes: tuple[int, int] = SIZES,
    concurrency: int = CONCURRENCY,
    duration: float = DURATION,
    rounds: int = ROUNDS,
    profile: bool = True,
) -> dict[str, Any]:
    backend = h.pick_backend(backend, quick)
    if quick:
        sizes, concurrency, duration, rounds, profile = (10, 20), 2, 0.5, 1, False
    report: dict[str, Any] = {
        "benchmark": "taxii_peer",
        "quick": quick,
        "backend": backend,
        "machine": h.machine(),
        "sizes": list(sizes),
        "concurrency": concurrency,
        "duration_s": duration,
        "rounds": rounds,
        "target_ratio": TARGET_RATIO,
        "results": [],
    }
    why = peer_available()
    if why is not None:
        report["skipped"] = why
        return report
    treaty_doc = h.treaty(TREATY, [A, B])
    with h.world(backend, [A, B], [treaty_doc], prefix="intelshare-taxii") as w:
        for agency in (A, B):
            w.prepare(agency)
        stored = 0
        for size in sizes:
            seeded = _seed_both(w, size - stored)
            stored = size
            w.start_nodes([A, B], worker=not quick)
            peer, url = start_peer(w.workdir, size)
            try:
                if not quick:  # warm-up of both: connections, caches, the first cycles
                    peer_round(url, 1, 1.0)
                    ours_round(w, 1, 2.0)
                peer_runs, our_runs = [], []
                for _ in range(rounds):
                    peer_runs.append(peer_round(url, concurrency, duration))
                    our_runs.append(ours_round(w, concurrency, duration))
                peer_rss = peer.rss_kib()
                if profile and size == sizes[0]:
                    report["cpu_per_cycle"] = cpu_per_cycle(w, concurrency, duration)
                    report["profile"] = profile_ours(w, concurrency, duration)
            finally:
                peer.stop()
            best_peer = max(peer_runs, key=lambda r: r["per_second"])
            best_ours = max(our_runs, key=lambda r: r["per_second"])
            report["results"].append(
                {
                    "stored": size,
                    "seeding": seeded,
                    "peer": best_peer,
                    "ours": best_ours,
                    "peer_rounds": [r["per_second"] for r in peer_runs],
                    "our_rounds": [r["per_second"] for r in our_runs],
                    "ratio": h.ratio(best_ours["per_second"], best_peer["per_second"]),
                    "peer_rss_mib": round(peer_rss / 1024, 1),
                    "loadavg": h.loadavg(),
                }
            )
            for agency in (A, B):
                w.stop_node(agency)
    first, last = report["results"][0], report["results"][-1]
    report["growth"] = {
        "peer": h.ratio(last["peer"]["per_second"], first["peer"]["per_second"]),
        "ours": h.ratio(last["ours"]["per_second"], first["ours"]["per_second"]),
    }
    return report


def format_table(result: dict[str, Any]) -> str:
    if result.get("skipped"):
        return f"skipped: {result['skipped']}"
    lines = [
        "| stored objects | peer cycles/s | peer p50 ms | ours cycles/s | ours p50 ms "
        "| ours / peer | target | met |",
        "|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for r in result["results"]:
        met = "yes" if r["ratio"] >= result["target_ratio"] else "**no**"
        lines.append(
            f"| {r['stored']:,} | {r['peer']['per_second']:g} | {r['peer']['p50_ms']:g} "
            f"| {r['ours']['per_second']:g} | {r['ours']['p50_ms']:g} | {r['ratio']:g} "
            f"| ≥ {result['target_ratio']:g} | {met} |"
        )
    g = result["growth"]
    small, large = result["sizes"]
    lines += [
        "",
        f"From {small:,} to {large:,} stored objects, cycles per second change by a factor "
        f"of {g['peer']:g} for the peer and {g['ours']:g} for ours (1 = flat). Rounds "
        "(cycles/s, peer / ours): "
        + "; ".join(
            f"{r['stored']:,}: {r['peer_rounds']} / {r['our_rounds']}" for r in result["results"]
        )
        + f". Peer process RSS: {', '.join(str(r['peer_rss_mib']) for r in result['results'])}"
        " MiB.",
    ]
    cpu = result.get("cpu_per_cycle")
    if cpu:
        lines += [
            "",
            f"CPU per cycle of ours (one more round, not counted, {cpu['cycles']} cycles; "
            "application processes only, PostgreSQL and Redis not included): "
            + ", ".join(f"{k} {v:g} ms" for k, v in cpu["cpu_ms"].items())
            + f"; total {cpu['total_ms']:g} ms.",
        ]
    prof = result.get("profile")
    if prof:
        lines += [
            "",
            f"Where our cycle's time goes: py-spy on each process during one more round "
            f"(not counted; {prof['round']['per_second']:g} cycles/s under the profiler), "
            f"{result['sizes'][0]:,} stored:",
            "",
        ]
        lines += [
            f"- **{name}**: {h.profile_text(p, 5)}" for name, p in prof.items() if name != "round"
        ]
    return "\n".join(lines)


def report(result: dict[str, Any]) -> str:
    """The README section for a peer run."""
    return "\n".join(
        [
            "## A peer: the OASIS TAXII 2.1 reference server (bench/taxii_peer.py)",
            "",
            "```",
            ".venv/bin/pip install -e '.[bench]'          # medallion, taxii2-client",
            ".venv/bin/python -m bench.taxii_peer         # PostgreSQL, a few minutes",
            ".venv/bin/python -m bench.taxii_peer --quick # smoke run, figures meaningless",
            "```",
            "",
            "The same share-then-fetch cycle on both, in the same run, on this machine. "
            "**Peer**: `medallion` (memory backend) served by Flask's threaded server as "
            "its `run` script does (its per-request access log silenced, in its favour), "
            "with `taxii2-client`: a producer POSTs one STIX 2.1 indicator (about 1 KiB: "
            "the scenario's container, TLP AMBER marking), a consumer GETs it by id. "
            "**Ours**: a liaison officer at nl-customs issues the scenario alert to "
            "be-police (treaty check, redaction, Ed25519 signature, HPKE, AES-GCM, one "
            "audited transaction), the gateway admits it (signature, treaty, signed "
            "receipt), be-police's node verifies, opens, checks and stores it, its "
            "analyst's `WatchAlerts` says it arrived, and the analyst `GetAlert`s it "
            "(an audited read) — with PostgreSQL, Redis and each node's Celery worker "
            f"running. {result['concurrency']} cycles in flight on each side (one thread "
            f"per producer/consumer pair), {result['duration_s']:g} s per round, "
            f"alternating rounds (peer, ours) x {result['rounds']}, best round of each. "
            "Stored objects are loaded beforehand: the peer's collection from a data file, "
            "our two nodes' databases by `bench/_seed.py`. Backend: "
            f"{result['backend']}.",
            "",
            format_table(result),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run, figures meaningless")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default=None)
    parser.add_argument(
        "--sizes",
        default=",".join(str(n) for n in SIZES),
        help="stored objects, smaller then larger (default %(default)s)",
    )
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    parser.add_argument("--duration", type=float, default=DURATION)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy round")
    parser.add_argument("--serve-medallion", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_medallion:
        serve_medallion(args.serve_medallion, args.port)
        return 0
    small, large = (int(n) for n in args.sizes.split(","))
    result = run(
        quick=args.quick,
        backend=args.backend,
        sizes=(small, large),
        concurrency=args.concurrency,
        duration=args.duration,
        rounds=args.rounds,
        profile=not args.no_profile,
    )
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
