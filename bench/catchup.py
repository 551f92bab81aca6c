"""Catch-up: a node that was offline while 10,000 alerts were addressed to it comes back.

Run ``.venv/bin/python -m bench.catchup`` (``--quick`` for a smoke run,
``--json`` for machine-readable output, ``--backend sqlite``, ``--alerts N``).

Setup, each service its own process: the gateway, the node of
``be-police`` (B) with its Celery worker, a private Redis, PostgreSQL.
While B's node is down, 10,000 alerts from ``nl-customs`` (A) are sealed
and submitted **directly to the gateway as A** (mTLS with A's certificate,
A's signing key): the same envelopes A's node would produce (the design's
scenario alert, redacted by the treaty's allow-list, sealed with
:func:`intelshare.envelope.seal`), without running A's node, so that
generation time stays bounded and is not part of what is measured. Each
envelope is addressed to B and to ``de-customs`` (C).

Measured:

* **floor**: a bare client as C drains C's queue of the same 10,000
  envelopes: stream the inbox, verify and open each envelope (Ed25519,
  HPKE, AES-GCM), acknowledge each entry — what any recipient must do, with
  no storage and no notification;
* **catch-up**: B's node process starts (its worker already running) and
  resumes its inbox from its cursor. For every entry it verifies, opens
  and checks the treaty, and stores envelope, alert, event, audit entry and
  the receipt it owes A, in one transaction per inbox batch (up to 32
  entries), then acknowledges; receipts leave sealed one per 256 alerts
  (``node.sharing.receipts``); the outbox relay confirms each ``alert.received``
  event (or hands it to Celery when a webhook is enabled). Timed from the
  moment the process is started until all 10,000 are stored, and until all
  10,000 events are notified (``notified_ms`` set), by polling B's database.

Figures: alerts per second for each, and catch-up / floor as a ratio.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from bench import _harness as h
from intelshare.db import make_engine
from intelshare.directory import Anchor, verify_directory
from intelshare.envelope import HeaderFields, lookup_recipient_keys, open_envelope, seal
from intelshare.treaty import Treaty, redact
from intelshare.v1 import envelope_pb2
from node.schema import alert as rec
from node.storage import tables as t
from node.storage.store import canonical_bytes

A, B, C = "nl-customs", "be-police", "de-customs"
TREATY = "catchup-bench"
ALERTS = 10_000


def _seal_all(w: h.World, count: int) -> list[envelope_pb2.Envelope]:
    directory = verify_directory(
        w.fed.directory_file.read_bytes(), Anchor.load(w.fed.anchor_file), now=datetime.now(UTC)
    )
    treaty = Treaty.from_mapping(h.treaty(TREATY, [A, B, C]))
    keys = w.fed.agencies[A].keys
    recipient_keys = lookup_recipient_keys(directory, [B, C])
    out = []
    for n in range(count):
        alert = h.demo_alert([(B, TREATY), (C, TREATY)], n=n)
        view = redact(rec.alert_to_record(alert), treaty, "alert")
        now = datetime.now(UTC)
        fields = HeaderFields(
            sender=A,
            recipients=(B, C),
            treaty_id=TREATY,
            treaty_version=1,
            kind=envelope_pb2.MESSAGE_KIND_ALERT,
            handling=envelope_pb2.HANDLING_CODE_H1,
            tlp=envelope_pb2.TLP_AMBER,
            categories=("counterfeit_goods",),
            expire_time=now + timedelta(days=7),
            create_time=now,
        )
        out.append(
            seal(
                fields,
                canonical_bytes(view),
                signing_key=keys.signing,
                signing_key_id=keys.signing_key_id,
                recipient_keys=recipient_keys,
            )
        )
    return out


def _submit_all(w: h.World, envelopes: list[envelope_pb2.Envelope], threads: int = 4) -> float:
    clients = [w.gateway_client(A) for _ in range(threads)]
    try:
        start = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(
                pool.map(lambda i: clients[i % threads].submit(envelopes[i]), range(len(envelopes)))
            )
        return time.perf_counter() - start
    finally:
        for c in clients:
            c.close()


def floor(w: h.World, count: int) -> dict[str, Any]:
    """C drains its queue: stream, verify + open, acknowledge every entry."""
    directory = verify_directory(
        w.fed.directory_file.read_bytes(), Anchor.load(w.fed.anchor_file), now=datetime.now(UTC)
    )
    keys = w.fed.agencies[C].keys
    enc = {keys.encryption_key_id: keys.encryption}
    got = 0
    cpu0 = time.process_time()
    start = time.perf_counter()
    with w.gateway_client(C) as client:
        for item in client.stream_inbox(0):
            if item.WhichOneof("event") != "entry":
                continue
            entry = item.entry
            open_envelope(
                entry.envelope.SerializeToString(),
                directory,
                recipient=C,
                encryption_key=enc,
                now=datetime.now(UTC),
            )
            client.acknowledge(entry.sequence)
            got += 1
            if got == count:
                break
    seconds = time.perf_counter() - start
    return {
        "alerts": got,
        "seconds": round(seconds, 2),
        "per_second": round(got / seconds, 1),
        "client_cpu_ms_per_alert": round((time.process_time() - cpu0) / got * 1000, 3),
    }


def _counts(engine: Any) -> tuple[int, int]:
    with engine.connect() as conn:
        stored = conn.execute(
            select(func.count())
            .select_from(t.received)
            .where(t.received.c.kind == envelope_pb2.MESSAGE_KIND_ALERT)
        ).scalar_one()
        notified = conn.execute(
            select(func.count())
            .select_from(t.events)
            .where(t.events.c.type == "alert.received", t.events.c.notified_ms.is_not(None))
        ).scalar_one()
    return int(stored), int(notified)


def catch_up(w: h.World, count: int, timeout: float) -> dict[str, Any]:
    """Start B's node; time until every alert is stored, then notified."""
    engine = make_engine(w.dbs[B])
    samples: list[tuple[float, int, int]] = []
    try:
        start = time.perf_counter()
        cpu_before = 0.0
        node_box: dict[str, h.Proc] = {}
        ready: list[float] = []

        def launch() -> None:
            node_box["node"] = w.start_node(B, worker=False)
            # Taken here, not by the polling loop: a quick catch-up can end
            # (stored and notified) before the loop sees the node started.
            ready.append(time.perf_counter() - start)

        launcher = threading.Thread(target=launch, daemon=True)
        launcher.start()
        stored_at = notified_at = None
        deadline = start + timeout
        while time.perf_counter() < deadline:
            now = time.perf_counter() - start
            stored, notified = _counts(engine)
            samples.append((round(now, 2), stored, notified))
            if stored_at is None and stored >= count:
                stored_at = now
            if notified >= count:
                notified_at = now
                break
            time.sleep(0.2)
        launcher.join(timeout=60)
        ready_at = ready[0] if ready else None
        node = node_box.get("node")
        cpu = node.cpu_seconds() - cpu_before if node is not None else 0.0
        worker = w.workers.get(B)
        first = next((s[0] for s in samples if s[1] > 0), None)
        result: dict[str, Any] = {
            "alerts": count,
            "ready_s": round(ready_at, 2) if ready_at is not None else None,
            "first_stored_s": first,
            "stored_s": round(stored_at, 2) if stored_at is not None else None,
            "notified_s": round(notified_at, 2) if notified_at is not None else None,
            "node_cpu_ms_per_alert": round(cpu / count * 1000, 3),
            "worker_cpu_s": round(worker.cpu_seconds(), 1) if worker else None,
            "samples": samples[:: max(1, len(samples) // 40)],
        }
        if stored_at:
            result["stored_per_second"] = round(count / stored_at, 1)
        if notified_at:
            result["notified_per_second"] = round(count / notified_at, 1)
        if stored_at and first is not None and stored_at > first:
            result["steady_per_second"] = round(count / (stored_at - first), 1)
        return result
    finally:
        engine.dispose()


def profile_receiving(w: h.World, already: int, count: int, seconds: float) -> dict[str, Any]:
    """py-spy on B's node while it takes ``count`` more alerts from its inbox, live.

    py-spy cannot attach to a process that is already busy, so the profile
    is not of the catch-up itself but of the same per-entry path (inbox,
    verify, open, treaty, one transaction per batch, acknowledgement, owed receipt) on
    alerts submitted while the node is up.
    """
    engine = make_engine(w.dbs[B])
    started = time.perf_counter()
    try:  # first the receipts the catch-up queued for the sender: the node is busy until then
        h.wait_until(lambda: _pending(engine) == 0, 900, 1.0)
    except TimeoutError:
        pass
    finally:
        engine.dispose()
    drained = round(time.perf_counter() - started, 1)
    envelopes = _seal_all(w, count)
    node = w.nodes[B]
    prof = h.Profile(node.pid, seconds, w.workdir / "profile-catchup.txt")
    submitter = threading.Thread(target=_submit_all, args=(w, envelopes), daemon=True)
    submitter.start()
    engine = make_engine(w.dbs[B])
    try:
        h.wait_until(lambda: _counts(engine)[0] >= already + count, seconds + 60, 0.5)
    except TimeoutError:
        pass
    finally:
        engine.dispose()
    submitter.join(timeout=60)
    out = prof.result()
    out["alerts"] = count
    out["receipts_drained_after_s"] = drained
    return out


def _pending(engine: Any) -> int:
    """Envelopes the node still has to submit, receipts it owes but has not sealed included."""
    with engine.connect() as conn:
        queued = conn.execute(
            select(func.count()).select_from(t.outbound).where(t.outbound.c.state == "pending")
        ).scalar_one()
        owed = conn.execute(select(func.count()).select_from(t.receipts_due)).scalar_one()
    return int(queued) + int(owed)


def run(
    *,
    quick: bool = False,
    backend: str | None = None,
    alerts: int = ALERTS,
    profile: bool = True,
) -> dict[str, Any]:
    backend = h.pick_backend(backend, quick)
    if quick:
        alerts, profile = 20, False
    report: dict[str, Any] = {
        "benchmark": "catchup",
        "quick": quick,
        "backend": backend,
        "machine": h.machine(),
        "alerts": alerts,
    }
    with h.world(
        backend, [A, B, C], [h.treaty(TREATY, [A, B, C])], nodes=[B], prefix="intelshare-catchup"
    ) as w:
        w.prepare(B)
        # The worker starts while the alerts are generated; it is ready before the node starts.
        worker = h.spawn_worker(f"worker-{B}", w.configs[B], w.workdir, wait=False)
        w.workers[B] = worker
        w.procs.append(worker)
        t0 = time.perf_counter()
        envelopes = _seal_all(w, alerts)
        report["generation"] = {
            "how": "sealed as nl-customs and submitted directly to the gateway (4 channels)",
            "seal_seconds": round(time.perf_counter() - t0, 2),
            "envelope_bytes": envelopes[0].ByteSize(),
        }
        submit_s = _submit_all(w, envelopes)
        report["generation"]["submit_seconds"] = round(submit_s, 2)
        report["generation"]["submit_per_second"] = round(alerts / submit_s, 1)
        del envelopes
        report["loadavg_before"] = h.loadavg()
        report["floor"] = floor(w, alerts)
        worker.wait_ready()
        report["catchup"] = catch_up(w, alerts, timeout=120 if quick else 1800)
        report["loadavg_after"] = h.loadavg()
        rss = w.nodes[B].status() if B in w.nodes else {}
        report["catchup"]["node_peak_rss_mib"] = round(rss.get("VmHWM", 0) / 1024, 1)
        if profile:
            report["profile"] = profile_receiving(w, alerts, 1000, 30)
    c = report["catchup"]
    if c.get("stored_per_second"):
        report["ratio_stored"] = h.ratio(c["stored_per_second"], report["floor"]["per_second"])
    if c.get("notified_per_second"):
        report["ratio_notified"] = h.ratio(c["notified_per_second"], report["floor"]["per_second"])
    return report


def format_table(result: dict[str, Any]) -> str:
    f, c = result["floor"], result["catchup"]
    g = result["generation"]

    def fmt(v: Any, unit: str = "") -> str:
        return "—" if v is None else f"{v:g}{unit}"

    lines = [
        "| measurement | alerts | seconds | alerts/s | ratio to floor |",
        "|---|---:|---:|---:|---:|",
        f"| floor: bare client streams, opens, acknowledges | {f['alerts']:,} "
        f"| {f['seconds']:g} | {f['per_second']:g} | 1 |",
        f"| node: all stored (from process start) | {c['alerts']:,} | {fmt(c['stored_s'])} "
        f"| {fmt(c.get('stored_per_second'))} | {fmt(result.get('ratio_stored'))} |",
        f"| node: all notified (worker confirmed) | {c['alerts']:,} | {fmt(c['notified_s'])} "
        f"| {fmt(c.get('notified_per_second'))} | {fmt(result.get('ratio_notified'))} |",
        "",
        f"node ready (port open) after {fmt(c['ready_s'], ' s')}, first alert stored after "
        f"{fmt(c['first_stored_s'], ' s')}; steady rate between first and last stored "
        f"{fmt(c.get('steady_per_second'))} alerts/s; node CPU {c['node_cpu_ms_per_alert']:g} ms "
        f"per alert (floor client: {f['client_cpu_ms_per_alert']:g} ms); node peak RSS "
        f"{c.get('node_peak_rss_mib', 0):g} MiB. Generation (not timed in the figures): "
        f"sealing {g['seal_seconds']:g} s, submitting {g['submit_seconds']:g} s "
        f"({g['submit_per_second']:g}/s), {g['envelope_bytes']} B per envelope.",
    ]
    prof = result.get("profile")
    if prof:
        lines += [
            "",
            f"Where the node's time goes (py-spy on be-police's node while it takes "
            f"{prof.get('alerts', '?')} more alerts live, same per-entry path, once the "
            "receipts the catch-up queued for nl-customs had all been submitted"
            + (
                f", {prof['receipts_drained_after_s']:g} s after the catch-up): "
                if "receipts_drained_after_s" in prof
                else "): "
            )
            + h.profile_text(prof),
        ]
    return "\n".join(lines)


def report(result: dict[str, Any]) -> str:
    """The README section for a catch-up run."""
    return "\n".join(
        [
            "## Catch-up after being offline (bench/catchup.py)",
            "",
            "```",
            ".venv/bin/python -m bench.catchup            # PostgreSQL, 10,000 alerts",
            ".venv/bin/python -m bench.catchup --quick    # smoke run, figures meaningless",
            "```",
            "",
            f"While be-police's node is down, {result['alerts']:,} alerts from nl-customs "
            "are **sealed as nl-customs and submitted directly to the gateway** over "
            "nl-customs' mTLS identity — the envelopes nl-customs' node would produce "
            "(the scenario alert redacted by the treaty, `intelshare.envelope.seal`), "
            "without running that node, so generation stays bounded and outside the "
            "figures. Each is addressed to be-police and de-customs. The **floor** is a "
            "bare client as de-customs draining the same 10,000 from its queue: stream, "
            "verify and open, acknowledge each — no storage, no notification. Then "
            "be-police's node process starts (its Celery worker already up) and catches "
            "up: verify, open, treaty check, one transaction per inbox batch of up to 32 "
            "(per alert: envelope, alert, event, audit entry, the receipt owed to the "
            "sender), acknowledge; receipts leave sealed one per 256 alerts; the relay "
            "confirms each `alert.received` notification. Timed from process start "
            f"by polling its database. Backend: {result['backend']}; load average "
            f"{result['loadavg_before']} before, {result['loadavg_after']} after.",
            "",
            format_table(result),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run, figures meaningless")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default=None)
    parser.add_argument("--alerts", type=int, default=ALERTS)
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy phase")
    args = parser.parse_args(argv)
    result = run(
        quick=args.quick, backend=args.backend, alerts=args.alerts, profile=not args.no_profile
    )
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
