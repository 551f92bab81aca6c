"""Screening a declaration against risk profiles and a watch list: indexed, and the naive reference.

Both matchers take the profiles in force (:class:`Profile`: an id and parsed
criteria) and a watch list (identifier key -> references of the records
whose subject it is: alerts, recordations, ...), and answer each declaration
with a :class:`Screening`: every profile that matched with every reason,
and every identifier of the declaration that is on the watch list. Their
answers are equal for every input (``tests/node/targeting`` checks it with
random profiles and declarations); only the cost differs.

:class:`NaiveMatcher` tests every profile on every declaration and compares
every watched key with every identifier: the reference, and the baseline of
``bench/screening.py``.

:class:`IndexedMatcher` inverts the profiles once (the package docstring
has the design): a dict per field from each value a condition names to the
conditions naming it (HS prefixes are looked up as the 2- to 6-digit
prefixes of the declaration's code), and from each *key condition* to the
profiles it is a key of. A declaration then costs one lookup per value it
carries, plus the evaluation of the candidate profiles only. A numeric
bound is computed for the candidates that test it; it is looked up (by
bisection over the sorted bounds) only where it is a profile's key: a
profile of bounds alone, or an ``any_of`` with a bound branch.

The index is immutable: when a profile is added, changed or withdrawn, build
a new matcher (10,000 profiles take well under a second, see
``docs/screening.md``) and swap it in; a screening in progress keeps the one
it started with.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from node.targeting.criteria import Condition, Group, Node
from node.targeting.declarations import Declaration

#: Watch list: identifier key -> references of the records whose subject it is.
WatchList = Mapping[str, Iterable[str]]


@dataclass(frozen=True, slots=True)
class Profile:
    """A risk profile in force: its id and its parsed criteria."""

    id: str
    criteria: Group


@dataclass(frozen=True, slots=True)
class Reason:
    """One condition that held: its path in the criteria, its field, the values that matched.

    ``matched`` holds the profile's values that the declaration matched
    (sorted), or for a numeric bound the declaration's own figure.
    """

    path: str
    field: str
    matched: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ProfileHit:
    """A profile that matched, with every condition that held in the branches that made it."""

    profile_id: str
    reasons: tuple[Reason, ...]


@dataclass(frozen=True, slots=True)
class SubjectHit:
    """An identifier of the declaration (in ``role``) that the watch list names."""

    role: str
    key: str
    records: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Screening:
    """The answer for one declaration."""

    reference: str
    profiles: tuple[ProfileHit, ...] = ()
    subjects: tuple[SubjectHit, ...] = ()

    @property
    def targeted(self) -> bool:
        return bool(self.profiles or self.subjects)


Truth = Callable[[Condition], tuple[str, ...]]


def _figure(value: float) -> str:
    return f"{value:.6g}"


def _bound(condition: Condition, declaration: Declaration) -> tuple[str, ...]:
    """The declaration's figure if ``condition`` (a bound field) holds, else ()."""
    assert condition.bound is not None
    if condition.field == "value_per_kg_below":
        figure = declaration.value_per_kg
        held = figure is not None and figure < condition.bound
    else:
        figure = declaration.quantity
        held = figure is not None and figure > condition.bound
    return (_figure(figure),) if held and figure is not None else ()


def explain(node: Node, truth: Truth) -> list[Reason] | None:
    """The reasons ``node`` holds (every held condition in the branches that hold), or None.

    ``truth`` gives the values a condition matched, () when it does not hold.
    An ``any_of`` reports every child that holds, not only the first.
    """
    if isinstance(node, Condition):
        matched = truth(node)
        return [Reason(node.path, node.field, matched)] if matched else None
    reasons: list[Reason] = []
    held = False
    for child in node.children:
        got = explain(child, truth)
        if got is None:
            if node.op == "all_of":
                return None
            continue
        held = True
        reasons += got
    return reasons if held else None


