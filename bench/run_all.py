"""Run every benchmark and write bench/README.md, the report of that run (``make bench``).

Usage::

    .venv/bin/python -m bench.run_all                  # every bench, reduced sizes
    .venv/bin/python -m bench.run_all --full           # every bench at its full sizes
    .venv/bin/python -m bench.run_all --only growth,memory --results /tmp/r.json
    .venv/bin/python -m bench.run_all --report-only    # rewrite the README from results.json
    .venv/bin/python -m bench.run_all --retry-failed   # run the run's failed benches once more
    .venv/bin/python -m bench.run_all --quick --readme /tmp/README.md --results /tmp/r.json

Each bench runs in its own interpreter (``python -m bench.NAME --json`` with
the arguments of :data:`bench._report.BENCHES`), one after the other, so
that one bench's processes, threads and caches never weigh on the next and
a crash loses only that bench's section. The results of the run go into
``bench/results.json`` (rewritten whole: the report is of one run), each
bench's stderr into ``bench/.logs/NAME.log`` (not committed). The README is
then written by :mod:`bench._report`.

On a shared machine a bench can fail for reasons of the moment (the shared
PostgreSQL server refusing connections when others hold them all);
``--retry-failed`` runs the failed benches of the last run once more, with
the run's sizes, and the report names each one, when it ran again and why
it had failed.
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
from bench._report import BENCHES, BY_NAME, Bench, readme

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"
README = HERE / "README.md"
LOGS = HERE / ".logs"
#: The longest one bench may take before it is stopped (its section then says so).
TIMEOUT = 30 * 60


def bench_argv(bench: Bench, *, quick: bool, full: bool) -> list[str]:
    """The command line of one bench in this run."""
    argv = [sys.executable, "-m", bench.module]
    if bench.json_flag:
        argv.append("--json")
    if quick:
        return [*argv, "--quick"]
    if bench.name == "latency":  # the machine's PostgreSQL when there is one
        argv += ["--backend", "postgresql" if h.pg_reachable() else "sqlite"]
    return [*argv, *(bench.full_args if full else bench.run_args)]


def run_bench(argv: list[str], log: Path) -> dict[str, Any]:
    """One bench in its own interpreter; its JSON, or ``{"error": ...}``."""
    log.parent.mkdir(parents=True, exist_ok=True)
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
            return {"error": f"timed out after {TIMEOUT} s", "loadavg_before_bench": load}
    seconds = round(time.perf_counter() - started, 1)
    if done.returncode != 0:
        tail = log.read_text()[-3000:]
        return {"error": f"exit status {done.returncode}\n{tail}", "loadavg_before_bench": load}
    out = done.stdout
    try:
        result: dict[str, Any] = json.loads(out[out.index("{") :])
    except ValueError as exc:
        return {"error": f"no JSON on stdout ({exc}): {out[-1000:]}"}
    result["bench_seconds"] = seconds
    result["loadavg_before_bench"] = load
    result["argv"] = argv[2:]
    return result


def commit() -> str:
    """The commit the benches ran, marked when the working tree had changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=h.REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=h.REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" (with uncommitted changes)" if dirty else "")


def retry_failed(data: dict[str, Any], results: Path) -> None:
    """Run each failed bench of ``data``'s run once more; noted in the run for the report."""
    run = data["run"]
    logs = LOGS if results == RESULTS else results.parent / ".logs"
    for bench in BENCHES:
        failed = data["results"].get(bench.name, {})
        if "error" not in failed:
            continue
        why = failed["error"].strip().splitlines()
        print(f"[bench] {bench.name} again ...", file=sys.stderr, flush=True)
        cmd = bench_argv(bench, quick=run.get("quick", False), full=run.get("sizes") == "full")
        data["results"][bench.name] = run_bench(cmd, logs / f"{bench.name}.log")
        # the line that says what went wrong: the last naming an error, else the last
        said = [line.strip() for line in why if line.strip()]
        named = [line for line in said if "Error" in line or "FATAL" in line or "error:" in line]
        reason = (named or said or ["?"])[-1]
        run.setdefault("retried", {})[bench.name] = {"at": _now(), "first_error": reason[-300:]}
        results.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _loads() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--quick", action="store_true", help="every bench in smoke mode")
    sizes.add_argument("--full", action="store_true", help="every bench at its full sizes")
    parser.add_argument("--only", help="comma-separated bench names (a partial report)")
    parser.add_argument("--report-only", action="store_true", help="rewrite the README only")
    parser.add_argument(
        "--retry-failed", action="store_true", help="run the last run's failed benches again"
    )
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--readme", type=Path, default=README)
    args = parser.parse_args(argv)
    only = [n.strip() for n in args.only.split(",")] if args.only else list(BY_NAME)
    unknown = set(only) - set(BY_NAME)
    if unknown:
        parser.error(
            f"unknown bench(es): {', '.join(sorted(unknown))}; known: {', '.join(BY_NAME)}"
        )
    if args.report_only:
        data = json.loads(args.results.read_text())
    elif args.retry_failed:
        data = json.loads(args.results.read_text())
        retry_failed(data, args.results)
    else:
        run: dict[str, Any] = {
            "started": _now(),
            "commit": commit(),
            "quick": args.quick,
            "sizes": "full" if args.full else "reduced",
            "loadavg_start": _loads(),
            "benches": only,
        }
        data = {"machine": h.machine(), "run": run, "results": {}}
        logs = LOGS if args.results == RESULTS else args.results.parent / ".logs"
        for bench in BENCHES:
            if bench.name not in only:
                continue
            print(f"[bench] {bench.name} ...", file=sys.stderr, flush=True)
            cmd = bench_argv(bench, quick=args.quick, full=args.full)
            result = run_bench(cmd, logs / f"{bench.name}.log")
            data["results"][bench.name] = result
            status = "failed" if "error" in result else "done"
            print(f"[bench] {bench.name} {status}", file=sys.stderr, flush=True)
            # written after every bench: a crash later keeps what was measured
            args.results.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        run.update(finished=_now(), loadavg_end=_loads())
        args.results.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    args.readme.write_text(readme(data["results"], data.get("machine", {}), data.get("run", {})))
    print(f"[bench] wrote {args.readme}", file=sys.stderr)
    failed = [n for n in only if "error" in data["results"].get(n, {})]
    return 1 if failed and not os.environ.get("BENCH_IGNORE_FAILURES") else 0


if __name__ == "__main__":
    sys.exit(main())
