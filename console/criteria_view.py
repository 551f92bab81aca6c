"""A risk profile's criteria as sentences an officer reads, not JSON.

The criteria language (docs/screening.md) is a tree of ``all_of`` /
``any_of`` groups over field conditions. :func:`readable` turns it into
the same tree of :class:`Group` and plain sentences ("HS code starts with
3004", "country of origin is IN or CN"), which a recursive template macro
lists. A condition the console does not know (a newer node) is shown as
its field and value rather than dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.struct_pb2 import Struct

#: field -> (what is tested, how a set of values joins it).
_SETS = {
    "hs_prefix": "HS code starts with",
    "origin_country": "country of origin is",
    "dispatch_country": "country of dispatch is",
    "loading_port": "port of loading is",
    "discharge_port": "port of discharge is",
    "transport_mode": "mode of transport at the border is",
    "consignor": "consignor is",
    "consignee": "consignee is",
    "container_owner_prefix": "a container number starts with",
    "gtin": "a GTIN of the goods is",
}
_BOUNDS = {
    "value_per_kg_below": "statistical value per kg is below",
    "quantity_above": "quantity in supplementary units is above",
}


@dataclass
class Group:
    """``all`` (every item holds) or ``any`` (at least one does)."""

    mode: str
    items: list[Group | str] = field(default_factory=list)

    @property
    def heading(self) -> str:
        return "All of these hold:" if self.mode == "all" else "At least one of these holds:"


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _values(value: Any) -> str:
    items = [str(v) for v in value] if isinstance(value, list) else [str(value)]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]


def _condition(condition: Any) -> Group | str:
    if not isinstance(condition, dict) or len(condition) != 1:
        return f"(not a condition: {condition!r})"
    ((name, value),) = condition.items()
    if name in ("all_of", "any_of"):
        return _group(name, value)
    if name in _SETS:
        return f"{_SETS[name]} {_values(value)}"
    if name in _BOUNDS:
        return f"{_BOUNDS[name]} {_number(value)}"
    return f"{name}: {_values(value)}"


def _group(name: str, conditions: Any) -> Group:
    group = Group("all" if name == "all_of" else "any")
    for c in conditions if isinstance(conditions, list) else [conditions]:
        group.items.append(_condition(c))
    return group


def readable(criteria: Struct) -> Group | None:
    """The criteria as a tree of groups and sentences; None when there are none (withheld)."""
    data = MessageToDict(criteria)
    if not data:
        return None
    if len(data) == 1:
        ((name, value),) = data.items()
        if name in ("all_of", "any_of"):
            return _group(name, value)
    return Group("all", [_condition({k: v}) for k, v in sorted(data.items())])
