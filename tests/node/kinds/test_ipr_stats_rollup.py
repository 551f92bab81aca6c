"""The monthly rollup gives the same statistics as the rows (SQLite and PostgreSQL).

Random detentions and reports over fourteen months are written, then
changed (moved to another month, another country, other rights, fewer
goods lines) the way the kinds change them, through
:func:`node.kinds.ipr_stats.replace`. Every breakdown over whole months,
over periods cut inside months, within one month and open-ended must
equal the same breakdown computed from the rows alone; the rollup must
equal one rebuilt from scratch and hold no empty group.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select

from intelshare import migrate
from intelshare.db import make_engine
from intelshare.v1 import detention_pb2, ipr_service_pb2
from node.kinds import ipr_stats
from node.server import MIGRATIONS
from node.storage import tables as t

D = detention_pb2
S = ipr_service_pb2
CATEGORIES = [D.GOODS_CATEGORY_SHOES, D.GOODS_CATEGORY_TOYS, D.GOODS_CATEGORY_CLOTHING]
RIGHTS = ["trade_mark", "design", "patent"]


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    e = make_engine(db_url)
    migrate.upgrade(e, MIGRATIONS)
    yield e
    e.dispose()


def at(y: int, m: int, d: int = 1, h: int = 0) -> int:
    return int(datetime(y, m, d, h, tzinfo=UTC).timestamp() * 1000)


def source(rng: random.Random, i: int) -> ipr_stats.Source:
    start, end = at(2025, 11), at(2027, 1)
    reported = i % 3 == 0
    return ipr_stats.Source(
        source=ipr_stats.REPORTED if reported else ipr_stats.OWN,
        source_id=f"s{i}",
        partner=rng.choice(["nl-customs", "be-customs"]) if reported else "de-customs",
        detain_ms=rng.randrange(start, end),
        country=rng.choice(["CN", "TR", "HK"]),
        procedure=rng.choice(["standard", "ex_officio"]),
        rights=rng.sample(RIGHTS, rng.randint(0, 2)),
        goods=[
            D.DetainedGoods(
                category=rng.choice(CATEGORIES),
                quantity=rng.randint(0, 500),
                estimated_value=D.MonetaryValue(
                    currency_code=rng.choice(["EUR", "USD"]),
                    units=rng.randint(0, 10_000),
                    nanos=rng.choice([0, 500_000_000, 999_999_999]),
                ),
            )
            for _ in range(rng.randint(0, 3))
        ],
    )


def rollup_rows(engine: Engine) -> set[tuple[object, ...]]:
    m = t.ipr_stats_monthly
    with engine.connect() as conn:
        return {tuple(r) for r in conn.execute(select(m))}


def answer(engine: Engine, request: S.GetEnforcementStatisticsRequest, rollup: bool) -> bytes:
    with engine.connect() as conn:
        return ipr_stats.statistics(conn, request, rollup=rollup).SerializeToString(
            deterministic=True
        )


def test_rollup_answers_as_the_rows_do(engine: Engine) -> None:
    rng = random.Random(2026)
    with engine.begin() as conn:
        sources = [source(rng, i) for i in range(150)]
        for src in sources:
            ipr_stats.replace(conn, src)
    with engine.begin() as conn:  # changes: another month, country, rights, goods
        for i in rng.sample(range(150), 60):
            changed = source(rng, i)
            ipr_stats.replace(conn, changed)
    with engine.begin() as conn:  # a change that leaves a group empty
        ipr_stats.replace(conn, source(random.Random(1), 0))

    kept = rollup_rows(engine)
    assert kept
    assert all(row[8] > 0 for row in kept)  # "rows": no empty group is kept
    with engine.begin() as conn:
        ipr_stats.rebuild_rollup(conn)
    assert rollup_rows(engine) == kept

    dims = [
        S.STATISTICS_DIMENSION_MONTH,
        S.STATISTICS_DIMENSION_COUNTRY,
        S.STATISTICS_DIMENSION_CATEGORY,
        S.STATISTICS_DIMENSION_PARTNER,
        S.STATISTICS_DIMENSION_RIGHT,
        S.STATISTICS_DIMENSION_PROCEDURE,
    ]
    periods: list[tuple[int | None, int | None]] = [
        (None, None),
        (at(2026, 1), at(2027, 1)),  # a calendar year: the rollup alone
        (at(2026, 1, 15, 9), at(2026, 11, 3)),  # cut inside months at both ends
        (at(2026, 3, 2), at(2026, 3, 20)),  # within one month
        (at(2026, 2), at(2026, 3)),  # exactly one month
        (None, at(2026, 6, 10)),
        (at(2025, 12, 31, 23), None),
    ]
    groupings = [[], *([d] for d in dims), *itertools.combinations(dims, 2)]
    compared = 0
    for (start, end), group, src in itertools.product(
        periods,
        groupings,
        [S.STATISTICS_SOURCE_UNSPECIFIED, S.STATISTICS_SOURCE_OWN, S.STATISTICS_SOURCE_REPORTED],
    ):
        request = S.GetEnforcementStatisticsRequest(group_by=list(group), source=src)
        if start is not None:
            request.start_time.seconds = start // 1000
        if end is not None:
            request.end_time.seconds = end // 1000
        assert answer(engine, request, True) == answer(engine, request, False), (
            start,
            end,
            group,
            src,
        )
        compared += 1
    assert compared == len(periods) * len(groupings) * 3
    # and the answers are not all empty: the year has detentions in every month
    year = S.GetEnforcementStatisticsRequest(group_by=[S.STATISTICS_DIMENSION_MONTH])
    year.start_time.seconds = at(2026, 1) // 1000
    year.end_time.seconds = at(2027, 1) // 1000
    with engine.connect() as conn:
        result = ipr_stats.statistics(conn, year)
    assert [r.keys[0] for r in result.rows] == [f"2026-{m:02d}" for m in range(1, 13)]
    assert result.total.detentions == sum(r.detentions for r in result.rows) > 50
