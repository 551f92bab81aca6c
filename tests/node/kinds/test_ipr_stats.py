"""Enforcement statistics against a fixture with known totals (SQLite and PostgreSQL).

Detentions with one or two categories, one or two rights, several
currencies, own and reported, across two months: every breakdown counts a
detention once per group, articles and value once per detention unless the
breakdown is by right.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from intelshare import errors, migrate
from intelshare.db import make_engine
from intelshare.v1 import detention_pb2, ipr_service_pb2
from node.kinds import ipr_stats
from node.server import MIGRATIONS

D = detention_pb2
S = ipr_service_pb2


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    e = make_engine(db_url)
    migrate.upgrade(e, MIGRATIONS)
    yield e
    e.dispose()


def ms(y: int, m: int, d: int) -> int:
    return int(datetime(y, m, d, 12, tzinfo=UTC).timestamp() * 1000)


def line(category: int, quantity: int, currency: str = "EUR", units: int = 0) -> D.DetainedGoods:
    return D.DetainedGoods(
        category=category,  # type: ignore[arg-type]
        quantity=quantity,
        estimated_value=D.MonetaryValue(currency_code=currency, units=units),
    )


SHOES = D.GOODS_CATEGORY_SHOES
TOYS = D.GOODS_CATEGORY_TOYS

FIXTURE = [
    # own, January: shoes, trade mark
    ipr_stats.Source("own", "d1", "de-customs", ms(2026, 1, 5), "CN", "standard",
                     ["trade_mark"], [line(SHOES, 100, units=1000)]),
    # own, January: shoes and toys, two rights, EUR and USD
    ipr_stats.Source("own", "d2", "de-customs", ms(2026, 1, 20), "CN", "standard",
                     ["trade_mark", "design"],
                     [line(SHOES, 10, units=50), line(TOYS, 5, "USD", 70)]),
    # own, February: toys, no recordation (ex officio)
    ipr_stats.Source("own", "d3", "de-customs", ms(2026, 2, 1), "TR", "ex_officio",
                     [], [line(TOYS, 7, units=30)]),
    # reported by nl-customs, February: shoes, trade mark
    ipr_stats.Source("reported", "r1", "nl-customs", ms(2026, 2, 14), "CN", "standard",
                     ["trade_mark"], [line(SHOES, 1000, units=9000)]),
]  # fmt: skip


@pytest.fixture
def loaded(engine: Engine) -> Engine:
    with engine.begin() as conn:
        for src in FIXTURE:
            ipr_stats.replace(conn, src)
    return engine


def stats(engine: Engine, *dims: int, **over: object) -> S.EnforcementStatistics:
    with engine.connect() as conn:
        return ipr_stats.statistics(
            conn,
            S.GetEnforcementStatisticsRequest(group_by=list(dims), **over),  # type: ignore[arg-type]
        )


def table(result: S.EnforcementStatistics) -> list[tuple[tuple[str, ...], int, int]]:
    return [(tuple(r.keys), r.detentions, r.articles) for r in result.rows]


def values(row: S.EnforcementStatisticsRow) -> dict[str, int]:
    return {v.currency_code: v.units for v in row.estimated_value}


def test_total_counts_each_detention_once(loaded: Engine) -> None:
    result = stats(loaded)
    assert table(result) == [((), 4, 1122)]
    assert result.total.detentions == 4
    assert result.total.articles == 1122
    assert values(result.total) == {"EUR": 10080, "USD": 70}


def test_by_month_and_partner(loaded: Engine) -> None:
    result = stats(loaded, S.STATISTICS_DIMENSION_MONTH, S.STATISTICS_DIMENSION_PARTNER)
    assert table(result) == [
        (("2026-01", "de-customs"), 2, 115),
        (("2026-02", "de-customs"), 1, 7),
        (("2026-02", "nl-customs"), 1, 1000),
    ]
    assert result.total.detentions == 4


def test_by_category_counts_a_mixed_detention_in_each(loaded: Engine) -> None:
    result = stats(loaded, S.STATISTICS_DIMENSION_CATEGORY)
    assert table(result) == [(("shoes",), 3, 1110), (("toys",), 2, 12)]
    assert values(result.rows[1]) == {"EUR": 30, "USD": 70}
    # the total is still four detentions
    assert (result.total.detentions, result.total.articles) == (4, 1122)


def test_by_right_counts_articles_under_every_right(loaded: Engine) -> None:
    result = stats(loaded, S.STATISTICS_DIMENSION_RIGHT)
    assert table(result) == [
        (("design",), 1, 15),
        (("trade_mark",), 3, 1115),
        (("unspecified",), 1, 7),
    ]
    both = stats(loaded, S.STATISTICS_DIMENSION_CATEGORY, S.STATISTICS_DIMENSION_RIGHT)
    assert (("toys", "design"), 1, 5) in table(both)
    assert (("shoes", "trade_mark"), 3, 1110) in table(both)
    assert both.total.detentions == 4


def test_source_and_period_filters(loaded: Engine) -> None:
    own = stats(loaded, S.STATISTICS_DIMENSION_COUNTRY, source=S.STATISTICS_SOURCE_OWN)
    assert table(own) == [(("CN",), 2, 115), (("TR",), 1, 7)]
    reported = stats(loaded, source=S.STATISTICS_SOURCE_REPORTED)
    assert table(reported) == [((), 1, 1000)]
    feb = stats(
        loaded,
        S.STATISTICS_DIMENSION_PROCEDURE,
        start_time=ts(ms(2026, 2, 1) - 3600_000),
        end_time=ts(ms(2026, 3, 1)),
    )
    assert table(feb) == [(("ex_officio",), 1, 7), (("standard",), 1, 1000)]


def test_replacing_a_source_replaces_its_rows(loaded: Engine) -> None:
    changed = FIXTURE[0].__class__(**{**FIXTURE[0].__dict__, "goods": [line(SHOES, 1)]})
    with loaded.begin() as conn:
        ipr_stats.replace(conn, changed)
    assert stats(loaded).total.articles == 1023


def test_bad_requests(loaded: Engine) -> None:
    with pytest.raises(errors.InvalidArgument):
        stats(loaded, S.STATISTICS_DIMENSION_MONTH, S.STATISTICS_DIMENSION_MONTH)
    with pytest.raises(errors.InvalidArgument):
        stats(loaded, 42)
    with pytest.raises(errors.InvalidArgument):
        stats(loaded, start_time=ts(ms(2026, 2, 1)), end_time=ts(ms(2026, 1, 1)))


def ts(at_ms: int) -> object:
    from node.schema.alert import ms_to_ts

    return ms_to_ts(at_ms)
