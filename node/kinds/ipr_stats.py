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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Connection, delete, func, insert, literal, select

from intelshare import errors
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


def replace(conn: Connection, src: Source) -> None:
    """Write the rows of ``src`` in place of what it contributed before."""
    s = t.ipr_stats
    conn.execute(delete(s).where(s.c.source == src.source, s.c.source_id == src.source_id))
    conn.execute(insert(s), rows_of(src))


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


def _group(
    conn: Connection,
    dims: Sequence[str],
    *,
    start_ms: int | None,
    end_ms: int | None,
    sources: Sequence[str],
) -> list[tuple[tuple[str, ...], int, int, dict[str, int]]]:
    """(keys, detentions, articles, value in nanos by currency) per group, keys sorted."""
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
    query = query.group_by(*cols, s.c.currency)
    merged: dict[tuple[str, ...], list[Any]] = {}
    for row in conn.execute(query):
        keys = tuple(str(v) for v in row[: len(dims)])
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
    conn: Connection, request: S.GetEnforcementStatisticsRequest
) -> S.EnforcementStatistics:
    """GetEnforcementStatistics, computed by the database."""
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
    groups = _group(conn, dims, start_ms=start, end_ms=end, sources=sources)
    out = S.EnforcementStatistics(group_by=list(request.group_by))
    out.rows.extend(_row(*g) for g in groups)
    if "category" in dims or "right_type" in dims:
        total = _group(conn, [], start_ms=start, end_ms=end, sources=sources)
        out.total.CopyFrom(_row(*total[0]) if total else _row([], 0, 0, {}))
    else:
        value: dict[str, int] = {}
        for _k, _n, _a, v in groups:
            for c, n in v.items():
                value[c] = value.get(c, 0) + n
        out.total.CopyFrom(_row([], sum(g[1] for g in groups), sum(g[2] for g in groups), value))
    return out
