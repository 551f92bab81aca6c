"""The criteria language of risk profiles: parse, validate strictly, write back canonically.

Criteria are a JSON object with exactly one key, ``all_of`` or ``any_of``,
whose value is a non-empty list of conditions. A condition is an object
with exactly one key: a nested ``all_of`` / ``any_of`` group, or one of the
fields of :data:`FIELDS`. Set fields take a string or a non-empty list of
strings (any one of them may match); bound fields take a number::

    {"all_of": [
        {"hs_prefix": "3004"},
        {"origin_country": ["IN", "CN"]},
        {"any_of": [{"loading_port": "INNSA"}, {"value_per_kg_below": 2.5}]}
    ]}

Values must be written in their canonical form (upper-case country and
port codes, digits-only HS prefixes) so that the JSON Schema in
``docs/risk-criteria.schema.json`` and this parser agree; party identifiers
and GTINs are validated with their check digits and stored as the keys of
:mod:`intelshare.identifiers`. Everything wrong in the input is reported at
once, each problem under its JSON path (``criteria.all_of[2].hs_prefix``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from intelshare import identifiers
from intelshare.errors import FieldInvalid, InvalidArgument

GROUPS = ("all_of", "any_of")

#: Transport modes by name, with the codes of the EU customs data model (box 25/26).
TRANSPORT_MODES: dict[str, str] = {
    "1": "sea",
    "2": "rail",
    "3": "road",
    "4": "air",
    "5": "post",
    "7": "fixed_installation",
    "8": "inland_waterway",
    "9": "own_propulsion",
}

#: Party identifier schemes a consignor / consignee condition may name.
PARTY_SCHEMES = ("eori", "vat", "company")

# Limits on one profile's criteria (the schema states the per-list ones; the
# parser also enforces the depth and the total of conditions).
MAX_DEPTH = 5
MAX_CHILDREN = 50
MAX_CONDITIONS = 200
MAX_VALUES = 1000
MAX_VALUE_PER_KG = 1e12
MAX_QUANTITY = 1e15

_HS_PREFIX = re.compile(r"[0-9]{2,6}")
_LOCODE = re.compile(r"([A-Z]{2})[A-Z2-9]{3}")
_OWNER_PREFIX = re.compile(r"[A-Z]{3}[UJZ]")
_GTIN = re.compile(r"[0-9]{8}|[0-9]{12,14}")


class _Problem(ValueError):
    """One value is wrong; the parser files it under the value's path."""


def _hs_prefix(value: str) -> str:
    if not _HS_PREFIX.fullmatch(value):
        raise _Problem(f"{value!r} is not an HS code prefix (2 to 6 digits)")
    return value


def _country(value: str) -> str:
    if value not in identifiers.countries():
        raise _Problem(f"{value!r} is not an ISO 3166-1 alpha-2 country code (upper case)")
    return value


def _port(value: str) -> str:
    found = _LOCODE.fullmatch(value)
    if found is None or found.group(1) not in identifiers.countries():
        raise _Problem(f"{value!r} is not a UN/LOCODE (country code and 3 letters, e.g. NLRTM)")
    return value


def _mode(value: str) -> str:
    if value not in TRANSPORT_MODES.values():
        names = ", ".join(TRANSPORT_MODES.values())
        raise _Problem(f"{value!r} is not a transport mode ({names})")
    return value


def _party(value: str) -> str:
    scheme = value.partition(":")[0]
    if scheme not in PARTY_SCHEMES:
        raise _Problem(
            f"{value!r} is not a party identifier "
            "(eori:..., vat:... or company:NAME, the scheme in lower case)"
        )
    try:
        return identifiers.parse_key(value, schemes=PARTY_SCHEMES)
    except InvalidArgument as exc:
        raise _Problem("; ".join(exc.violations.values())) from None


def _owner_prefix(value: str) -> str:
    if not _OWNER_PREFIX.fullmatch(value):
        raise _Problem(
            f"{value!r} is not a container owner prefix (3 letters and U, J or Z, e.g. MSCU)"
        )
    return value


def _gtin(value: str) -> str:
    if not _GTIN.fullmatch(value):
        raise _Problem(f"{value!r} is not a GTIN (8, 12, 13 or 14 digits)")
    try:
        return identifiers.gtin(value)
    except InvalidArgument as exc:
        raise _Problem("; ".join(exc.violations.values())) from None


#: Set fields: the condition holds when the declaration's value is one of the listed ones.
SET_FIELDS: dict[str, Callable[[str], str]] = {
    "hs_prefix": _hs_prefix,
    "origin_country": _country,
    "dispatch_country": _country,
    "loading_port": _port,
    "discharge_port": _port,
    "transport_mode": _mode,
    "consignor": _party,
    "consignee": _party,
    "container_owner_prefix": _owner_prefix,
    "gtin": _gtin,
}

#: Bound fields: (lowest allowed bound, whether the bound may equal it, highest bound).
BOUND_FIELDS: dict[str, tuple[float, bool, float]] = {
    "value_per_kg_below": (0.0, False, MAX_VALUE_PER_KG),
    "quantity_above": (0.0, True, MAX_QUANTITY),
}

#: Every condition field, in the order of the documentation.
FIELDS: tuple[str, ...] = (*SET_FIELDS, *BOUND_FIELDS)


@dataclass(frozen=True, slots=True)
class Condition:
    """A leaf: one field tested against canonical values or a numeric bound."""

    path: str
    field: str
    #: canonical values, sorted and unique (set fields); () for bound fields
    values: tuple[str, ...] = ()
    #: the bound (bound fields); None for set fields
    bound: float | None = None


