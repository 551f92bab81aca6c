"""Risk targeting: criteria, declarations and the matcher, pure of storage and sharing.

A risk profile says which consignments deserve a second look. Its criteria
are *data* in a small declarative language, never code: a tree of
``all_of`` / ``any_of`` groups whose leaves are conditions on one field of
a customs declaration (HS code prefix, countries, ports, transport mode,
consignor or consignee, container owner, GTINs, value per kg, quantity).
There is no negation: every criterion is monotone, which is what lets the
matcher index profiles by the values they name (below).

``node.targeting.criteria``
    parses and strictly validates criteria from JSON-like data; every
    problem is an :class:`intelshare.errors.InvalidArgument` violation named
    by its JSON path (``criteria.all_of[2].hs_prefix``). The published JSON
    Schema is ``docs/risk-criteria.schema.json``; the parser checks more than
    the schema can (check digits, nesting depth, the total of conditions).
``node.targeting.declarations``
    the declaration model (one goods item of a consignment, frozen) and the
    CSV / JSON Lines readers with the column mapping of ``docs/screening.md``:
    a bad row is reported with its line and column while the rest of the file
    is still read; an oversized line is refused without reading it whole.
``node.targeting.matcher``
    the indexed matcher and the naive reference. The index maps each value a
    condition names to the conditions that name it (HS prefixes by prefix,
    countries, ports, modes, GTINs, party identifiers and container owner
    prefixes by value) and each profile to a few *key conditions*, at least
    one of which must hold for the profile to match: one child of an
    ``all_of`` (the most selective) or the pair of its two most selective
    conditions (looked up as the pair of their values), every child of an
    ``any_of``. A
    declaration is looked up once per value it carries (numeric bounds that
    are keys by bisection); only the profiles whose key conditions were hit
    are evaluated, so the cost per declaration follows the number of
    candidate profiles, not of profiles.
    The subjects of alerts (containers, vessels, vehicles, companies,
    persons: identifier keys of :mod:`intelshare.identifiers`) are a watch
    list in the same index, one hash lookup per identifier of the declaration.
    Every match carries all its reasons: the profile and each condition that
    held, with the values that made it hold.

Nothing here touches a database, the network or the treaty: the record
engine (``node.kinds``) stores profiles, decides which are in force for
screening and stores hits; this package only decides what matches. It sits
at the bottom of the node's import layers beside ``node.schema``.
"""
