"""Run every benchmark and rewrite bench/README.md from their results (``make bench``).

Usage::

    .venv/bin/python -m bench.run_all                  # everything (about half an hour)
    .venv/bin/python -m bench.run_all --only growth,memory
    .venv/bin/python -m bench.run_all --report-only    # rewrite the README from results.json
    .venv/bin/python -m bench.run_all --quick --readme /tmp/README.md --results /tmp/r.json

Each bench runs in its own interpreter (``python -m bench.NAME --json``), one
after the other, so that one bench's processes, threads and caches never
weigh on the next and a crash loses only that bench's section. Its JSON
goes into ``bench/results.json`` (with ``--only``, merged into the results
already there), its stderr into ``bench/.logs/NAME.log`` (not committed).
The README is then written by :mod:`bench._report`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import _harness as h
from bench._analysis import analysis
from bench._report import BENCHES, readme

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"
README = HERE / "README.md"
LOGS = HERE / ".logs"
TIMEOUT = 45 * 60


def bench_args(name: str, quick: bool) -> list[str]:
    """Extra arguments of one bench in a full run."""
    if quick:
        return ["--quick"] + (["--backend", "sqlite"] if name == "latency" else [])
    if name == "latency":
        return ["--backend", "postgresql" if h.pg_reachable() else "sqlite"]
    return []


def run_bench(name: str, module: str, quick: bool, logs: Path) -> dict[str, Any]:
    """One bench in its own interpreter; its JSON, or ``{"error": ...}``."""
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    argv = [sys.executable, "-m", module, "--json", *bench_args(name, quick)]
    started = time.perf_counter()
    load = h.loadavg()
    with log.open("w") as err:
        try:
            done = subprocess.run(  # fixed argv: this interpreter and our own modules
                argv,
                cwd=h.REPO,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                timeout=TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {TIMEOUT} s", "quick": quick}
    seconds = round(time.perf_counter() - started, 1)
    if done.returncode != 0:
        tail = log.read_text()[-3000:]
        return {"error": f"exit status {done.returncode}\n{tail}", "quick": quick}
    out = done.stdout
    try:
        result: dict[str, Any] = json.loads(out[out.index("{") :])
    except ValueError as exc:
        return {"error": f"no JSON on stdout ({exc}): {out[-1000:]}", "quick": quick}
    result["bench_seconds"] = seconds
    result["loadavg_before_bench"] = load
    return result


def run_info_text(info: dict[str, Any]) -> str:
    seconds = info.get("seconds", {})
    spans = ", ".join(
        f"{name} {seconds[name]:g} s (load {info.get('loadavg', {}).get(name, '?')})"
        for name, _module in BENCHES
        if name in seconds
    )
    return (
        f"Run started {info.get('started', '?')}, finished {info.get('finished', '?')}"
        + (" — **QUICK (smoke) run, figures meaningless**" if info.get("quick") else "")
        + f". Per bench, wall time and the 1-minute load average when it started: {spans}."
        + (
            " Re-run alone later (`--only`), results replacing the full run's: "
            + ", ".join(f"{k} at {v}" for k, v in info["rerun"].items())
            + "."
            if info.get("rerun")
            else ""
        )
    )


def write_readme(data: dict[str, Any], path: Path) -> None:
    info = dict(data.get("run", {}))
    info["text"] = run_info_text(info)
    path.write_text(
        readme(data["results"], data.get("machine", {}), analysis(data["results"]), info)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="every bench in smoke mode")
    parser.add_argument("--only", help="comma-separated bench names (others keep their results)")
    parser.add_argument("--report-only", action="store_true", help="rewrite the README only")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--readme", type=Path, default=README)
    args = parser.parse_args(argv)
    names = [n for n, _ in BENCHES]
    only = [n.strip() for n in args.only.split(",")] if args.only else names
    unknown = set(only) - set(names)
    if unknown:
        parser.error(f"unknown bench(es): {', '.join(sorted(unknown))}; known: {', '.join(names)}")
    data: dict[str, Any] = {"results": {}, "run": {}}
    if args.results.exists() and (args.only or args.report_only):
        data = json.loads(args.results.read_text())
    if not args.report_only:
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        run = data.setdefault("run", {})
        if args.only and run.get("started"):
            # a partial re-run: the full run's start stays, the re-run benches are named
            run.setdefault("rerun", {}).update(dict.fromkeys(only, now))
        else:
            data["machine"] = h.machine()
            run.update(started=now, quick=args.quick, rerun={})
        run.setdefault("seconds", {})
        run.setdefault("loadavg", {})
        logs = LOGS if args.results == RESULTS else args.results.parent / ".logs"
        for name, module in BENCHES:
            if name not in only:
                continue
            print(f"[bench] {name} ...", file=sys.stderr, flush=True)
            run["loadavg"][name] = h.loadavg()
            started = time.perf_counter()
            data["results"][name] = run_bench(name, module, args.quick, logs)
            run["seconds"][name] = round(time.perf_counter() - started, 1)
            status = "failed" if "error" in data["results"][name] else "done"
            print(f"[bench] {name} {status} in {run['seconds'][name]:g} s", file=sys.stderr)
            # written after every bench: a crash later keeps what was measured
            args.results.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        if not (args.only and run.get("rerun")):
            run["finished"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        args.results.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    write_readme(data, args.readme)
    print(f"[bench] wrote {args.readme}", file=sys.stderr)
    failed = [n for n in only if "error" in data["results"].get(n, {})]
    return 1 if failed and not os.environ.get("BENCH_IGNORE_FAILURES") else 0


if __name__ == "__main__":
    sys.exit(main())