@dataclass(frozen=True, slots=True)
class Group:
    """``all_of`` (every child holds) or ``any_of`` (at least one holds)."""

    path: str
    op: Literal["all_of", "any_of"]
    children: tuple[Group | Condition, ...]


Node = Group | Condition


def _kind(value: object) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


class _Parser:
    def __init__(self) -> None:
        self.violations: dict[str, str] = {}
        self.conditions = 0

    def problem(self, path: str, what: str) -> None:
        self.violations.setdefault(path, what)

    def group(self, data: object, path: str, depth: int) -> Group | None:
        if not isinstance(data, Mapping):
            self.problem(path, f"must be an object with all_of or any_of, not {_kind(data)}")
            return None
        keys = list(data)
        if len(keys) != 1 or keys[0] not in GROUPS:
            unknown = [k for k in keys if k not in GROUPS]
            if unknown:
                self.problem(f"{path}.{unknown[0]}", "unknown key (a group has all_of or any_of)")
            else:
                self.problem(path, "must have exactly one of all_of or any_of")
            return None
        op: Literal["all_of", "any_of"] = "all_of" if keys[0] == "all_of" else "any_of"
        if depth > MAX_DEPTH:
            self.problem(path, f"groups are nested more than {MAX_DEPTH} deep")
            return None
        items = data[op]
        at = f"{path}.{op}"
        if not isinstance(items, list):
            self.problem(at, f"must be a list of conditions, not {_kind(items)}")
            return None
        if not items:
            self.problem(at, "must list at least one condition")
            return None
        if len(items) > MAX_CHILDREN:
            self.problem(at, f"lists more than {MAX_CHILDREN} conditions")
            return None
        children = [self.condition(item, f"{at}[{i}]", depth) for i, item in enumerate(items)]
        if any(c is None for c in children):
            return None
        return Group(path, op, tuple(c for c in children if c is not None))

    def condition(self, data: object, path: str, depth: int) -> Node | None:
        if not isinstance(data, Mapping):
            self.problem(path, f"must be an object with one condition, not {_kind(data)}")
            return None
        keys = list(data)
        if len(keys) != 1:
            self.problem(path, "must have exactly one key (a field, all_of or any_of)")
            return None
        name = keys[0]
        if name in GROUPS:
            return self.group(data, path, depth + 1)
        at = f"{path}.{name}"
        if name not in FIELDS:
            self.problem(at, f"unknown field (fields: {', '.join(FIELDS)}, all_of, any_of)")
            return None
        self.conditions += 1
        if self.conditions == MAX_CONDITIONS + 1:
            self.problem(at, f"the criteria have more than {MAX_CONDITIONS} conditions")
        if name in BOUND_FIELDS:
            return self.bound(name, data[name], at)
        return self.values(name, data[name], at)

    def values(self, name: str, operand: object, at: str) -> Condition | None:
        listed: Sequence[object]
        if isinstance(operand, str):
            listed, paths = [operand], [at]
        elif isinstance(operand, list):
            if not operand:
                self.problem(at, "must list at least one value")
                return None
            if len(operand) > MAX_VALUES:
                self.problem(at, f"lists more than {MAX_VALUES} values")
                return None
            listed, paths = operand, [f"{at}[{i}]" for i in range(len(operand))]
        else:
            self.problem(at, f"must be a string or a list of strings, not {_kind(operand)}")
            return None
        canonical: set[str] = set()
        ok = True
        for value, path in zip(listed, paths, strict=True):
            if not isinstance(value, str):
                self.problem(path, f"must be a string, not {_kind(value)}")
                ok = False
                continue
            try:
                canonical.add(SET_FIELDS[name](value))
            except _Problem as exc:
                self.problem(path, str(exc))
                ok = False
        return Condition(at, name, values=tuple(sorted(canonical))) if ok else None

    def bound(self, name: str, operand: object, at: str) -> Condition | None:
        low, inclusive, high = BOUND_FIELDS[name]
        if isinstance(operand, bool) or not isinstance(operand, int | float):
            self.problem(at, f"must be a number, not {_kind(operand)}")
            return None
        number = float(operand)
        if not math.isfinite(number):
            self.problem(at, "must be a finite number")
            return None
        if number < low or (number == low and not inclusive) or number > high:
            lower = f"at least {low:g}" if inclusive else f"more than {low:g}"
            self.problem(at, f"must be {lower} and at most {high:g}")
            return None
        return Condition(at, name, bound=number)


def parse_criteria(data: object, path: str = "criteria") -> Group:
    """The criteria in ``data`` (parsed JSON), validated; InvalidArgument naming every bad path."""
    parser = _Parser()
    root = parser.group(data, path, 1)
    if parser.violations or root is None:
        first, what = next(iter(parser.violations.items()))
        more = len(parser.violations) - 1
        tail = f" (and {more} more)" if more else ""
        raise FieldInvalid(
            f"the risk criteria are invalid: {first}: {what}{tail}", violations=parser.violations
        )
    return root


def to_data(node: Node) -> dict[str, Any]:
    """The canonical JSON form of parsed criteria (set values always as sorted lists)."""
    if isinstance(node, Group):
        return {node.op: [to_data(child) for child in node.children]}
    if node.bound is not None:
        return {node.field: node.bound}
    return {node.field: list(node.values)}


def conditions(node: Node) -> list[Condition]:
    """Every condition of ``node``, in document order."""
    if isinstance(node, Condition):
        return [node]
    return [leaf for child in node.children for leaf in conditions(child)]
