"""IPR enforcement at scale: the product search and the yearly statistics.

Run ``.venv/bin/python -m bench.ipr`` (``--db postgresql://...`` for
PostgreSQL, default a SQLite file; ``--recordations`` / ``--detentions``
to choose the sizes; ``--quick`` for a smoke run; ``--json``).

What it measures, through the node's own code on a migrated database:

- **SearchRecordations latency** (:meth:`node.kinds.recordations.Recordations.search`,
  the query the servicer runs) at ``--recordations`` recordations in force,
  each with 3 GTINs, 2 HS subheadings and 1 right name in the index
  (``node_recordation_keys``), half of them sharing one of 50 popular HS
  subheadings: by GTIN (one match), by right name, by HS code (many
  matches, one page of 50), and GTIN + HS code together. Milliseconds per
  search, median and 95th percentile of 200 searches each. Target: a few
  milliseconds by GTIN.
- **a yearly statistics breakdown** (:func:`node.kinds.ipr_stats.statistics`,
  GetEnforcementStatistics) over ``--detentions`` detentions spread across
  one year (one statistics row each, 10 % with two categories, 5 % with
  two rights): by month; by month and country; by category and right; the
  total; and by month over a period cut inside its first and last months.
  Seconds per query, best of 3, three ways in the same run: from the
  monthly rollup (``node_ipr_stats_monthly``, what the node does), from the
  rows alone through the covering index (``rollup=False``), and from the
  rows through the plain index on the detention time that the node had
  before migration 0009 (the bench swaps the index at the end). Target:
  under a second at 1M.

``--part stats`` (or ``search``) runs one part only.

The data is written with bulk inserts into the node's own tables (rows as
the kinds write them: :func:`node.ipr.views.index_keys`,
:func:`node.kinds.ipr_stats.rows_of`), from a fixed seed; seeding time is
reported but is not what is measured.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import Engine, insert, text

from intelshare import migrate
from intelshare.db import make_engine
from intelshare.pagetokens import PageTokens
from intelshare.v1 import detention_pb2, ipr_service_pb2, recordation_pb2
from node.ipr import views
from node.kinds import ipr_stats
from node.kinds.ipr_common import dumps_message
from node.kinds.recordations import Recordations
from node.server import MIGRATIONS
from node.storage import tables as t
from node.storage.officers import Officer

S = ipr_service_pb2
D = detention_pb2
SEED = 17
POPULAR_HS = [f"{6101 + i:04d}{10 + i % 80:02d}" for i in range(50)]
CATEGORIES = [v for v in D.GoodsCategory.values() if v]
COUNTRIES = ["CN", "TR", "HK", "AE", "IN", "VN", "TH", "MA", "SG", "US"]
PROCEDURES = ["standard", "ex_officio", "small_consignment"]
RIGHTS = ["trade_mark", "design", "patent", "copyright"]


def gtin13(n: int) -> str:
    body = f"{400000000000 + n:012d}"
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def chunks(rows: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def seed_recordations(engine: Engine, n: int, rng: random.Random) -> float:
    start = time.perf_counter()
    now_ms = int(time.time() * 1000)
    grant = now_ms - 86_400_000
    expire = now_ms + 300 * 86_400_000
    batch_records: list[dict[str, Any]] = []
    batch_rec: list[dict[str, Any]] = []
    batch_keys: list[dict[str, Any]] = []

    def flush() -> None:
        with engine.begin() as conn:
            conn.execute(insert(t.records), batch_records)
            conn.execute(insert(t.recordations), batch_rec)
            for part in chunks(batch_keys, 5000):
                conn.execute(insert(t.recordation_keys), part)
        batch_records.clear()
        batch_rec.clear()
        batch_keys.clear()

    for i in range(n):
        record_id = f"r{i:09d}"
        hs = [rng.choice(POPULAR_HS) if i % 2 else f"{8500 + i % 400:04d}{i % 90 + 10:02d}"]
        hs.append(f"{9000 + i % 900:04d}{i % 89 + 10:02d}")
        message = recordation_pb2.Recordation(
            name=f"recordations/rec-{i}",
            holder=recordation_pb2.RightsHolder(name=f"Holder {i}", eori=f"NL{100000000 + i}"),
            rights=[
                recordation_pb2.IntellectualPropertyRight(
                    type=recordation_pb2.RIGHT_TYPE_TRADE_MARK, name=f"BRAND{i}"
                )
            ],
            goods=[
                recordation_pb2.CoveredGoods(
                    description="goods", hs_codes=hs, gtins=[gtin13(3 * i + k) for k in range(3)]
                )
            ],
            state=recordation_pb2.RECORDATION_STATE_GRANTED,
        )
        message.grant_time.FromMilliseconds(grant)
        message.expire_time.FromMilliseconds(expire)
        batch_records.append(
            {
                "record_id": record_id,
                "kind": "recordation",
                "direction": "issued",
                "origin_agency": "nl-customs",
                "treaty_id": "",
                "treaty_version": 0,
                "categories": '["counterfeit_goods"]',
                "handling": 0,
                "tlp": 2,
                "record": dumps_message(message),
                "revision": 1,
                "state": "active",
                "create_ms": now_ms + i,
                "update_ms": now_ms + i,
                "expire_ms": expire,
            }
        )
        batch_rec.append(
            {
                "record_id": record_id,
                "recordation_id": f"rec-{i}",
                "origin_name": f"rec-{i}",
                "direction": "issued",
                "origin_agency": "nl-customs",
                "holder_key": f"eori:NL{100000000 + i}",
                "state": "granted",
                "grant_ms": grant,
                "expire_ms": expire,
                "create_ms": now_ms + i,
                "full_record": None,
            }
        )
        batch_keys.extend(
            {"record_id": record_id, "key_type": a, "key": b}
            for a, b in sorted(views.index_keys(message))
        )
        if len(batch_records) >= 5000:
            flush()
    if batch_records:
        flush()
    return time.perf_counter() - start


def seed_detentions(engine: Engine, n: int, rng: random.Random, year: int) -> float:
    start = time.perf_counter()
    begin = datetime(year, 1, 1, tzinfo=UTC)
    seconds = int((datetime(year + 1, 1, 1, tzinfo=UTC) - begin).total_seconds())
    rows: list[dict[str, Any]] = []
    for i in range(n):
        lines = [
            D.DetainedGoods(
                category=rng.choice(CATEGORIES),
                quantity=rng.randint(1, 5000),
                estimated_value=D.MonetaryValue(currency_code="EUR", units=rng.randint(10, 10**6)),
            )
        ]
        if i % 10 == 0:
            lines.append(
                D.DetainedGoods(category=rng.choice(CATEGORIES), quantity=rng.randint(1, 100))
            )
        rights = [rng.choice(RIGHTS)] + ([rng.choice(RIGHTS)] if i % 20 == 0 else [])
        src = ipr_stats.Source(
            source="own" if i % 4 else "reported",
            source_id=f"d{i:09d}",
            partner="de-customs" if i % 4 else rng.choice(["nl-customs", "be-customs"]),
            detain_ms=int((begin + timedelta(seconds=rng.randrange(seconds))).timestamp() * 1000),
            country=rng.choice(COUNTRIES),
            procedure=rng.choice(PROCEDURES),
            rights=rights,
            goods=lines,
        )
        rows.extend(ipr_stats.rows_of(src))
        if len(rows) >= 20_000:
            with engine.begin() as conn:
                conn.execute(insert(t.ipr_stats), rows)
            rows.clear()
    if rows:
        with engine.begin() as conn:
            conn.execute(insert(t.ipr_stats), rows)
    with engine.begin() as conn:  # bulk rows bypass replace(): the rollup is built once
        ipr_stats.rebuild_rollup(conn)
    analyze(engine)
    return time.perf_counter() - start


def analyze(engine: Engine) -> None:
    """Statistics for the planner; on PostgreSQL a VACUUM too, as autovacuum would after a load
    (the visibility map lets a covering index answer without reading the table)."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
        return
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))


