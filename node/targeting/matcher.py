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
prefixes of the declaration's code), and from each *key* (a condition, or
the pair of two conditions of an ``all_of``, indexed by the pairs of their
values) to the profiles it is a key of. A declaration then costs one lookup per value it
carries, plus the evaluation of the candidate profiles only. A numeric
bound is computed for the candidates that test it; it is looked up (by
bisection over the sorted bounds) only where it is a profile's key: a
profile of bounds alone, or an ``any_of`` with a bound branch.

A key found in an ``all_of`` that also has a bound child (HS 6109 *and*
value per kg below 5) is *guarded* by that bound: the profiles it is the
key of are kept per key sorted by their bound, and a declaration whose
key is found takes only those whose bound holds, by bisection. Without
guards, the profiles that share a popular key (a common HS heading, each
with its own price threshold) were all evaluated for every declaration
carrying it, which made the cost grow with the number of profiles.

The index is immutable: when a profile is added, changed or withdrawn, build
a new matcher (10,000 profiles take well under a second, see
``docs/screening.md``) and swap it in; a screening in progress keeps the one
it started with.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from node.targeting.criteria import Condition, Group, Node
from node.targeting.declarations import Declaration

#: Watch list: identifier key -> references of the records whose subject it is.
WatchList = Mapping[str, Iterable[str]]


@dataclass(frozen=True, slots=True)
class Profile:
    """A risk profile in force: its id and its parsed criteria."""

    id: str
    criteria: Group


# The answers are named tuples, not frozen dataclasses: immutable all the same, and built in
# a quarter of the time (a frozen dataclass sets each field through object.__setattr__), which
# counted once profiles matched often: a match builds a ProfileHit and a Reason per condition.


class Reason(NamedTuple):
    """One condition that held: its path in the criteria, its field, the values that matched.

    ``matched`` holds the profile's values that the declaration matched
    (sorted), or for a numeric bound the declaration's own figure.
    """

    path: str
    field: str
    matched: tuple[str, ...]


class ProfileHit(NamedTuple):
    """A profile that matched, with every condition that held in the branches that made it."""

    profile_id: str
    reasons: tuple[Reason, ...]


class SubjectHit(NamedTuple):
    """An identifier of the declaration (in ``role``) that the watch list names."""

    role: str
    key: str
    records: tuple[str, ...]


class Screening(NamedTuple):
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
#: most value combinations a pair key may index (an all_of of two long lists keeps one key)
_PAIR_MAX = 64

#: a key: (condition id,), or (condition id, condition id) for two children of an all_of
#: that must both hold: looked up as the pair of their values, far more selective than either
Key = tuple[int, ...]
#: a key with the id of a bound condition that holds whenever the keyed branch does, or None
GuardedKey = tuple[Key, int | None]
#: the profiles a key is the guarded key of, per bound field: (bounds ascending, positions)
Guards = dict[str, tuple[list[float], list[int]]]


#: what an index looks a declaration up by: a field, and for HS prefixes the lengths of the
#: prefixes the index holds (an index of 4-digit headings takes one look, not five)
View = tuple[str, tuple[int, ...]]
_HS_LENGTHS = (2, 3, 4, 5, 6)


def _view(field: str, values: Iterable[str]) -> View:
    if field != "hs_prefix":
        return (field, ())
    return (field, tuple(sorted({len(v) for v in values})))


def own_values(field: str, d: Declaration, lengths: tuple[int, ...] = _HS_LENGTHS) -> Sequence[str]:
    """The values of ``d`` that a condition on ``field`` is looked up by (HS: of ``lengths``)."""
    if field == "hs_prefix":
        code = d.hs_code
        return [code[:n] for n in lengths if n <= len(code)]
    if field == "container_owner_prefix":
        return [c[:4] for c in d.containers]
    if field == "gtin":
        return d.gtins
    if field in ("consignor", "consignee"):
        party: tuple[str, ...] = getattr(d, field)
        return party
    own: str = getattr(d, field)
    return (own,) if own else ()


