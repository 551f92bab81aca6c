"""A risk profile's criteria as a STIX 2.1 pattern.

The criteria language (docs/screening.md) is a tree of ``all_of`` and
``any_of`` groups over declaration fields, with no negation; STIX
patterning has ``AND``, ``OR`` and parentheses inside one observation
expression, so every profile the node accepts translates. The object the
pattern speaks of is ``intelshare-declaration`` (a declaration line as the
node screens it, documented in our extension's schema):

==========================  ==================================================
criteria                    pattern
==========================  ==================================================
``hs_prefix: [3004]``       ``intelshare-declaration:hs_code LIKE '3004%'``
``origin_country: [IN]``    ``intelshare-declaration:origin_country IN ('IN')``
``consignor: [eori:X]``     ``intelshare-declaration:consignor_eori = 'X'``
``container_owner_prefix``  ``intelshare-declaration:containers[*] LIKE 'MSCU%'``
``gtin``                    ``intelshare-declaration:gtins[*] IN (...)``
``value_per_kg_below: 2.5`` ``intelshare-declaration:value_per_kg < 2.5``
``quantity_above: 10``      ``intelshare-declaration:quantity > 10``
==========================  ==================================================

A criteria document this module does not know (a field added to the
language later) gives ``None``: the export then carries the criteria in
the extension only, and no indicator, rather than a pattern that means
something else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from intelshare.interop.extension import PATTERN_OBJECT

_SETS = ("origin_country", "dispatch_country", "loading_port", "discharge_port", "transport_mode")
_PARTY_KEYS = {"eori": "eori", "vat": "vat", "company": "name"}


def _quote(value: Any) -> str:
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def _values(operand: Any) -> list[str]:
    items = operand if isinstance(operand, list) else [operand]
    return [str(v) for v in items]


def _any(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"


def _number(operand: Any) -> str | None:
    if isinstance(operand, bool) or not isinstance(operand, int | float):
        return None
    return repr(float(operand)) if isinstance(operand, float) else str(operand)


def _condition(key: str, operand: Any) -> str | None:
    p = PATTERN_OBJECT
    if key in ("all_of", "any_of"):
        return _group(key, operand)
    if key == "hs_prefix":
        return _any([f"{p}:hs_code LIKE {_quote(v + '%')}" for v in _values(operand)])
    if key in _SETS:
        return f"{p}:{key} IN ({', '.join(_quote(v) for v in _values(operand))})"
    if key in ("consignor", "consignee"):
        parts = []
        for v in _values(operand):
            scheme, sep, rest = v.partition(":")
            if not sep or scheme not in _PARTY_KEYS:
                return None
            parts.append(f"{p}:{key}_{_PARTY_KEYS[scheme]} = {_quote(rest)}")
        return _any(parts)
    if key == "container_owner_prefix":
        return _any([f"{p}:containers[*] LIKE {_quote(v + '%')}" for v in _values(operand)])
    if key == "gtin":
        return f"{p}:gtins[*] IN ({', '.join(_quote(v) for v in _values(operand))})"
    if key in ("value_per_kg_below", "quantity_above"):
        number = _number(operand)
        if number is None:
            return None
        field, op = ("value_per_kg", "<") if key == "value_per_kg_below" else ("quantity", ">")
        return f"{p}:{field} {op} {number}"
    return None


def _group(key: str, conditions: Any) -> str | None:
    if not isinstance(conditions, list) or not conditions:
        return None
    parts: list[str] = []
    for cond in conditions:
        if not isinstance(cond, Mapping) or len(cond) != 1:
            return None
        ((k, v),) = cond.items()
        part = _condition(str(k), v)
        if part is None:
            return None
        parts.append(part)
    if len(parts) == 1:
        return parts[0]
    return "(" + (" AND " if key == "all_of" else " OR ").join(parts) + ")"


def criteria_pattern(criteria: Mapping[str, Any]) -> str | None:
    """The STIX pattern of ``criteria`` (a criteria document), or None if it has none."""
    if len(criteria) != 1:
        return None
    ((key, conditions),) = criteria.items()
    if key not in ("all_of", "any_of"):
        return None
    body = _group(str(key), conditions)
    return None if body is None else f"[{body}]"
