"""bench/README.md: the report of one ``make bench`` run, written from bench/results.json.

The report has three parts, and nothing else: the machine and the run
(cores, load average at the start and the end, date, commit, the sizes
used), a summary table with one line per bench (what it measures, its
figure, the baseline measured in the same run, what the figure means) and,
per bench, a short method and the bench's own table of figures. It is
rewritten whole by every run; nobody appends to it by hand. Explanations
of past runs live in git history, not here.

:data:`BENCHES` is the one list of benches: :mod:`bench.run_all` runs them in
this order with these arguments. ``run_args`` are the sizes of a default run,
chosen to keep ``make bench`` well under an hour on two cores; ``full_args``
are what ``--full`` passes instead (the bench's own defaults, which take
longer). The report says which were used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: (figure, same-run baseline, what it means) for the summary line of a bench.
Headline = tuple[str, str, str]


@dataclass(frozen=True)
class Bench:
    name: str
    what: str
    method: str
    headline: Callable[[dict[str, Any]], Headline]
    run_args: tuple[str, ...] = ()
    full_args: tuple[str, ...] = ()
    #: whether the bench takes ``--json`` (screen_rpc prints JSON always)
    json_flag: bool = True

    @property
    def module(self) -> str:
        return f"bench.{self.name}"


def _g(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "—"
    return format(value, ",g") if isinstance(value, int | float) else str(value)


# --- one headline per bench: (figure, baseline, meaning) --------------------------------------


def _envelope(r: dict[str, Any]) -> Headline:
    target = r.get("target_ratio", 1.3)
    op, case = max(
        ((op, c) for c in r["cases"] for op in ("seal", "open", "verify")),
        key=lambda oc: oc[1][oc[0]]["ratio"],
    )
    x = case[op]
    where = f"{case['recipients']} recipient(s), {case['payload_bytes'] // 1024} KiB"
    return (
        f"{op} {x['us']:.0f} µs ({where}; the worst ratio of {3 * len(r['cases'])})",
        f"its cryptographic primitives {x['primitives_us']:.0f} µs",
        f"ratio {x['ratio']:.2f}: our work on top of the crypto (target ≤ {target})",
    )


def _gateway(r: dict[str, Any]) -> Headline:
    res = r["results"][-1]
    s = max(res["submit"], key=lambda s: s["submitters"])
    floor = s.get("floor", {})
    return (
        f"submit {s['per_second']:.0f}/s ({s['submitters']} submitters, {res['backend']})",
        f"bare gRPC echo {s['echo_per_second']:.0f}/s; floor {floor.get('per_second', '—')}/s",
        f"ratio {s['ratio']:.2f} of the echo (target ≥ {r['targets']['submit_ratio']}); "
        f"inbox stream {res['stream']['ratio']:.2f} of its echo",
    )


def _latency(r: dict[str, Any]) -> Headline:
    at = r.get("targets", {}).get("at_rate", 100)
    run = next((x for x in r["runs"] if x["rate"] == at), r["runs"][-1])
    best = r.get("max_sustainable")
    return (
        f"p50 {_g(run['p50_ms'])} ms, p99 {_g(run['p99_ms'])} ms at {_g(run['rate'])} alerts/s",
        "none (absolute targets)",
        f"issue at A to the event on B's feed; highest sustainable rate "
        f"{_g(best) + '/s' if best else 'none of those tried'}",
    )


def _statements(r: dict[str, Any]) -> Headline:
    t = r["total"]
    return (
        f"{_g(t['statements_per_alert'])} statements, {_g(t['transactions_per_alert'])} "
        "transactions per alert",
        "none (a count)",
        f"all databases of one alert's path; {_g(t['exec_ms_per_alert'])} ms of server "
        "execution per alert",
    )


def _node_writes(r: dict[str, Any]) -> Headline:
    c = r["cases"][0]
    return (
        f"pipelined {_g(c['pipelined_median_per_second'])} tx/s ({c['threads']} threads)",
        f"one by one {_g(c['one_by_one_median_per_second'])} tx/s",
        "ratio "
        + ", ".join(f"{_g(x['ratio'])} at {x['threads']} threads" for x in r["cases"])
        + ": what sending the COMMIT with the statements saves",
    )


def _catchup(r: dict[str, Any]) -> Headline:
    c = r["catchup"]
    return (
        f"{_g(c.get('notified_per_second'))} alerts/s stored and notified ({r['alerts']:,} alerts)",
        f"bare client that only streams, opens, acknowledges {_g(r['floor']['per_second'])}/s",
        f"ratio {_g(r.get('ratio_notified'))} to the floor",
    )


def _growth(r: dict[str, Any]) -> Headline:
    small, large = r["sizes"]
    name, worst = max(r["results"].items(), key=lambda kv: kv[1]["ratio"])
    return (
        f"worst p50 {worst['large_p50_ms']:.1f} ms ({name}, {large:,} stored)",
        f"the same call at {small:,} stored: {worst['small_p50_ms']:.1f} ms",
        f"ratio {worst['ratio']:.2f} (target ≤ {r['target_ratio']}): calls do not slow as "
        "data grows",
    )


def _fanout(r: dict[str, Any]) -> Headline:
    n, f = r["nodes"], r["floor"]
    return (
        f"last of {n['recipients']} members p50 {_g(n['last_member']['p50_ms'])} ms",
        f"seal + submit to bare inbox streams {_g(f['last_member']['p50_ms'])} ms",
        f"ratio {_g(r.get('ratio_last'))}: one case entry to a whole task force",
    )


def _taxii_peer(r: dict[str, Any]) -> Headline:
    if r.get("skipped"):
        return ("not run", "—", f"medallion missing: {r['skipped']}")
    x = r["results"][0]
    grow = r.get("growth", {})
    return (
        f"{_g(x['ours']['per_second'])} share-then-fetch cycles/s ({x['stored']:,} stored)",
        f"medallion (OASIS TAXII server) {_g(x['peer']['per_second'])}/s",
        f"ratio {_g(x['ratio'])} (target ≥ {_g(r['target_ratio'])}); growth with stored "
        f"objects ours {_g(grow.get('ours'))}, medallion {_g(grow.get('peer'))} (1 = flat)",
    )


def _memory(r: dict[str, Any]) -> Headline:
    nodes = {k: p for k, p in r["processes"].items() if k.startswith("node")}
    name, p = max(nodes.items(), key=lambda kv: kv[1]["load_peak_mib"])
    return (
        f"{name} {_g(p['load_peak_mib'])} MiB under load (gateway "
        f"{_g(r['processes']['gateway']['load_peak_mib'])} MiB)",
        f"bare gRPC server {_g(r['baseline']['rss_mib'])} MiB",
        f"ratio {_g(p['load_ratio'])}: resident size of a node beyond the gRPC runtime",
    )


def _screening(r: dict[str, Any]) -> Headline:
    m, t, met = r["main"], r["targets"], r["met"]
    return (
        f"{_g(m['indexed_per_s'])} declarations/s indexed ({m['profiles']:,} profiles)",
        f"naive loop over every profile {_g(m['naive_per_s'])}/s",
        f"ratio {_g(m['speedup'])}; {_g(r['flat_ratio'])} of the rate kept from "
        f"{r['scale'][0]['profiles']:,} to {r['scale'][-1]['profiles']:,} profiles "
        f"(targets: {_g(t['indexed_per_s'])}/s {_met(met['rate'])}, flat "
        f"≥ {_g(t['flat_ratio'])} {_met(met['flat'])})",
    )


def _met(ok: bool) -> str:
    return "met" if ok else "missed"


def _ipr(r: dict[str, Any]) -> Headline:
    gtin = r["search_ms"]["gtin"]
    stats = r["statistics_seconds"]
    # per query either seconds, or seconds per way of answering it (the first is the node's)
    ways = next(iter(stats.values()))
    if isinstance(ways, dict):
        ours, before = next(iter(ways)), list(ways)[-1]
        name, worst = max(stats.items(), key=lambda kv: kv[1][ours])
        base = f"{before}: {_g(worst[before])} s"
        seconds = f"{_g(worst[ours])} s ({ours})"
    else:
        name, seconds_value = max(stats.items(), key=lambda kv: kv[1])
        base, seconds = "none (absolute: a few ms by GTIN, statistics under 1 s at 1M)", ""
        seconds = f"{_g(seconds_value)} s"
    return (
        f"yearly statistics, slowest query ({name}) {seconds}; search by GTIN median "
        f"{_g(gtin['median'])} ms",
        base,
        f"over {r['detentions']:,} detentions and {r['recordations']:,} recordations "
        "(targets: a few ms by GTIN, statistics under 1 s at 1M)",
    )


def _interop(r: dict[str, Any]) -> Headline:
    x = r["results"][-1]
    peer = x.get("peer")
    if not peer:
        base = f"medallion skipped: {r.get('peer_skipped')}"
    elif peer.get("timed_out_s"):
        base = (
            f"medallion stopped after {_g(peer['timed_out_s'])} s with {peer['objects']:,} "
            f"objects ({peer.get('error') or 'too slow'})"
        )
    else:
        base = f"medallion on the same objects {_g(peer['objects_per_s'])}/s"
    return (
        f"TAXII paging {_g(x['ours']['objects_per_s'])} objects/s ({x['stored']:,} alerts)",
        base,
        f"ratio {_g(x.get('ratio'))}; STIX export {_g(x['export']['objects_per_s'])} "
        "objects per CPU second",
    )


def _concurrency(r: dict[str, Any]) -> Headline:
    runs = {(x["backend"], x["variant"]): x for x in r["runs"]}
    most = str(max(int(k) for k in r["runs"][0]["by_concurrency"]))
    queued = runs.get(("sqlite", "queued")) or r["runs"][0]
    before = runs.get(("sqlite", "busy_retry"))
    q = queued["by_concurrency"][most]
    return (
        f"p99 {_g(q['p99_ms'])} ms at {most} callers ({queued['backend']}, as shipped)",
        f"writer queue taken out: p99 {_g(before['by_concurrency'][most]['p99_ms'])} ms"
        if before
        else "—",
        f"CreateAlert tail under concurrent callers; sequential p99 "
        f"{_g(queued['by_concurrency']['1']['p99_ms'])} ms",
    )


def _screen_rpc(r: dict[str, Any], matcher: dict[str, Any] | None = None) -> Headline:
    base = (
        f"matcher alone (screening bench) {_g(matcher['main']['indexed_per_s'])}/s"
        if matcher and "main" in matcher
        else "—"
    )
    return (
        f"{_g(r['declarations_per_s'])} declarations/s through gRPC ({r['profiles']:,} profiles)",
        base,
        f"what an officer's `intelshare screen` gets; node CPU "
        f"{_g(r['node_cpu_ms_per_1000'])} ms per 1,000",
    )


# --- the benches, in the order run_all runs them ----------------------------------------------

BENCHES: tuple[Bench, ...] = (
    Bench(
        "envelope",
        "seal, open and verify an envelope",
        "`seal`, `open` (as the first recipient) and `verify` (the gateway's check) for 1, 5 "
        "and 20 recipients at 1 KiB and 64 KiB, each beside the cryptographic primitives it "
        "cannot avoid (Ed25519, HPKE per recipient, AES-256-GCM, SHA-256), timed in the "
        "same process on inputs of the same sizes. CPU time, 40 short runs alternating "
        "each operation with its floor, best of each kept.",
        _envelope,
    ),
    Bench(
        "gateway",
        "gateway submit and inbox streaming",
        "Envelopes accepted per second with 1 and 4 concurrent submitters (each its own "
        "mTLS channel) and inbox entries streamed per second, against a bare gRPC echo of "
        "messages of the same size and a *floor* server doing only what no submit can skip "
        "(signature check, durable write, signed receipt). All three are real servers in "
        "their own processes, timed in alternating rounds, best round kept; SQLite and "
        "PostgreSQL.",
        _gateway,
    ),
    Bench(
        "latency",
        "end-to-end alert latency",
        "A gateway, nodes nl-customs (A) and be-police (B), a worker per node and a private "
        "Redis, each its own process. Officers at A issue alerts to B at a fixed rate (open "
        "loop); an analyst at B follows `WatchAlerts`. Latency is the event's arrival on B's "
        "stream minus the start of `CreateAlert` at A. After the fixed rates it searches "
        "the highest rate with every alert arrived and p99 < 100 ms. CPU per alert from "
        "/proc.",
        _latency,
    ),
    Bench(
        "statements",
        "database statements per alert",
        "The latency bench's federation on a private PostgreSQL server with "
        "`pg_stat_statements`: alerts issued at a fixed rate, then every statement, "
        "transaction and row each service's database saw for them, counted per alert. A "
        "count does not move with the machine's load.",
        _statements,
    ),
    Bench(
        "node_writes",
        "node write transactions, pipelined against one by one",
        "Threads of one process commit units of work shaped like issuing an alert on a "
        "fresh PostgreSQL database: *pipelined* (the node's path: the statements sent with "
        "the `COMMIT` in one round trip) against *one by one* (each statement waiting for "
        "its answer), in alternating rounds; every round checks its audit log.",
        _node_writes,
        run_args=("--rounds", "2", "--seconds", "3"),
        full_args=("--rounds", "3", "--seconds", "5"),
    ),
    Bench(
        "catchup",
        "catch-up after being offline",
        "While be-police's node is down, alerts sealed as nl-customs are submitted to the "
        "gateway. The *floor* is a bare client draining the same number (stream, verify, "
        "open, acknowledge). Then be-police's node starts and catches up (verify, open, "
        "treaty check, store, notify, receipts owed); timed from process start.",
        _catchup,
        run_args=("--alerts", "2000", "--no-profile"),
        full_args=("--alerts", "10000"),
    ),
    Bench(
        "growth",
        "calls against a small and a large database",
        "Two nodes side by side, one holding the small number of alerts, the other the "
        "large one (half received, half issued), filled before they start by "
        "`bench/_seed.py` through the node's own writers. Get, list (first page and a page "
        "deep in), and issue, p50 of alternating rounds at each size.",
        _growth,
        run_args=("--large", "10000", "--rounds", "5"),
        full_args=("--large", "100000", "--rounds", "7"),
    ),
    Bench(
        "fanout",
        "one case entry to a task force",
        "Twenty nodes of a task force in one host process behind one gateway: one "
        "`AddCaseEntry` at the case owner until the entry is on every member's "
        "`WatchCase`. The *floor* seals the same entry and submits it to bare inbox "
        "streams of the same members.",
        _fanout,
    ),
    Bench(
        "taxii_peer",
        "share-then-fetch against the OASIS TAXII server",
        "The same cycle on both in the same run: *peer*: medallion (the OASIS TAXII 2.1 "
        "reference server) gets an indicator POSTed and a consumer GETs it; *ours*: an "
        "officer issues an alert, the other node stores it, its analyst's feed says so and "
        "the analyst reads it (audited). Eight cycles in flight, alternating rounds, best "
        "kept, at two numbers of stored objects (ours seeded by `bench/_seed.py`).",
        _taxii_peer,
        run_args=("--sizes", "1000,5000", "--rounds", "1", "--no-profile"),
        full_args=("--sizes", "1000,10000", "--rounds", "2"),
    ),
    Bench(
        "memory",
        "resident size idle and under load",
        "Resident size of the gateway, each node and each worker idle and under a steady "
        "alert load, sampled from /proc, beside a bare gRPC server with the same runtime "
        "(TLS, health service).",
        _memory,
        run_args=("--duration", "10"),
        full_args=("--duration", "20"),
    ),
    Bench(
        "screening",
        "declaration screening, indexed against the naive loop",
        "Generated declarations screened against generated risk profiles by the node's "
        "matcher (an index of keys) and by a naive loop over every profile, in the same "
        "process; both must give the same hits. Repeated at 100, 1,000 and 10,000 "
        "profiles to show the rate stays flat.",
        _screening,
    ),
    Bench(
        "ipr",
        "IPR product search and yearly statistics",
        "On a migrated SQLite database filled with bulk inserts of the rows the kinds write: "
        "`SearchRecordations` by GTIN, right name and HS code (median and p95 of 200 "
        "searches), and the yearly enforcement statistics over every detention (best of "
        "3), each answered the node's way beside the other ways the bench times (reading "
        "the detention rows themselves). The search has no baseline: the issue sets "
        "absolute targets.",
        _ipr,
        run_args=("--recordations", "10000", "--detentions", "100000"),
        full_args=("--recordations", "100000", "--detentions", "1000000"),
    ),
    Bench(
        "interop",
        "STIX export and TAXII paging against medallion",
        "nl-customs' node holds the seeded alerts; timed one after the other: the STIX 2.1 "
        "export of every alert (CPU), our `intelshare taxii serve` paged by taxii2-client, "
        "and medallion loaded with exactly the objects our export produced, paged by the "
        "same client.",
        _interop,
        run_args=("--sizes", "1000", "--peer-budget", "120"),
        full_args=("--sizes", "1000,10000", "--peer-budget", "600"),
    ),
    Bench(
        "concurrency",
        "CreateAlert under concurrent callers",
        "`CreateAlert` calls at one node (gateway, two nodes, workers, Redis in their own "
        "processes), one at a time and then by 8 and 32 concurrent callers. On SQLite the "
        "node as shipped (writers queued in arrival order) alternates with the node with "
        "its writer queue taken out (`bench/_unqueued_node.py`); PostgreSQL runs as shipped.",
        _concurrency,
        run_args=("--calls", "60"),
        full_args=("--calls", "200"),
    ),
    Bench(
        "screen_rpc",
        "screening through gRPC on a real node",
        "A node behind a real gateway holding risk profiles written through "
        "`CreateRiskProfile`; a client streams generated declarations in batches of 500 over "
        "TLS (`ScreenDeclarations`); the node validates, screens and stores the hits. Its "
        "baseline is the matcher alone from the screening bench of the same run.",
        _screen_rpc,
        json_flag=False,
    ),
)

BY_NAME = {b.name: b for b in BENCHES}


# --- the README ----------------------------------------------------------------------------


def headline(bench: Bench, results: dict[str, dict[str, Any]]) -> Headline:
    r = results.get(bench.name)
    if r is None:
        return ("not run", "—", "—")
    if "error" in r:
        return ("**failed**", "—", "see its section")
    try:
        if bench.name == "screen_rpc":
            return _screen_rpc(r, results.get("screening"))
        return bench.headline(r)
    except (KeyError, IndexError, TypeError, ValueError) as exc:  # never lose the report
        return ("—", "—", f"headline not readable: {exc!r}")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def summary(results: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "| bench | what | figure | baseline (same run) | what it means |",
        "|---|---|---|---|---|",
    ]
    for b in BENCHES:
        figure, base, meaning = headline(b, results)
        lines.append(
            f"| [{b.name}](#{b.name}) | {_cell(b.what)} | {_cell(figure)} "
            f"| {_cell(base)} | {_cell(meaning)} |"
        )
    return lines


def _markdown(text: str) -> str:
    """A bench's plain-text figures as Markdown: indented runs of lines go in code blocks."""
    out: list[str] = []
    block = False
    for line in text.splitlines():
        indented = line.startswith("  ") and not line.lstrip().startswith(("|", "-", "*"))
        if indented and not block:
            out.append("```")
            block = True
        elif not indented and block:
            out.append("```")
            block = False
        out.append(line)
    if block:
        out.append("```")
    return "\n".join(out)