def _watch(watch: WatchList | None) -> dict[str, tuple[str, ...]]:
    return {key: tuple(dict.fromkeys(refs)) for key, refs in (watch or {}).items()}


# --- the reference -----------------------------------------------------------------------------


def direct_truth(condition: Condition, declaration: Declaration) -> tuple[str, ...]:
    """The values of ``condition`` that ``declaration`` matches, tested directly."""
    field, values, d = condition.field, condition.values, declaration
    if condition.bound is not None:
        return _bound(condition, d)
    if field == "hs_prefix":
        return tuple(v for v in values if d.hs_code.startswith(v))
    if field in ("consignor", "consignee"):
        party = d.consignor if field == "consignor" else d.consignee
        return tuple(v for v in values if v in party)
    if field == "container_owner_prefix":
        return tuple(v for v in values if any(c[:4] == v for c in d.containers))
    if field == "gtin":
        return tuple(v for v in values if v in d.gtins)
    own: str = getattr(d, field)
    return tuple(v for v in values if v == own)


class NaiveMatcher:
    """Every profile tested on every declaration; each watched key compared with each identifier."""

    def __init__(self, profiles: Iterable[Profile], watch: WatchList | None = None) -> None:
        self.profiles = tuple(profiles)
        self.watch = list(_watch(watch).items())

    def screen(self, declaration: Declaration) -> Screening:
        hits = []
        for profile in self.profiles:
            reasons = explain(profile.criteria, lambda c: direct_truth(c, declaration))
            if reasons is not None:
                hits.append(ProfileHit(profile.id, tuple(reasons)))
        subjects = []
        for role, key in declaration.identifier_keys():
            for watched, records in self.watch:
                if watched == key:
                    subjects.append(SubjectHit(role, key, records))
        return Screening(declaration.reference, tuple(hits), tuple(subjects))


# --- the index ---------------------------------------------------------------------------------

#: How unselective one value of a field is (lower: fewer declarations carry it). The most
#: selective child of an all_of becomes its key, so a profile "HS 3004 from IN by sea" is
#: looked up by its HS prefix, not by "sea".
_COST = {
    "gtin": 1,
    "consignor": 1,
    "consignee": 1,
    "container_owner_prefix": 2,
    "loading_port": 8,
    "discharge_port": 8,
    "origin_country": 16,
    "dispatch_country": 16,
    "transport_mode": 64,
}
_HS_COST = {2: 32, 3: 12, 4: 4, 5: 2, 6: 1}
#: a bound holds for a range of declarations: a key only where nothing else can be
_BOUND_COST = 1024

_BOUND_FIELDS = ("quantity_above", "value_per_kg_below")
_SINGLE = ("origin_country", "dispatch_country", "loading_port", "discharge_port", "transport_mode")


