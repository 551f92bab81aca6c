"""Enforcement statistics: one row per (detention, category, right, currency), summed in SQL.

Every detention recorded here and every detention report received from a
partner leaves rows in ``node_ipr_stats``: its goods lines grouped by
product category and currency (articles and estimated value summed), once
for each type of right it concerns. The dimensions (month of the
detention, UTC; country of origin; category; procedure; partner, i.e. the
reporting agency or this one; type of right) are columns, so a breakdown
is one ``GROUP BY`` over an index range on the detention time, computed
by the database.

A detention with two categories or two rights has several rows, and must
still count once per group. Each row carries flags saying whether it is
the first row of its detention (``f0``), of its detention and category
(``fc``), right (``fr``), or both (``fcr``): the number of detentions of a
group is the sum of the flag that matches the dimensions asked for, a
plain ``SUM`` with no ``DISTINCT``. Articles and value are counted under
every right a detention concerns when the breakdown is by right, else only
on the rows of its first right (``r1``), so nothing is counted twice.

Rows keep no personal data (no parties, no transport); they stay when a
received report is purged at the end of its treaty's retention, as
statistics of seizures do.

The monthly rollup
------------------
A yearly breakdown over a million detentions reads over a million rows,
and on SQLite the scan through the time index and the sort for the
``GROUP BY`` took 2 to 6 seconds (``EXPLAIN QUERY PLAN``: ``SEARCH ...
USING INDEX ix_node_ipr_stats_time`` then ``USE TEMP B-TREE FOR GROUP
BY``; without the index, a full scan, still over 2 seconds). So every
change also adds to ``node_ipr_stats_monthly`` what it added to and takes
away what it removed from the rows, per UTC month and every dimension, in
the same transaction (:func:`replace`; an upsert per group, in key order so
concurrent writers on PostgreSQL lock groups in one order; a group left
with no rows is deleted, so a breakdown never shows an empty group). The
flags and both weightings of articles and value (all rights, first right
only) are summed there, so a query over whole months reads the rollup
alone: at most one row per month and combination of dimensions. A period
that starts or ends inside a month reads those partial months from the
rows (an index range of at most two months) and the whole months between
from the rollup, and adds them up. The rollup's key begins with the month
and on SQLite is the order the rows are stored in (``WITHOUT ROWID``): a
period is read as one range, where a second index on the month cost a
look-up per row (3 to 5 times slower in ``EXPLAIN``-guided trials at 1M).
The partial months come from an index on the detention time that holds
every column a breakdown reads (``ix_node_ipr_stats_period``), so they
too are one range read: half a month at 1M detentions took 0.8 s through
a plain time index and its look-ups, 0.035 s from the covering one
(SQLite, same run).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Connection, Table, delete, func, insert, literal, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite

from intelshare import errors
from intelshare.db import Statement
from intelshare.v1 import detention_pb2, ipr_service_pb2, recordation_pb2
from node.storage import tables as t

D = detention_pb2
S = ipr_service_pb2

OWN: Final = "own"
REPORTED: Final = "reported"

#: Dimension -> column of node_ipr_stats.
COLUMNS: Final = {
    S.STATISTICS_DIMENSION_MONTH: "month",
    S.STATISTICS_DIMENSION_COUNTRY: "country",
    S.STATISTICS_DIMENSION_CATEGORY: "category",
    S.STATISTICS_DIMENSION_PROCEDURE: "procedure",
    S.STATISTICS_DIMENSION_PARTNER: "partner",
    S.STATISTICS_DIMENSION_RIGHT: "right_type",
}
_NANOS: Final = 1_000_000_000


def _label(enum_type: Any, prefix: str, value: int, default: str) -> str:
    if not value:
        return default
    try:
        return str(enum_type.Name(value)).removeprefix(prefix).lower()
    except ValueError:
        return default


def category_label(category: int) -> str:
    return _label(D.GoodsCategory, "GOODS_CATEGORY_", category, "other")


def procedure_label(procedure: int) -> str:
    return _label(D.DetentionProcedure, "DETENTION_PROCEDURE_", procedure, "unspecified")


def right_label(right: int) -> str:
    return _label(recordation_pb2.RightType, "RIGHT_TYPE_", right, "unspecified")


@dataclass(frozen=True)
class Source:
    """What a detention or report contributes: its dimensions and its goods."""

    source: str
    source_id: str
    partner: str
    detain_ms: int
    country: str
    procedure: str
    rights: Sequence[str]
    goods: Sequence[D.DetainedGoods]


def rows_of(src: Source) -> list[dict[str, Any]]:
    """The statistics rows of one source (see the module docstring for the flags)."""
    month = datetime.fromtimestamp(src.detain_ms / 1000, UTC).strftime("%Y-%m")
    groups: dict[tuple[str, str], list[int]] = {}
    for line in src.goods:
        key = (category_label(line.category), line.estimated_value.currency_code[:3])
        acc = groups.setdefault(key, [0, 0, 0])
        acc[0] += max(0, line.quantity)
        acc[1] += line.estimated_value.units
        acc[2] += line.estimated_value.nanos
    if not groups:
        groups[("other", "")] = [0, 0, 0]
    rights = sorted(dict.fromkeys(src.rights)) or ["unspecified"]
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, ...]] = set()

    def first(*key: str) -> int:
        if key in seen:
            return 0
        seen.add(key)
        return 1

    for right in rights:
        for (category, currency), (articles, units, nanos) in sorted(groups.items()):
            units += nanos // _NANOS
            nanos %= _NANOS
            rows.append(
                {
                    "source": src.source,
                    "source_id": src.source_id,
                    "line": len(rows),
                    "partner": src.partner,
                    "month": month,
                    "detain_ms": src.detain_ms,
                    "country": (src.country or "unknown")[:8],
                    "category": category,
                    "procedure": src.procedure,
                    "right_type": right,
                    "currency": currency,
                    "articles": articles,
                    "value_units": units,
                    "value_nanos": nanos,
                    "f0": first("0"),
                    "fc": first("c", category),
                    "fr": first("r", right),
                    "fcr": first("cr", category, right),
                    "r1": 1 if right == rights[0] else 0,
                }
            )
    return rows


#: The key of a rollup row: the month and every dimension.
ROLLUP_KEYS: Final = (
    "month",
    "source",
    "partner",
    "country",
    "category",
    "procedure",
    "right_type",
    "currency",
)
#: The sums of a rollup row, each from a row of node_ipr_stats (see :func:`_sums`).
ROLLUP_SUMS: Final = (
    "rows",
    "f0",
    "fc",
    "fr",
    "fcr",
    "articles",
    "articles_r1",
    "value_units",
    "value_units_r1",
    "value_nanos",
    "value_nanos_r1",
)


def _sums(row: Any) -> list[int]:
    """What one row of node_ipr_stats adds to its rollup row, in :data:`ROLLUP_SUMS` order."""
    r1 = int(row["r1"])
    return [
        1,
        int(row["f0"]),
        int(row["fc"]),
        int(row["fr"]),
        int(row["fcr"]),
        int(row["articles"]),
        int(row["articles"]) * r1,
        int(row["value_units"]),
        int(row["value_units"]) * r1,
        int(row["value_nanos"]),
        int(row["value_nanos"]) * r1,
    ]


def _upsert_form(insert_of: Callable[[Table], Any]) -> Any:
    m = t.ipr_stats_monthly
    statement = insert_of(m)
    return statement.on_conflict_do_update(
        index_elements=list(ROLLUP_KEYS),
        set_={c: m.c[c] + statement.excluded[c] for c in ROLLUP_SUMS},
    )


#: add each group's deltas to its month's row, creating the row if it has none
_UPSERT = Statement(postgresql=_upsert_form(postgresql.insert), sqlite=_upsert_form(sqlite.insert))


def _roll(conn: Connection, old: Sequence[Any], new: Sequence[Any]) -> None:
    """Take ``old`` rows out of the rollup and add ``new`` ones, in one pass per group."""
    deltas: dict[tuple[str, ...], list[int]] = {}
    for sign, rows in ((-1, old), (1, new)):
        for row in rows:
            acc = deltas.setdefault(tuple(row[k] for k in ROLLUP_KEYS), [0] * len(ROLLUP_SUMS))
            for i, v in enumerate(_sums(row)):
                acc[i] += sign * v
    changed = sorted((k, v) for k, v in deltas.items() if any(v))
    if not changed:
        return
    _UPSERT.execute(
        conn,
        [
            dict(zip(ROLLUP_KEYS, k, strict=True)) | dict(zip(ROLLUP_SUMS, v, strict=True))
            for k, v in changed
        ],
    )
    emptied = [k for k, v in changed if v[0] < 0]
    if emptied:
        m = t.ipr_stats_monthly
        conn.execute(
            delete(m).where(m.c.rows <= 0, tuple_(*(m.c[c] for c in ROLLUP_KEYS)).in_(emptied))
        )


def replace(conn: Connection, src: Source) -> None:
    """Write the rows of ``src`` in place of what it contributed before (and roll them up)."""
    s = t.ipr_stats
    mine = (s.c.source == src.source, s.c.source_id == src.source_id)
    old = [r._mapping for r in conn.execute(select(s).where(*mine))]
    new = rows_of(src)
    if old:
        conn.execute(delete(s).where(*mine))
    conn.execute(insert(s), new)
    _roll(conn, old, new)


def rebuild_rollup(conn: Connection) -> None:
    """Fill ``node_ipr_stats_monthly`` from the rows, from scratch (bulk loads, repairs)."""
    s = t.ipr_stats
    m = t.ipr_stats_monthly
    keys = [s.c[k] for k in ROLLUP_KEYS]
    conn.execute(delete(m))
    conn.execute(
        insert(m).from_select(
            [*ROLLUP_KEYS, *ROLLUP_SUMS],
            select(
                *keys,
                func.count(),
                func.sum(s.c.f0),
                func.sum(s.c.fc),
                func.sum(s.c.fr),
                func.sum(s.c.fcr),
                func.sum(s.c.articles),
                func.sum(s.c.articles * s.c.r1),
                func.sum(s.c.value_units),
                func.sum(s.c.value_units * s.c.r1),
                func.sum(s.c.value_nanos),
                func.sum(s.c.value_nanos * s.c.r1),
            ).group_by(*keys),
        )
    )


def _flag(dims: Sequence[str]) -> str:
    by_category = "category" in dims
    by_right = "right_type" in dims
    if by_category and by_right:
        return "fcr"
    if by_category:
        return "fc"
    if by_right:
        return "fr"
    return "f0"


Groups = list[tuple[tuple[str, ...], int, int, dict[str, int]]]


def _month(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m")


def _month_start_ms(ms: int) -> int:
    """The first instant of the UTC month ``ms`` falls in."""
    day = datetime.fromtimestamp(ms / 1000, UTC)
    return int(day.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000)


def _next_month_start_ms(ms: int) -> int:
    day = datetime.fromtimestamp(_month_start_ms(ms) / 1000, UTC)
    following = day.replace(year=day.year + day.month // 12, month=day.month % 12 + 1)
    return int(following.timestamp() * 1000)


def _group(
    conn: Connection,
    dims: Sequence[str],
    *,
    start_ms: int | None,
    end_ms: int | None,
    sources: Sequence[str],
    rollup: bool = True,
) -> Groups:
    """(keys, detentions, articles, value in nanos by currency) per group, keys sorted.

    Whole UTC months of the period come from the rollup, partial months at
    either end from the rows (``rollup=False``: everything from the rows,
    the way it was done before the rollup; the bench compares both).
    """
    if not rollup:
        return _merged(_from_rows(conn, dims, start_ms, end_ms, sources))
    # [first, last) is the span of whole months inside the period, as instants
    first = start_ms if start_ms is None or start_ms == _month_start_ms(start_ms) else None
    if start_ms is not None and first is None:
        first = _next_month_start_ms(start_ms)
    last = end_ms if end_ms is None else _month_start_ms(end_ms)
    if first is not None and last is not None and first >= last:
        return _merged(_from_rows(conn, dims, start_ms, end_ms, sources))
    parts = list(_from_rollup(conn, dims, first, last, sources))
    if start_ms is not None and first is not None and start_ms < first:
        parts.extend(_from_rows(conn, dims, start_ms, first, sources))
    if end_ms is not None and last is not None and last < end_ms:
        parts.extend(_from_rows(conn, dims, last, end_ms, sources))
    return _merged(parts)


def _from_rollup(
    conn: Connection,
    dims: Sequence[str],
    first_ms: int | None,
    last_ms: int | None,
    sources: Sequence[str],
) -> Any:
    """The sums of whole months [first_ms, last_ms) from node_ipr_stats_monthly."""
    m = t.ipr_stats_monthly
    by_right = "right_type" in dims
    cols = [m.c[d] for d in dims]
    query = select(
        *cols,
        m.c.currency,
        func.sum(m.c[_flag(dims)]).label("n"),
        func.sum(m.c.articles if by_right else m.c.articles_r1).label("articles"),
        func.sum(m.c.value_units if by_right else m.c.value_units_r1).label("units"),
        func.sum(m.c.value_nanos if by_right else m.c.value_nanos_r1).label("nanos"),
    )
    if len(sources) == 1:
        query = query.where(m.c.source == sources[0])
    if first_ms is not None:
        query = query.where(m.c.month >= _month(first_ms))
    if last_ms is not None:
        query = query.where(m.c.month < _month(last_ms))
    return conn.execute(query.group_by(*cols, m.c.currency))


def _from_rows(
    conn: Connection,
    dims: Sequence[str],
    start_ms: int | None,
    end_ms: int | None,
    sources: Sequence[str],
) -> Any:
    """The sums of [start_ms, end_ms) from the rows of node_ipr_stats."""
    s = t.ipr_stats
    flag = s.c[_flag(dims)]
    weight = literal(1) if "right_type" in dims else s.c.r1
    cols = [s.c[d] for d in dims]
    query = select(
        *cols,
        s.c.currency,
        func.sum(flag).label("n"),
        func.sum(s.c.articles * weight).label("articles"),
        # units and billionths summed apart: a sum of values in nanos overflows 64 bits
        func.sum(s.c.value_units * weight).label("units"),
        func.sum(s.c.value_nanos * weight).label("nanos"),
    )
    if len(sources) == 1:
        query = query.where(s.c.source == sources[0])
    if start_ms is not None:
        query = query.where(s.c.detain_ms >= start_ms)
    if end_ms is not None:
        query = query.where(s.c.detain_ms < end_ms)
    return conn.execute(query.group_by(*cols, s.c.currency))


def _merged(rows: Iterable[Any]) -> Groups:
    """Rows of sums (dimension columns, currency, n, articles, units, nanos) added by group."""
    merged: dict[tuple[str, ...], list[Any]] = {}
    for row in rows:
        keys = tuple(str(v) for v in row[:-5])
        acc = merged.setdefault(keys, [0, 0, {}])
        acc[0] += int(row.n or 0)
        acc[1] += int(row.articles or 0)
        value = int(row.units or 0) * _NANOS + int(row.nanos or 0)
        if row.currency and value:
            acc[2][row.currency] = acc[2].get(row.currency, 0) + value
    return [(k, v[0], v[1], v[2]) for k, v in sorted(merged.items())]


def _row(
    keys: Sequence[str], detentions: int, articles: int, value: dict[str, int]
) -> S.EnforcementStatisticsRow:
    return S.EnforcementStatisticsRow(
        keys=list(keys),
        detentions=detentions,
        articles=articles,
        estimated_value=[
            D.MonetaryValue(currency_code=c, units=n // _NANOS, nanos=n % _NANOS)
            for c, n in sorted(value.items())
        ],
    )


def statistics(
    conn: Connection, request: S.GetEnforcementStatisticsRequest, *, rollup: bool = True
) -> S.EnforcementStatistics:
    """GetEnforcementStatistics, computed by the database (``rollup``: see :func:`_group`)."""
    dims: list[str] = []
    for i, d in enumerate(request.group_by):
        if d not in COLUMNS:
            raise errors.FieldInvalid(
                f"group_by[{i}] is not a dimension",
                violations={
                    f"group_by[{i}]": "month, country, category, procedure, partner, right"
                },
            )
        if COLUMNS[d] in dims:
            raise errors.FieldInvalid(
                f"group_by names {COLUMNS[d]} twice", violations={f"group_by[{i}]": "repeated"}
            )
        dims.append(COLUMNS[d])
    start = request.start_time.seconds * 1000 if request.HasField("start_time") else None
    end = request.end_time.seconds * 1000 if request.HasField("end_time") else None
    if start is not None and end is not None and end <= start:
        raise errors.FieldInvalid(
            "end_time must be after start_time", violations={"end_time": "after start_time"}
        )
    sources = {
        S.STATISTICS_SOURCE_OWN: [OWN],
        S.STATISTICS_SOURCE_REPORTED: [REPORTED],
    }.get(request.source, [OWN, REPORTED])
    groups = _group(conn, dims, start_ms=start, end_ms=end, sources=sources, rollup=rollup)
    out = S.EnforcementStatistics(group_by=list(request.group_by))
    out.rows.extend(_row(*g) for g in groups)
    if "category" in dims or "right_type" in dims:
        total = _group(conn, [], start_ms=start, end_ms=end, sources=sources, rollup=rollup)
        out.total.CopyFrom(_row(*total[0]) if total else _row([], 0, 0, {}))
    else:
        value: dict[str, int] = {}
        for _k, _n, _a, v in groups:
            for c, n in v.items():
                value[c] = value.get(c, 0) + n
        out.total.CopyFrom(_row([], sum(g[1] for g in groups), sum(g[2] for g in groups), value))
    return out