def _ipr_table(r: dict[str, Any]) -> str:
    lines = ["| search | median ms | p95 ms |", "|---|---:|---:|"]
    lines += [
        f"| {label} | {_g(ms['median'])} | {_g(ms['p95'])} |"
        for label, ms in r["search_ms"].items()
    ]
    stats = r["statistics_seconds"]
    ways = next(iter(stats.values()))
    names = list(ways) if isinstance(ways, dict) else ["seconds"]
    lines += [
        "",
        "| yearly statistics | " + " | ".join(f"{n} s" for n in names) + " | rows |",
        "|---|" + "---:|" * (len(names) + 1),
    ]
    for label, v in stats.items():
        cells = [_g(v[n]) for n in names] if isinstance(v, dict) else [_g(v)]
        rows = r["statistics_answers"][label]["rows"]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {rows} |")
    seeded = r.get("seed_seconds", {})
    lines += [
        "",
        f"{r['recordations']:,} recordations and {r['detentions']:,} detentions on "
        f"{r['database']}, seeded in {', '.join(f'{k} {v} s' for k, v in seeded.items())} "
        "(not timed).",
    ]
    return "\n".join(lines)


def _screen_rpc_table(r: dict[str, Any]) -> str:
    return "\n".join(
        [
            "| profiles | declarations | declarations/s | node CPU ms per 1,000 | hits stored "
            "| first batch s | profiles written/s | errors |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {r['profiles']:,} | {r['declarations']:,} | {_g(r['declarations_per_s'])} "
            f"| {_g(r['node_cpu_ms_per_1000'])} | {r['hits_stored']} | {_g(r['first_batch_s'])} "
            f"| {_g(r['profiles_written_per_s'])} | {r['errors']} |",
            "",
            f"Backend: {r['backend']}.",
        ]
    )


