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
carries, plus the evaluation of the candidate profiles only. Numeric bounds
are never indexed; they are computed for the candidates that test them.

The index is immutable: when a profile is added, changed or withdrawn, build
a new matcher (10,000 profiles take well under a second, see
``docs/screening.md``) and swap it in; a screening in progress keeps the one
it started with.
"""

from __future__ import annotations

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

_SINGLE = ("origin_country", "dispatch_country", "loading_port", "discharge_port", "transport_mode")


class IndexedMatcher:
    """Profiles inverted by the values their conditions name; only candidates are evaluated."""

    def __init__(self, profiles: Iterable[Profile], watch: WatchList | None = None) -> None:
        self.profiles = tuple(profiles)
        self.watch = _watch(watch)
        #: field -> value -> ids of the conditions that name it
        self._values: dict[str, dict[str, list[int]]] = {f: {} for f in (*_COST, "hs_prefix")}
        #: id(condition) -> condition id, for the profiles' own Condition objects (one object
        #: shared by two profiles gets the later id; both name the same values, so either does)
        self._ids: dict[int, int] = {}
        self._bounds: set[int] = set()
        #: condition id -> positions of the profiles it is a key condition of
        self._keyed: dict[int, list[int]] = {}
        #: positions of the profiles with no indexable key: always candidates
        self.unindexed: tuple[int, ...] = ()
        unindexed = []
        for position, profile in enumerate(self.profiles):
            key = self._add(profile.criteria)
            if key is None:
                unindexed.append(position)
                continue
            for condition_id in key[1]:
                self._keyed.setdefault(condition_id, []).append(position)
        self.unindexed = tuple(unindexed)

    def _add(self, node: Node) -> tuple[int, list[int]] | None:
        """Index ``node``'s conditions; its key (cost, condition ids), None if it has none."""
        if isinstance(node, Condition):
            condition_id = len(self._ids)
            self._ids[id(node)] = condition_id
            if node.bound is not None:
                self._bounds.add(condition_id)
                return None
            index = self._values[node.field]
            for value in node.values:
                index.setdefault(value, []).append(condition_id)
            if node.field == "hs_prefix":
                cost = sum(_HS_COST[len(v)] for v in node.values)
            else:
                cost = _COST[node.field] * len(node.values)
            return cost, [condition_id]
        keys = [self._add(child) for child in node.children]  # index every child
        if node.op == "all_of":
            indexable = [k for k in keys if k is not None]
            return min(indexable, key=lambda k: k[0]) if indexable else None
        if any(k is None for k in keys):
            return None
        return sum(k[0] for k in keys if k), [c for k in keys if k for c in k[1]]

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

        candidates = set(self.unindexed)
        keyed = self._keyed
        for condition_id in hits:
            candidates.update(keyed.get(condition_id, ()))

        ids, bounds = self._ids, self._bounds

        def truth(condition: Condition) -> tuple[str, ...]:
            condition_id = ids[id(condition)]
            if condition_id in bounds:
                return _bound(condition, d)
            return tuple(sorted(hits.get(condition_id, ())))

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
