"""Fan-out: one case entry to a joint task force of 20 agencies; time to the last member.

Run ``.venv/bin/python -m bench.fanout`` (``--quick`` for a smoke run,
``--json`` for machine-readable output, ``--backend sqlite``,
``--members N``, ``--entries N``).

Twenty node processes (and as many Celery workers) would need far more
than this two-core machine; so the gateway runs in its own process and the
**20 nodes run together in one second process** (``node.server.start``
twenty times, each with its own database, TLS port, inbox stream, sender,
officer API), with the Celery notification relay off: the path measured
does not use Celery (inbox → one transaction → in-process wake-up → the
officer's ``WatchCase`` stream), and twenty relays with their workers would
only add load. The twenty nodes share one interpreter and its GIL, so the
figure is pessimistic against twenty machines: the nineteen members' work
is serialized on (at most) two cores here.

Measured: the owner opens a case with the 19 others as members; this
process follows ``WatchCase`` on each member's node (one stream per member,
an officer of that agency). For each entry: from the moment the owner's
officer calls ``AddCaseEntry`` (seal once for 19 recipients, one
transaction) until the ``case.entry_added`` event for that entry arrived on
each member's stream (gateway admission and 19 queue entries, 19 inbox
streams, 19 verify/open/treaty checks and transactions, 19 feed wake-ups).
Reported: time to the first, the median and the **last** member.

Floor, in the same run after the nodes stopped: the same fan-out at the
gateway with bare clients — the owner's identity seals one ``CASE_ENTRY``
envelope for the 19 and submits it; 19 bare inbox streams (one per member
identity, in this process) receive and open it. Time to the last member
opened; the ratio is nodes / floor.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Sequence
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bench import _harness as h
from intelshare.db import make_engine
from intelshare.directory import Anchor, verify_directory
from intelshare.envelope import HeaderFields, lookup_recipient_keys, open_envelope, seal
from intelshare.ids import new_message_id
from intelshare.v1 import case_pb2, envelope_pb2
from node.storage import tables as t
from node.storage.store import canonical_bytes

TREATY = "taskforce-bench"
MEMBERS = 20
ENTRIES = 15
ENTRY_FIELDS = (
    "text",
    "subjects.persons.name",
    "subjects.persons.nationality",
    "subjects.companies",
    "subjects.containers",
    "attachments_digest",
)


def agencies(n: int) -> list[str]:
    return [f"agency-{i:02d}" for i in range(n)]


def taskforce_treaty(parties: Sequence[str]) -> dict[str, Any]:
    return h.treaty(
        TREATY,
        parties,
        kinds=("case_entry", "case_membership"),
        fields={"case_entry": ENTRY_FIELDS, "case_membership": ("title",)},
    )


def entry(n: int) -> case_pb2.CaseEntry:
    e = case_pb2.CaseEntry(
        text=f"Entry {n}: consignment split over two containers, second booked via Antwerp; "
        "payment traced to a shell company in Cyprus.",
        attachments_digest="sha256:" + "ab" * 32,
    )
    e.subjects.persons.add(name="Jan Jansen", nationality="NL", date_of_birth="1980-02-29")
    e.subjects.containers.add(number="MSCU1234566")
    e.subjects.companies.add(name="Pharma Trading BV", country="BE", role="consignee")
    return e


# --- the process hosting every node ----------------------------------------------------------


def host(spec_file: Path, ready_file: Path) -> None:
    """Start every node of ``spec_file`` in this process; write their ports; wait for SIGTERM."""
    import node.server as node_server
    from intelshare.logs import configure_logging
    from node.config import load_config

    configure_logging("WARNING")
    # No notification relay (see the module docstring): as tests/node/conftest.py does.
    node_server.start_notifier = lambda config, store: None  # type: ignore[assignment]
    spec = json.loads(spec_file.read_text())
    running = {}
    for agency, config in spec["configs"].items():
        running[agency] = node_server.start(load_config(Path(config)))
    ports = {a: n.port for a, n in running.items()}
    spec_file.with_suffix(".ports.json").write_text(json.dumps(ports))
    ready_file.write_text("1")
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    for n in running.values():
        with suppress(Exception):
            n.stop(grace=0.5)


# --- measuring -------------------------------------------------------------------------------


class Feeds:
    """One WatchCase stream per member; arrival time of each entry id per member."""

    def __init__(self, w: h.World, members: Sequence[str]) -> None:
        self.arrived: dict[str, dict[str, float]] = {}
        self.cases: dict[str, float] = {}
        self.cond = threading.Condition()
        self.clients = {m: w.client(m, "admin") for m in members}
        self.threads = [
            threading.Thread(target=self._follow, args=(m,), daemon=True) for m in members
        ]
        for th in self.threads:
            th.start()

    def _follow(self, member: str) -> None:
        with suppress(Exception):
            for item in self.clients[member].watch_case(after_cursor=0):
                if not item.HasField("event"):
                    continue
                now = time.perf_counter()
                ev = item.event
                with self.cond:
                    if ev.type == "case.entry_added" and ev.entry:
                        entry_id = ev.entry.rsplit("/", 1)[-1]
                        self.arrived.setdefault(entry_id, {})[member] = now
                    elif ev.type == "case.received":
                        self.cases[member] = now
                    self.cond.notify_all()

    def wait(self, predicate: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
            return True

    def close(self) -> None:
        for c in self.clients.values():
            c.close()
        for th in self.threads:
            th.join(timeout=5)


def _summary(values_ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(h.percentile(values_ms, 50), 1),
        "max_ms": round(max(values_ms), 1) if values_ms else float("nan"),
        "min_ms": round(min(values_ms), 1) if values_ms else float("nan"),
    }


def nodes_fanout(
    w: h.World, owner: str, members: list[str], entries: int, timeout: float
) -> dict[str, Any]:
    feeds = Feeds(w, members)
    try:
        with w.client(owner, "liaison") as c:
            case = c.create_case(
                case_pb2.Case(
                    title="Operation bench: counterfeit medicines, 20 agencies",
                    treaty_id=TREATY,
                    categories=["counterfeit_goods"],
                    handling=envelope_pb2.HANDLING_CODE_H1,
                    tlp=envelope_pb2.TLP_AMBER,
                    members=[case_pb2.CaseMember(agency_id=m) for m in members],
                )
            )
            if not feeds.wait(lambda: len(feeds.cases) == len(members), timeout):
                raise RuntimeError(f"case reached only {sorted(feeds.cases)}")
            c.add_entry(case.name, entry(-1))  # warm-up: every path once
            first, median, last, call = [], [], [], []
            for n in range(entries):
                time.sleep(0.3)
                start = time.perf_counter()
                written = c.add_entry(case.name, entry(n))
                answered = time.perf_counter()
                entry_id = written.name.rsplit("/", 1)[-1]
                ok = feeds.wait(
                    lambda e=entry_id: len(feeds.arrived.get(e, {})) == len(members), timeout
                )
                if not ok:
                    got = sorted(feeds.arrived.get(entry_id, {}))
                    raise RuntimeError(f"entry {n} reached only {len(got)} members: {got}")
                times = sorted((v - start) * 1000 for v in feeds.arrived[entry_id].values())
                first.append(times[0])
                median.append(h.percentile(times, 50))
                last.append(times[-1])
                call.append((answered - start) * 1000)
        return {
            "entries": entries,
            "recipients": len(members),
            "add_entry_call": _summary(call),
            "first_member": _summary(first),
            "median_member": _summary(median),
            "last_member": _summary(last),
        }
    finally:
        feeds.close()


def floor_fanout(
    w: h.World, owner: str, members: list[str], cursors: dict[str, int], rounds: int
) -> dict[str, Any]:
    """Seal + submit one 19-recipient envelope; 19 bare inbox streams receive and open it."""
    directory = verify_directory(
        w.fed.directory_file.read_bytes(), Anchor.load(w.fed.anchor_file), now=datetime.now(UTC)
    )
    arrived: dict[str, dict[str, float]] = {}
    cond = threading.Condition()
    clients = {m: w.gateway_client(m) for m in members}

    def follow(member: str) -> None:
        keys = w.fed.agencies[member].keys
        enc = {keys.encryption_key_id: keys.encryption}
        with suppress(Exception):
            for item in clients[member].stream_inbox(cursors.get(member, 0)):
                if item.WhichOneof("event") != "entry":
                    continue
                opened = open_envelope(
                    item.entry.envelope.SerializeToString(),
                    directory,
                    recipient=member,
                    encryption_key=enc,
                    now=datetime.now(UTC),
                )
                now = time.perf_counter()
                with cond:
                    arrived.setdefault(opened.header.message_id, {})[member] = now
                    cond.notify_all()

    threads = [threading.Thread(target=follow, args=(m,), daemon=True) for m in members]
    for th in threads:
        th.start()
    keys = w.fed.agencies[owner].keys
    recipient_keys = lookup_recipient_keys(directory, members)
    case_id = new_message_id()
    last: list[float] = []
    first: list[float] = []
    try:
        with w.gateway_client(owner) as sender:
            for n in range(rounds + 1):
                time.sleep(0.3)
                start = time.perf_counter()
                now = datetime.now(UTC)
                payload = canonical_bytes(
                    {"text": entry(n).text, "attachments_digest": "sha256:" + "ab" * 32}
                )
                env = seal(
                    HeaderFields(
                        sender=owner,
                        recipients=tuple(members),
                        treaty_id=TREATY,
                        treaty_version=1,
                        kind=envelope_pb2.MESSAGE_KIND_CASE_ENTRY,
                        handling=envelope_pb2.HANDLING_CODE_H1,
                        tlp=envelope_pb2.TLP_AMBER,
                        categories=("counterfeit_goods",),
                        expire_time=now + timedelta(days=30),
                        create_time=now,
                        case_id=case_id,
                    ),
                    payload,
                    signing_key=keys.signing,
                    signing_key_id=keys.signing_key_id,
                    recipient_keys=recipient_keys,
                )
                message_id = envelope_pb2.Header.FromString(env.header_bytes).message_id
                sender.submit(env)
                with cond:
                    ok = cond.wait_for(
                        lambda m=message_id: len(arrived.get(m, {})) == len(members), 60
                    )
                if not ok:
                    raise RuntimeError("floor fan-out did not reach every member")
                if n == 0:
                    continue  # warm-up
                times = sorted((v - start) * 1000 for v in arrived[message_id].values())
                first.append(times[0])
                last.append(times[-1])
    finally:
        for c in clients.values():
            c.close()
        for th in threads:
            th.join(timeout=5)
    return {
        "rounds": rounds,
        "recipients": len(members),
        "first_member": _summary(first),
        "last_member": _summary(last),
    }


def _inbox_cursor(db_url: str) -> int:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(t.inbox.c.sequence)).scalar_one())
    finally:
        engine.dispose()


def run(
    *,
    quick: bool = False,
    backend: str | None = None,
    members: int = MEMBERS,
    entries: int = ENTRIES,
) -> dict[str, Any]:
    # SQLite unless asked: twenty nodes' connection pools would take most of the shared
    # PostgreSQL server's 100 connections away from everyone else on this machine.
    backend = backend or "sqlite"
    if quick:
        members, entries = 3, 2
    ids = agencies(members)
    owner, others = ids[0], ids[1:]
    report: dict[str, Any] = {
        "benchmark": "fanout",
        "quick": quick,
        "backend": backend,
        "machine": h.machine(),
        "agencies": members,
    }
    with h.world(backend, ids, [taskforce_treaty(ids)], prefix="intelshare-fanout") as w:
        started = time.perf_counter()
        configs = {}
        for agency in ids:
            configs[agency] = str(
                w.prepare(
                    agency,
                    redis_url=None,
                    max_workers=8,
                    heartbeat_seconds=15.0,
                    send_backoff_max_seconds=2.0,
                    inbox_backoff_max_seconds=2.0,
                )
            )
        spec = w.workdir / "nodes.json"
        spec.write_text(json.dumps({"configs": configs}))
        hosting = h.spawn(
            "nodes",
            ["--host-nodes", str(spec)],
            w.workdir,
            module="bench.fanout",
            timeout=600,
        )
        w.procs.append(hosting)
        ports = json.loads(spec.with_suffix(".ports.json").read_text())
        for agency, port in ports.items():
            w.nodes[agency] = h.Proc(agency, hosting.proc, hosting.log, port)
        report["setup_seconds"] = round(time.perf_counter() - started, 1)
        idle = hosting.status()
        report["loadavg_before"] = h.loadavg()
        cpu0 = hosting.cpu_seconds()
        report["nodes"] = nodes_fanout(w, owner, others, entries, timeout=60 if quick else 120)
        report["nodes"]["host_cpu_s"] = round(hosting.cpu_seconds() - cpu0, 2)
        report["host_process"] = {
            "rss_mib": round(hosting.rss_kib() / 1024, 1),
            "idle_rss_mib": round(idle.get("VmRSS", 0) / 1024, 1),
            "threads": hosting.status().get("Threads", 0),
        }
        hosting.stop()
        w.procs.remove(hosting)
        w.nodes.clear()
        cursors = {m: _inbox_cursor(w.dbs[m]) for m in others}
        report["floor"] = floor_fanout(w, owner, others, cursors, entries)
        report["loadavg_after"] = h.loadavg()
    report["ratio_last"] = h.ratio(
        report["nodes"]["last_member"]["p50_ms"], report["floor"]["last_member"]["p50_ms"]
    )
    return report


def format_table(result: dict[str, Any]) -> str:
    n, f = result["nodes"], result["floor"]
    lines = [
        f"| to {n['recipients']} members | first member p50 ms | median member p50 ms "
        "| last member p50 ms | last member max ms | ratio (last, p50) |",
        "|---|---:|---:|---:|---:|---:|",
        f"| nodes: AddCaseEntry → each member's WatchCase ({n['entries']} entries) "
        f"| {n['first_member']['p50_ms']:g} | {n['median_member']['p50_ms']:g} "
        f"| {n['last_member']['p50_ms']:g} | {n['last_member']['max_ms']:g} "
        f"| {result['ratio_last']:g} |",
        f"| floor: seal + submit → {f['recipients']} bare inbox streams opened "
        f"({f['rounds']} rounds) "
        f"| {f['first_member']['p50_ms']:g} | — | {f['last_member']['p50_ms']:g} "
        f"| {f['last_member']['max_ms']:g} | 1 |",
        "",
        f"AddCaseEntry call itself (seal for {n['recipients']}, one transaction): p50 "
        f"{n['add_entry_call']['p50_ms']:g} ms. The process hosting the "
        f"{result['agencies']} nodes used {n['host_cpu_s']:g} s of CPU over the entries "
        f"and holds {result['host_process']['rss_mib']:g} MiB resident "
        f"({result['host_process']['threads']} threads).",
    ]
    return "\n".join(lines)


def report(result: dict[str, Any]) -> str:
    """The README section for a fan-out run."""
    return "\n".join(
        [
            f"## Fan-out: one case entry to a task force of {result['agencies']} agencies "
            "(bench/fanout.py)",
            "",
            "```",
            ".venv/bin/python -m bench.fanout            # SQLite, 20 agencies",
            ".venv/bin/python -m bench.fanout --quick    # smoke run, figures meaningless",
            "```",
            "",
            "What is measured, honestly: the gateway runs in its own process and the "
            f"**{result['agencies']} nodes run together in one second process** (each with "
            "its own database, officer API, inbox stream and sender; the Celery relay off — "
            "Celery is not on the path from inbox to feed). Twenty node processes with "
            "their workers do not fit two cores; one process for twenty nodes serializes "
            "the members' work on one interpreter, so the figure is pessimistic against "
            "twenty machines. The owner's officer calls `AddCaseEntry`; this process "
            "follows `WatchCase` on every member's node and takes the time until the "
            "entry's `case.entry_added` event arrived at each. The floor, measured after "
            "the nodes stopped: the owner's identity seals one `CASE_ENTRY` envelope for "
            "the members and submits it; one bare inbox stream per member receives and "
            f"opens it. Backend: {result['backend']} (by default: twenty nodes' connection "
            "pools would take most of the shared PostgreSQL server's 100 connections); "
            "load average "
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
    parser.add_argument("--members", type=int, default=MEMBERS, help="agencies, owner included")
    parser.add_argument("--entries", type=int, default=ENTRIES)
    parser.add_argument("--host-nodes", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--ready-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--log-level", default="WARNING", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.host_nodes:
        host(args.host_nodes, args.ready_file)
        return 0
    result = run(quick=args.quick, backend=args.backend, members=args.members, entries=args.entries)
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