def _table_lines(text: str) -> str:
    """Only the tables of a bench's own ``report()`` (its prose is the method here)."""
    keep = [line for line in text.splitlines() if line.startswith("|") or not line.strip()]
    return "\n".join(keep).strip()


def figures(bench: Bench, result: dict[str, Any]) -> str:
    """The bench's own table of figures for this run."""
    if bench.name == "ipr":
        return _ipr_table(result)
    if bench.name == "screen_rpc":
        return _screen_rpc_table(result)
    module = importlib.import_module(bench.module)
    if hasattr(module, "format_table"):
        text: str = module.format_table(result)
        first = text.splitlines()[0] if text else ""
        if not first.startswith("|"):  # a title or machine line: the report has its own
            text = text.split("\n", 2)[2] if text.count("\n") >= 2 else text
        return _markdown(text)
    return _table_lines(module.report(result))


def section(bench: Bench, result: dict[str, Any] | None) -> str:
    parts = [f"### {bench.name}", "", f"`bench/{bench.name}.py`: {bench.method}", ""]
    sizes = (
        f"`make bench` reduces its sizes (`{' '.join(bench.run_args)}`); full sizes "
        f"(`--full`): `{' '.join(bench.full_args)}`."
        if bench.run_args
        else "`make bench` runs it at its own sizes."
    )
    ran = " ".join(result["argv"]) if result and result.get("argv") else None
    parts += [(f"This run: `python -m {ran}`. " if ran else "") + sizes, ""]
    if result is None:
        return "\n".join([*parts, "Not run."])
    if "error" in result:
        return "\n".join(
            [*parts, "**The bench failed in this run:**", "", "```", result["error"][-3000:], "```"]
        )
    load = result.get("loadavg_before_bench")
    if load is not None:
        parts += [
            f"Wall time {_g(result.get('bench_seconds'))} s; 1-minute load average "
            f"{_g(load)} when it started.",
            "",
        ]
    try:
        parts.append(figures(bench, result))
    except Exception as exc:  # one bench's table must never lose the others
        parts.append(f"Its figures could not be written: {exc!r}")
    return "\n".join(parts)


