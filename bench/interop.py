"""Interop throughput: STIX export and TAXII paging, ours beside medallion on the same objects.

Run ``.venv/bin/python -m bench.interop`` (``--quick`` for a smoke run,
``--json`` for machine-readable output, ``--sizes 1000,10000``,
``--backend sqlite``). The TAXII peer needs the ``bench`` extra
(``medallion``); without it the peer's column says why.

For each size, nl-customs' node holds that many alerts (seeded by
:mod:`bench._seed`: half issued to be-police, half received from it under
the bench treaty, the scenario's alert: a person, a container, a company),
and three things are timed, one after the other, on the treaty's
collection (alerts: on a node they outnumber every other kind by far; the
other kinds go through the same engine and server code):

* **export**: ``intelshare alert export``'s work for every alert of the
  collection in this process: the alerts as read from the node
  (``ListAlerts``, timed apart), then one STIX 2.1 bundle built with the
  ``stix2`` library and serialized; objects per second of CPU time.
* **TAXII, ours**: ``intelshare taxii serve`` in its own process in front
  of the node, read by ``taxii2-client`` (``as_pages``, ``LIMIT`` objects
  per page) from the first request to the last page; objects per second of
  wall time. This includes the server's snapshot of the node's list and
  the STIX conversion of every alert.
* **TAXII, medallion**: the OASIS reference server (memory backend, Flask's
  threaded server, as its ``run`` script) loaded beforehand with exactly the
  objects our export produced, with their ``date_added``, read the same way
  (given ``--peer-budget`` seconds to load them and as many again to page
  through them; past either it is stopped and the report says where)
  (less our extension-definition, one object, which medallion 3.0 cannot
  hold: it reads every object's ``version`` property as a timestamp).

Both servers run as separate processes on the same two cores, paged by
the same client in this process, in the same run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

from bench import _harness as h
from bench._seed import seed
from intelshare.interop import ExportContext, export_alerts
from intelshare.treaty import Treaty

A, B = "nl-customs", "be-police"
TREATY = "interop-bench"
SIZES = (1_000, 100_000)
LIMIT = 1000
TAXII = "application/taxii+json;version=2.1"
PEER_ROOT = "peer"
PEER_COLLECTION = "4f3a2b1c-0d9e-4f8a-b7c6-d5e4f3a2b1c0"
PEER_USER, PEER_PASSWORD = "bench", "bench-secret"  # a local throwaway server
#: Longest the peer may take to load its data, and again to page through the
#: collection, before it is stopped and reported as such (never a hang).
PEER_BUDGET = 600.0


def peer_available() -> str | None:
    try:
        import medallion  # noqa: F401
        import taxii2client  # noqa: F401
    except Exception as exc:  # ImportError, or a broken install of either
        return f"{type(exc).__name__}: {exc} (install the bench extra: pip install -e '.[bench]')"
    return None


def _wait_http(
    url: str, proc: subprocess.Popen[bytes], log: Path, auth: Any = None, timeout: float = 60
) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: server exited: {log.read_text()[-2000:]}")
        with suppress(Exception):
            r = requests.get(url, auth=auth, headers={"Accept": TAXII}, timeout=2)
            if r.status_code in (200, 401):
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout:g} s")
        time.sleep(0.1)


def _page_all(collection: Any, progress: dict[str, Any] | None = None) -> dict[str, Any]:
    from taxii2client.v21 import as_pages

    progress = {} if progress is None else progress
    ids: list[str] = []
    pages = 0
    started = time.perf_counter()
    for envelope in as_pages(collection.get_objects, per_request=LIMIT):
        ids.extend(o["id"] for o in envelope.get("objects", []))
        pages += 1
        progress.update(objects=len(ids), pages=pages, seconds=time.perf_counter() - started)
    wall = time.perf_counter() - started
    return {
        "objects": len(ids),
        "unique": len(set(ids)),
        "pages": pages,
        "seconds": round(wall, 3),
        "objects_per_s": round(len(ids) / wall, 1) if wall else 0.0,
    }


def export_round(client: Any, ctx: ExportContext) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    started = time.perf_counter()
    alerts = client.list_all(treaty_id=TREATY)
    read_s = time.perf_counter() - started
    cpu = time.process_time()
    text = export_alerts(alerts, ctx).serialize()
    cpu_s = time.process_time() - cpu
    objects = json.loads(text)["objects"]
    return (
        {
            "alerts": len(alerts),
            "objects": len(objects),
            "read_seconds": round(read_s, 3),
            "cpu_seconds": round(cpu_s, 3),
            "objects_per_s": round(len(objects) / cpu_s, 1) if cpu_s else 0.0,
            "alerts_per_s": round(len(alerts) / cpu_s, 1) if cpu_s else 0.0,
        },
        objects,
    )


def ours_round(w: h.World, token: str) -> dict[str, Any]:
    from taxii2client.v21 import Server

    port = h.free_port()
    treaty_file = w.workdir / f"{TREATY}.treaty"
    treaty_file.write_bytes(w.fed.signed_treaty(TREATY).to_proto().SerializeToString())
    config = h.write_yaml(
        w.workdir / "taxii.yaml",
        "taxii",
        {
            "listen": f"127.0.0.1:{port}",
            "node": f"127.0.0.1:{w.nodes[A].port}",
            "ca": str(w.fed.ca_file),
            "agency_id": A,
            "treaties": [str(treaty_file)],
            "max_limit": LIMIT,
        },
    )
    p = h.spawn("taxii", ["taxii", "serve", "--config", str(config)], w.workdir, ready=False)
    try:
        _wait_http(f"http://127.0.0.1:{port}/taxii2/", p.proc, p.log)
        server = Server(f"http://127.0.0.1:{port}/taxii2/", user="bench", password=token)
        (collection,) = [c for c in server.api_roots[0].collections if c.alias == TREATY]
        out = _page_all(collection)
        out["server_rss_mib"] = round(_rss_kib(p.pid) / 1024, 1)
        return out
    finally:
        p.stop()


def _rss_kib(pid: int) -> int:
    with suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def peer_round(
    workdir: Path, objects: list[dict[str, Any]], budget: float = PEER_BUDGET
) -> dict[str, Any]:
    from taxii2client.v21 import Collection

    # medallion 3.0 reads any object's "version" property as a timestamp and
    # fails (500) on an extension-definition, whose "version" is "1.0.0": the
    # one object of ours it cannot hold is left out of its collection.
    objects = [o for o in objects if o["type"] != "extension-definition"]
    port = h.free_port()
    base = f"http://127.0.0.1:{port}"
    data = {
        "/discovery": {
            "title": "interop bench peer",
            "default": f"{base}/{PEER_ROOT}/",
            "api_roots": [f"{base}/{PEER_ROOT}/"],
        },
        PEER_ROOT: {
            "information": {
                "title": "peer",
                "versions": [TAXII],
                "max_content_length": 9765625,
            },
            "status": [],
            "collections": [
                {
                    "id": PEER_COLLECTION,
                    "title": "the same objects",
                    "can_read": True,
                    "can_write": False,
                    "media_types": ["application/stix+json;version=2.1"],
                    "objects": objects,
                    "manifest": [
                        {
                            "id": o["id"],
                            # date_added as ours serves it: when the version reached the node
                            "date_added": o.get("modified", o.get("created")),
                            "version": o.get("modified", o.get("created")),
                            "media_type": "application/stix+json;version=2.1",
                        }
                        for o in objects
                    ],
                }
            ],
        },
    }
    data_file = workdir / "peer-data.json"
    data_file.write_text(json.dumps(data))
    config = workdir / "peer-config.json"
    config.write_text(
        json.dumps(
            {
                "backend": {
                    "module": "medallion.backends.memory_backend",
                    "module_class": "MemoryBackend",
                    "filename": str(data_file),
                },
                "users": {PEER_USER: PEER_PASSWORD},
                "taxii": {"max_page_size": LIMIT},
            }
        )
    )
    log = workdir / "peer.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(  # fixed argv: this interpreter and the peer bench's module
            [
                *(sys.executable, "-m", "bench.taxii_peer", "--serve-medallion", str(config)),
                *("--port", str(port)),
            ],
            cwd=h.REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"{base}/{PEER_ROOT}/collections/{PEER_COLLECTION}/"
        started = time.perf_counter()
        # medallion loads its whole data file before it answers. Its discovery
        # is the probe: a collection request deep-copies every object, and
        # probes that time out would pile up in its threads.
        try:
            _wait_http(
                f"{base}/taxii2/", proc, log, auth=(PEER_USER, PEER_PASSWORD), timeout=budget
            )
        except RuntimeError as exc:
            return {
                "timed_out_s": budget,
                "stage": "load",
                "objects": 0,
                "pages": 0,
                "objects_per_s": 0.0,
                "server_rss_mib": round(_rss_kib(proc.pid) / 1024, 1),
                "error": str(exc)[:200],
            }
        load_s = round(time.perf_counter() - started, 1)
        # medallion's spec_version filter compares every object of the
        # collection with every other on each request without 'next'
        # (O(n^2)): past the budget the peer is stopped and reported as such.
        progress: dict[str, Any] = {}
        timer = threading.Timer(budget, proc.terminate)
        timer.start()
        try:
            result = _page_all(Collection(url, user=PEER_USER, password=PEER_PASSWORD), progress)
        except Exception as exc:
            if timer.is_alive():
                raise
            return {
                "timed_out_s": budget,
                "stage": "paging",
                "objects": progress.get("objects", 0),
                "pages": progress.get("pages", 0),
                "objects_per_s": 0.0,
                "server_rss_mib": 0.0,
                "load_seconds": load_s,
                "error": type(exc).__name__,
            }
        finally:
            timer.cancel()
        result["load_seconds"] = load_s
        result["server_rss_mib"] = round(_rss_kib(proc.pid) / 1024, 1)
        return result
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def run(
    *,
    quick: bool = False,
    backend: str | None = None,
    sizes: tuple[int, ...] = SIZES,
    peer_budget: float = PEER_BUDGET,
    out: Path | None = None,
) -> dict[str, Any]:
    """Measure every size; with ``out``, the report so far is written there after each."""
    backend = h.pick_backend(backend, quick)
    if quick:
        sizes = (10, 30)
    report: dict[str, Any] = {
        "benchmark": "interop",
        "quick": quick,
        "backend": backend,
        "machine": h.machine(),
        "sizes": list(sizes),
        "limit": LIMIT,
        "peer_budget_s": peer_budget,
        "results": [],
    }
    why = peer_available()
    report["peer_skipped"] = why
    treaty_doc = h.treaty(TREATY, [A, B])
    with h.world(backend, [A, B], [treaty_doc], nodes=[A], prefix="intelshare-interop") as w:
        treaty = Treaty.from_mapping(treaty_doc)
        w.prepare(A)
        alert = h.demo_alert([(B, TREATY)], days=300)
        ctx = ExportContext(holder_agency=A, onward_rules={TREATY: treaty.onward_sharing.value})
        stored = 0
        for size in sizes:
            started = time.perf_counter()
            seed(w.configs[A], w.fed, partner=B, alert=alert, count=size - stored)
            seeding = round(time.perf_counter() - started, 1)
            stored = size
            w.start_node(A, worker=False)
            try:
                with w.client(A, "analyst") as client:
                    exported, objects = export_round(client, ctx)
                ours = ours_round(w, w.tokens[A]["analyst"])
                peer = peer_round(w.workdir, objects, peer_budget) if why is None else None
            finally:
                w.stop_node(A)
            report["results"].append(
                {
                    "stored": size,
                    "seeding_s": seeding,
                    "export": exported,
                    "ours": ours,
                    "peer": peer,
                    "ratio": h.ratio(ours["objects_per_s"], peer["objects_per_s"])
                    if peer and peer["objects_per_s"]
                    else None,
                    "loadavg": h.loadavg(),
                }
            )
            if out is not None:
                out.write_text(json.dumps(report, indent=2))
    return report


def format_table(result: dict[str, Any]) -> str:
    lines = [
        "| stored alerts | STIX objects | export objects/s (CPU) | TAXII ours objects/s "
        "| TAXII medallion objects/s | ours / medallion | RSS ours / medallion MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["results"]:
        peer = r["peer"]
        lines.append(
            f"| {r['stored']:,} | {r['export']['objects']:,} | {r['export']['objects_per_s']:,} "
            f"| {r['ours']['objects_per_s']:,} "
            f"| {_peer_cell(peer)} "
            f"| {r['ratio'] if r['ratio'] is not None else '-'} "
            f"| {r['ours']['server_rss_mib']} / {peer['server_rss_mib'] if peer else '-'} |"
        )
    if result.get("peer_skipped"):
        lines += ["", f"medallion skipped: {result['peer_skipped']}"]
    return "\n".join(lines)


def _peer_cell(peer: dict[str, Any] | None) -> str:
    if peer is None:
        return "skipped"
    if peer.get("timed_out_s"):
        if peer.get("stage") == "load":
            return f"not loaded within {peer['timed_out_s']:g} s (stopped)"
        return (
            f"stopped after {peer['timed_out_s']:g} s ({peer['objects']:,} objects in "
            f"{peer['pages']} pages)"
        )
    return f"{peer['objects_per_s']:,}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smoke run, figures meaningless")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default=None)
    parser.add_argument(
        "--sizes",
        default=",".join(str(s) for s in SIZES),
        help="stored alerts, increasing, comma-separated (default %(default)s)",
    )
    parser.add_argument(
        "--peer-budget",
        type=float,
        default=PEER_BUDGET,
        help="seconds medallion may take to page a collection (default %(default)s)",
    )
    parser.add_argument("--out", type=Path, help="write the JSON report here after each size")
    args = parser.parse_args(argv)
    sizes = tuple(int(s) for s in args.sizes.split(","))
    result = run(
        quick=args.quick,
        backend=args.backend,
        sizes=sizes,
        peer_budget=args.peer_budget,
        out=args.out,
    )
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