class IndexedMatcher:
    """Profiles inverted by the values their conditions name; only candidates are evaluated."""

    def __init__(self, profiles: Iterable[Profile], watch: WatchList | None = None) -> None:
        self.profiles = tuple(profiles)
        self.watch = _watch(watch)
        #: every condition by id; id(condition) -> its id (a Condition object shared by two
        #: profiles has one id)
        self._conditions: list[Condition] = []
        self._ids: dict[int, int] = {}
        #: key -> positions of the profiles it is an unguarded key of
        self._keyed: dict[Key, list[int]] = {}
        #: key -> the profiles it is a guarded key of, by bound (see the module docstring)
        self._guarded: dict[Key, Guards] = {}
        guarded: dict[Key, dict[str, list[tuple[float, int]]]] = {}
        indexed: set[Key] = set()
        #: field -> value -> the single key conditions that name it (only keys are looked up:
        #: the other conditions of a candidate are tested directly)
        single: dict[str, dict[str, list[int]]] = {}
        #: (field, field) -> (value, value) -> the pair keys that name them
        pairs: dict[tuple[str, str], dict[tuple[str, str], list[Key]]] = {}
        bounds: dict[str, list[tuple[float, int]]] = {f: [] for f in _BOUND_FIELDS}
        members: set[int] = set()
        for position, profile in enumerate(self.profiles):
            for key, guard in self._key(profile.criteria)[1]:
                if guard is None:
                    self._keyed.setdefault(key, []).append(position)
                else:
                    bound = self._conditions[guard]
                    assert bound.bound is not None
                    by_field = guarded.setdefault(key, {})
                    by_field.setdefault(bound.field, []).append((bound.bound, position))
                if key in indexed:
                    continue  # a shared key already indexed
                indexed.add(key)
                first = self._conditions[key[0]]
                if len(key) == 2:
                    second = self._conditions[key[1]]
                    members.update(key)
                    index = pairs.setdefault((first.field, second.field), {})
                    for a in first.values:
                        for b in second.values:
                            index.setdefault((a, b), []).append(key)
                elif first.bound is not None:
                    bounds[first.field].append((first.bound, key[0]))
                else:
                    for value in first.values:
                        single.setdefault(first.field, {}).setdefault(value, []).append(key[0])
        for key, by_field in guarded.items():
            self._guarded[key] = {
                field: ([b for b, _ in found], [position for _, position in found])
                for field, found in ((f, sorted(entries)) for f, entries in by_field.items())
            }
        #: each index with the view of a declaration it is looked up by
        self._single = [(_view(field, index), index) for field, index in single.items()]
        self._pairs = [
            (
                (
                    _view(first, {a for a, _ in pair_index}),
                    _view(second, {b for _, b in pair_index}),
                ),
                pair_index,
            )
            for (first, second), pair_index in pairs.items()
        ]
        #: the views a declaration is looked up by
        self._views = {view for view, _ in self._single} | {
            view for views, _ in self._pairs for view in views
        }
        #: single key conditions: they hold exactly when the index finds them
        self._exact = {c for field in single.values() for ids in field.values() for c in ids}
        self._exact -= members
        #: bound field -> (bounds ascending, their key conditions), searched by bisection
        self._bound_keys: dict[str, tuple[list[float], list[int]]] = {}
        for field, found in bounds.items():
            found.sort()
            self._bound_keys[field] = ([b for b, _ in found], [c for _, c in found])
        #: how many keys are bounds, and pairs (for the bench's report)
        self.bound_keys = sum(len(found) for found in bounds.values())
        self.pair_keys = sum(1 for key in indexed if len(key) == 2)
        #: how many profiles are reached through a guarded key (for the bench's report)
        self.guarded_keys = sum(
            len(positions) for guards in self._guarded.values() for _, positions in guards.values()
        )

    def _id(self, condition: Condition) -> int:
        condition_id = self._ids.get(id(condition))
        if condition_id is None:
            condition_id = len(self._conditions)
            self._conditions.append(condition)
            self._ids[id(condition)] = condition_id
        return condition_id

    def _key(self, node: Node) -> tuple[float, list[GuardedKey]]:
        """Number ``node``'s conditions; return its keys, each with its guard, and their cost.

        A matching ``node`` holds at least one of its keys (both conditions of
        a pair) together with that key's guard: a condition is its own key; an
        ``all_of`` has the key of its cheapest child, or the pair of its two
        cheapest conditions when that is cheaper, guarded by one of its bound
        children when it has one (and the key is not itself a bound); an
        ``any_of`` has the keys of all its children.
        """
        if isinstance(node, Condition):
            if node.bound is not None:
                cost = float(_BOUND_COST)
            elif node.field == "hs_prefix":
                cost = float(sum(_HS_COST[len(v)] for v in node.values))
            else:
                cost = float(_COST[node.field] * len(node.values))
            return cost, [((self._id(node),), None)]
        keys = [self._key(child) for child in node.children]  # number every child
        if node.op == "any_of":
            return sum(k[0] for k in keys), [key for k in keys for key in k[1]]
        guard = next(
            (
                self._id(child)
                for child in node.children
                if isinstance(child, Condition) and child.bound is not None
            ),
            None,
        )
        best = self._guard(min(keys, key=lambda k: k[0]), guard)
        plain = sorted(
            (cost, i)
            for i, ((cost, _), child) in enumerate(zip(keys, node.children, strict=True))
            if isinstance(child, Condition) and child.bound is None
        )
        if len(plain) >= 2:
            a, b = (node.children[i] for _, i in plain[:2])
            assert isinstance(a, Condition)
            assert isinstance(b, Condition)
            pair_cost = plain[0][0] * plain[1][0] / _PAIR_MAX
            if len(a.values) * len(b.values) <= _PAIR_MAX and pair_cost < best[0]:
                if (a.field, self._id(a)) > (b.field, self._id(b)):
                    a, b = b, a
                return pair_cost, [((self._id(a), self._id(b)), guard)]
        return best

    def _guard(
        self, keyed: tuple[float, list[GuardedKey]], guard: int | None
    ) -> tuple[float, list[GuardedKey]]:
        """``keyed`` with ``guard`` given to its keys that have none and are not bounds."""
        if guard is None:
            return keyed
        cost, keys = keyed
        return cost, [
            (key, own if own is not None or self._is_bound(key) else guard) for key, own in keys
        ]

    def _is_bound(self, key: Key) -> bool:
        return len(key) == 1 and self._conditions[key[0]].bound is not None

    def _guarded_by(
        self, guards: Guards, quantity: float | None, per_kg: float | None
    ) -> Iterable[int]:
        """The positions of ``guards`` whose bound holds for these figures."""
        for field, (bounds, positions) in guards.items():
            if field == "quantity_above":
                if quantity is not None:  # bound < quantity
                    yield from positions[: bisect_left(bounds, quantity)]
            elif per_kg is not None:  # value_per_kg_below: bound > value per kg
                yield from positions[bisect_right(bounds, per_kg) :]

    def screen(self, declaration: Declaration) -> Screening:
        d = declaration
        keyed, guarded = self._keyed, self._guarded
        hits: dict[int, set[str]] = {}
        candidates: set[int] = set()
        own = {view: own_values(view[0], d, view[1]) for view in self._views}
        per_kg = d.value_per_kg
        found: set[Key] = set()

        for view, index in self._single:
            for value in own[view]:
                for condition_id in index.get(value, ()):
                    hits.setdefault(condition_id, set()).add(value)
                    found.add((condition_id,))
        for (first, second), pair_index in self._pairs:
            seconds = own[second]
            if not seconds:
                continue
            for a in own[first]:
                for b in seconds:
                    for key in pair_index.get((a, b), ()):
                        hits.setdefault(key[0], set()).add(a)
                        hits.setdefault(key[1], set()).add(b)
                        found.add(key)
        for key in found:
            positions = keyed.get(key)
            if positions is not None:
                candidates.update(positions)
            guards = guarded.get(key)
            if guards is not None:
                candidates.update(self._guarded_by(guards, d.quantity, per_kg))
        if d.quantity is not None:
            bounds, key_ids = self._bound_keys["quantity_above"]
            for condition_id in key_ids[: bisect_left(bounds, d.quantity)]:  # bound < quantity
                candidates.update(keyed[(condition_id,)])
        if per_kg is not None:
            bounds, key_ids = self._bound_keys["value_per_kg_below"]
            for condition_id in key_ids[bisect_right(bounds, per_kg) :]:  # bound > value per kg
                candidates.update(keyed[(condition_id,)])

        ids, exact = self._ids, self._exact

        def truth(condition: Condition) -> tuple[str, ...]:
            condition_id = ids[id(condition)]
            if condition_id in hits:  # every value it matched: all were looked up
                return tuple(sorted(hits[condition_id]))
            if condition_id in exact:
                return ()  # a single key holds exactly when the index found it
            return direct_truth(condition, d)  # the rest of a candidate, tested directly

        matched = []
        for position in sorted(candidates):
            profile = self.profiles[position]
            reasons = explain(profile.criteria, truth)
            if reasons is not None:
                matched.append(ProfileHit(profile.id, tuple(reasons)))
        subjects = []
        if self.watch:
            for role, identifier in d.identifier_keys():
                records = self.watch.get(identifier)
                if records is not None:
                    subjects.append(SubjectHit(role, identifier, records))
        return Screening(d.reference, tuple(matched), tuple(subjects))