def machine_lines(m: dict[str, Any], run: dict[str, Any]) -> list[str]:
    versions = ", ".join(f"{k} {v}" for k, v in sorted(m.get("versions", {}).items()))
    sizes = run.get("sizes", "reduced")
    quick = run.get("quick")
    return [
        f"- **Date**: started {run.get('started', '?')}, finished {run.get('finished', '?')}.",
        f"- **Commit**: `{run.get('commit', '?')}`.",
        f"- **Machine**: {m.get('cpu', '?')}, {m.get('nproc', '?')} cores, "
        f"{m.get('memory_gib', '?')} GiB, Linux {m.get('kernel', '?')}, Python "
        f"{m.get('python', '?')}.",
        f"- **Load average** (1, 5, 15 min): {_g(run.get('loadavg_start', m.get('loadavg')))} "
        f"at the start, {_g(run.get('loadavg_end'))} at the end. The machine is shared with "
        "other work: each section gives the load when its bench started.",
        "- **Sizes**: "
        + (
            "`--quick` (smoke sizes): **the figures mean nothing**."
            if quick
            else (
                "full (`--full`: every bench at its own default sizes)."
                if sizes == "full"
                else "reduced where a bench is large (each section says which; "
                "`python -m bench.run_all --full` runs the full sizes)."
            )
        ),
        f"- **Versions**: {versions}.",
        *(
            f"- **Run again**: {name} failed in this run and was run once more at "
            f"{r['at']} (`python -m bench.run_all --retry-failed`); the first attempt "
            f"ended with: `{r['first_error']}`."
            for name, r in run.get("retried", {}).items()
        ),
    ]


HEADER = """# Benchmarks

The report of one run of `make bench` (`bench/run_all.py`), written by it from
`bench/results.json`; never edited by hand. Every figure stands beside a
baseline measured in the same run, because absolute times on a shared
machine move from run to run. Run one bench alone with
`python -m bench.NAME` (`--help` for its sizes); `tests/bench/` runs each in
`--quick` mode and asserts structure, never time."""


def readme(results: dict[str, dict[str, Any]], machine: dict[str, Any], run: dict[str, Any]) -> str:
    parts = [HEADER, "", "## Machine and run", "", *machine_lines(machine, run)]
    parts += ["", "## Summary", "", *summary(results), "", "## Method and figures per bench"]
    for b in BENCHES:
        parts += ["", section(b, results.get(b.name))]
    return "\n".join(parts).rstrip() + "\n"