class IndexedMatcher:
    """Profiles inverted by the values their conditions name; only candidates are evaluated."""

    def __init__(self, profiles: Iterable[Profile], watch: WatchList | None = None) -> None:
        self.profiles = tuple(profiles)
        self.watch = _watch(watch)
        #: every condition by id; id(condition) -> its id (a Condition object shared by two
        #: profiles has one id)
        self._conditions: list[Condition] = []
        self._ids: dict[int, int] = {}
        #: condition id -> positions of the profiles it is a key condition of
        self._keyed: dict[int, list[int]] = {}
        #: field -> value -> the key conditions that name it (only keys are looked up: the
        #: other conditions of a candidate are tested directly)
        self._values: dict[str, dict[str, list[int]]] = {f: {} for f in (*_COST, "hs_prefix")}
        #: bound field -> (bounds ascending, their key conditions), searched by bisection
        self._bound_keys: dict[str, tuple[list[float], list[int]]] = {}
        bound_keys: dict[str, list[tuple[float, int]]] = {f: [] for f in _BOUND_FIELDS}
        for position, profile in enumerate(self.profiles):
            for condition_id in self._key(profile.criteria)[1]:
                positions = self._keyed.setdefault(condition_id, [])
                positions.append(position)
                if len(positions) > 1:
                    continue  # a shared condition already indexed
                condition = self._conditions[condition_id]
                if condition.bound is not None:
                    bound_keys[condition.field].append((condition.bound, condition_id))
                    continue
                index = self._values[condition.field]
                for value in condition.values:
                    index.setdefault(value, []).append(condition_id)
        for field, pairs in bound_keys.items():
            pairs.sort()
            self._bound_keys[field] = ([b for b, _ in pairs], [c for _, c in pairs])
        #: how many key conditions are bounds (for the bench's report)
        self.bound_keys = sum(len(pairs) for pairs in bound_keys.values())

    def _key(self, node: Node) -> tuple[int, list[int]]:
        """Number ``node``'s conditions; return its key: (cost, key condition ids).

        A matching ``node`` holds at least one of its key conditions: a condition
        is its own key, an ``all_of`` has the key of its cheapest child, an
        ``any_of`` the keys of all its children.
        """
        if isinstance(node, Condition):
            condition_id = self._ids.get(id(node))
            if condition_id is None:
                condition_id = len(self._conditions)
                self._conditions.append(node)
                self._ids[id(node)] = condition_id
            if node.bound is not None:
                cost = _BOUND_COST
            elif node.field == "hs_prefix":
                cost = sum(_HS_COST[len(v)] for v in node.values)
            else:
                cost = _COST[node.field] * len(node.values)
            return cost, [condition_id]
        keys = [self._key(child) for child in node.children]  # number every child
        if node.op == "all_of":
            return min(keys, key=lambda k: k[0])
        return sum(k[0] for k in keys), [c for k in keys for c in k[1]]

    def screen(self, declaration: Declaration) -> Screening:
        d = declaration
        values = self._values
        hits: dict[int, set[str]] = {}

        def look(field: str, value: str) -> None:
            for condition_id in values[field].get(value, ()):
                hits.setdefault(condition_id, set()).add(value)

        hs = d.hs_code
        for length in range(2, min(6, len(hs)) + 1):
            look("hs_prefix", hs[:length])
        for field in _SINGLE:
            own = getattr(d, field)
            if own:
                look(field, own)
        for key in d.consignor:
            look("consignor", key)
        for key in d.consignee:
            look("consignee", key)
        for container in d.containers:
            look("container_owner_prefix", container[:4])
        for gtin in d.gtins:
            look("gtin", gtin)

        candidates: set[int] = set()
        keyed = self._keyed
        for condition_id in hits:
            candidates.update(keyed.get(condition_id, ()))
        if d.quantity is not None:
            bounds, key_ids = self._bound_keys["quantity_above"]
            for condition_id in key_ids[: bisect_left(bounds, d.quantity)]:  # bound < quantity
                candidates.update(keyed[condition_id])
        per_kg = d.value_per_kg
        if per_kg is not None:
            bounds, key_ids = self._bound_keys["value_per_kg_below"]
            for condition_id in key_ids[bisect_right(bounds, per_kg) :]:  # bound > value per kg
                candidates.update(keyed[condition_id])

        ids, keyed = self._ids, self._keyed

        def truth(condition: Condition) -> tuple[str, ...]:
            condition_id = ids[id(condition)]
            if condition_id in hits:
                return tuple(sorted(hits[condition_id]))
            if condition_id in keyed and condition.bound is None:
                return ()  # a key condition holds exactly when the index found it
            return direct_truth(condition, d)  # the rest of a candidate, tested directly

        matched = []
        for position in sorted(candidates):
            profile = self.profiles[position]
            reasons = explain(profile.criteria, truth)
            if reasons is not None:
                matched.append(ProfileHit(profile.id, tuple(reasons)))
        subjects = []
        if self.watch:
            for role, key in d.identifier_keys():
                records = self.watch.get(key)
                if records is not None:
                    subjects.append(SubjectHit(role, key, records))
        return Screening(d.reference, tuple(matched), tuple(subjects))