#: The index on node_ipr_stats before migration 0009 (for the "before" figures).
_TIME_INDEX = "CREATE INDEX ix_node_ipr_stats_time ON node_ipr_stats (detain_ms)"


def timed(fn: Callable[[], Any], rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def run(
    db: str | None = None, *, recordations: int, detentions: int, part: str = "all"
) -> dict[str, Any]:
    rng = random.Random(SEED)
    tmp = None
    if db is None:
        tmp = tempfile.TemporaryDirectory()
        db = f"sqlite:///{Path(tmp.name) / 'ipr.db'}"
    engine = make_engine(db)
    try:
        migrate.upgrade(engine, MIGRATIONS)
        recordations = 0 if part == "stats" else recordations
        detentions = 0 if part == "search" else detentions
        seed_r = seed_recordations(engine, recordations, rng) if recordations else 0.0
        year = datetime.now(UTC).year - 1
        seed_d = seed_detentions(engine, detentions, rng, year) if detentions else 0.0
        kind = Recordations(
            agency_id="nl-customs",
            store=cast(Any, SimpleNamespace(engine=engine, page_tokens=PageTokens.ephemeral())),
            records=cast(Any, SimpleNamespace(register=lambda _k: None)),
        )
        officer = Officer("bench", "bench", "analyst")
        probes = [rng.randrange(recordations) for _ in range(200)] if recordations else []

        def search(**criteria: Any) -> Callable[[], Any]:
            it = iter(probes * 4)

            def go() -> Any:
                i = next(it)
                request = S.SearchRecordationsRequest(
                    **{k: (v(i) if callable(v) else v) for k, v in criteria.items()}
                )
                return kind.search(officer, request)

            return go

        checks = (
            {
                "gtin": len(search(gtin=lambda i: gtin13(3 * i + 1))().matches),
                "hs_code": len(search(hs_code=POPULAR_HS[0])().matches),
            }
            if recordations
            else {}
        )
        search_ms = {}
        for label, fn in (
            {}
            if not recordations
            else {
                "gtin": search(gtin=lambda i: gtin13(3 * i + 1)),
                "right_name": search(right_name=lambda i: f"brand{i}"),
                "hs_code (page of 50)": search(hs_code=lambda i: POPULAR_HS[i % 50]),
                "gtin + hs_code": search(
                    gtin=lambda i: gtin13(3 * i), hs_code=lambda i: POPULAR_HS[i % 50]
                ),
            }
        ).items():
            samples = sorted(x * 1000 for x in timed(fn, 200))
            search_ms[label] = {
                "median": round(statistics.median(samples), 3),
                "p95": round(samples[int(len(samples) * 0.95) - 1], 3),
            }
        start = int(datetime(year, 1, 1, tzinfo=UTC).timestamp())
        end = int(datetime(year + 1, 1, 1, tzinfo=UTC).timestamp())
        stats_s: dict[str, dict[str, float]] = {}
        answers: dict[str, dict[str, int]] = {}
        month = S.STATISTICS_DIMENSION_MONTH
        requests: dict[str, Any] = {}
        for label, (dims, first, last) in (
            {}
            if not detentions
            else {
                "total": ([], start, end),
                "by month": ([month], start, end),
                "by month, country": ([month, S.STATISTICS_DIMENSION_COUNTRY], start, end),
                "by category, right": (
                    [S.STATISTICS_DIMENSION_CATEGORY, S.STATISTICS_DIMENSION_RIGHT],
                    start,
                    end,
                ),
                # 15 January to 15 December: two partial months read from the rows
                "by month, cut period": ([month], start + 14 * 86400, end - 17 * 86400),
            }
        ).items():
            requests[label] = S.GetEnforcementStatisticsRequest(group_by=dims)
            requests[label].start_time.seconds = first
            requests[label].end_time.seconds = last

        def measure(how: str, rollup: bool) -> None:
            for label, request in requests.items():

                def query(request: Any = request) -> Any:
                    with engine.connect() as conn:
                        return ipr_stats.statistics(conn, request, rollup=rollup)

                result = query()
                answer = {"rows": len(result.rows), "detentions": result.total.detentions}
                if answers.setdefault(label, answer) != answer:
                    raise AssertionError(f"{label}: {how} disagrees")
                stats_s.setdefault(label, {})[how] = round(min(timed(query, 3)), 3)

        if requests:
            measure("rollup", True)
            measure("rows, covering index", False)
            # before: the rows alone through the plain time index the node had
            with engine.begin() as conn:
                conn.execute(text("DROP INDEX ix_node_ipr_stats_period"))
                conn.execute(text(_TIME_INDEX))
            analyze(engine)
            measure("rows, time index (before)", False)
        with engine.connect() as conn:
            rollup_rows = conn.execute(
                text("SELECT count(*) FROM node_ipr_stats_monthly")
            ).scalar_one()
        return {
            "benchmark": "ipr",
            "database": engine.dialect.name,
            "recordations": recordations,
            "detentions": detentions,
            "seed_seconds": {"recordations": round(seed_r, 1), "detentions": round(seed_d, 1)},
            "checks": checks,
            "search_ms": search_ms,
            "statistics_seconds": stats_s,
            "statistics_answers": answers,
            "rollup_rows": rollup_rows,
        }
    finally:
        engine.dispose()
        if tmp is not None:
            tmp.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="SQLAlchemy URL (default: a SQLite file in a temp dir)")
    parser.add_argument("--recordations", type=int, default=100_000)
    parser.add_argument("--detentions", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="1,000 and 10,000: a smoke run")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--part", choices=["all", "search", "stats"], default="all")
    args = parser.parse_args()
    sizes = (1000, 10_000) if args.quick else (args.recordations, args.detentions)
    report = run(args.db, recordations=sizes[0], detentions=sizes[1], part=args.part)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"IPR bench on {report['database']}: {report['recordations']:,} recordations, "
        f"{report['detentions']:,} detentions (seeded in {report['seed_seconds']})"
    )
    for label, ms in report["search_ms"].items():
        print(f"  SearchRecordations {label:<22} median {ms['median']} ms  p95 {ms['p95']} ms")
    for label, secs in report["statistics_seconds"].items():
        rows = report["statistics_answers"][label]["rows"]
        timings = ", ".join(f"{how} {s} s" for how, s in secs.items())
        print(f"  yearly statistics {label:<22} {timings}  ({rows} rows)")
    if report["detentions"]:
        print(f"  rollup: {report['rollup_rows']:,} rows")


if __name__ == "__main__":
    main()
