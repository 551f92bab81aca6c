"""Risk profiles and risk hits: two record kinds, and the profiles in force.

``risk_profile`` and ``risk_hit`` run on the generic record engine
(:mod:`node.sharing.records`): it stores them, redacts them per treaty,
seals, queues, receipts, updates and withdraws them at every copy. This
module declares the two kinds and adds what the engine does not know.

* **Profiles.** The JSON form is ``title``, ``rationale``, ``action``,
  ``valid_from``, ``valid_until`` and ``criteria`` (the declarative language
  of :mod:`node.targeting.criteria`, stored in canonical form). An officer's
  profile is validated strictly (:class:`~intelshare.errors.CriteriaInvalid`
  naming every bad path, ``risk_profile.criteria.all_of[2].hs_prefix``); a
  received copy is parsed as strictly (a partner's broken criteria are
  refused, audited, rather than matched wrongly); a copy whose treaty keeps
  the criteria back is held but never matches.
* **What is in force.** :class:`InForce` keeps one
  :class:`~node.targeting.matcher.IndexedMatcher` over every profile in
  force (own and received, not withdrawn, within its validity) and the
  watch list (the identifier keys of alerts in force, from the identifier
  index, and the GTINs of recordations in force, from the IPR search
  keys). It is immutable and swapped: before each batch of declarations
  the node compares a fingerprint of what it was built from (the profiles'
  and recordations' rows, the identifier index's change counter, the next
  validity boundary) and builds a new one when anything moved. The
  engine's withdrawal of a received copy changes its row, so a withdrawn
  profile stops matching with the next batch at every partner.
* **Hits.** A risk hit keeps only the declaration's identifying fields
  (reference and identifier keys) with the reasons. One hit per matching
  profile: on a partner's profile it is shared back with the profile's
  author under the treaty the profile came under (redacted by that treaty's
  ``risk_hit`` allow-list), and its outcome (inspection, finding) follows
  as updates; on a watched identifier, one local hit per declaration. The
  facts the statistics sum live in ``node_risk_hits``; hits screened here
  are purged at the end of the profile's treaty retention
  (:meth:`RiskProfiles.purge_retention`), received ones by the engine.

The package, module by module
-----------------------------
``forms``
    the kinds' names and constants, the JSON form of a profile and of a hit
    both ways, validation, the ``RelatedRecord`` of an index row;
``in_force``
    :class:`InForce` and its :class:`Snapshot`: the matcher over what is in
    force and the watch list, rebuilt when its fingerprint moves;
``core``
    :class:`~node.kinds.risk_profiles.core.RiskCore`: both kinds registered
    with the engine, and the hooks run when one is stored (a hit's facts and
    identifiers);
``profiles``
    officers' profiles (create, update, withdraw, read) and the author's
    statistics;
``hits``
    hits stored by a screening, read and updated by officers, purged at the
    end of their retention;
this module
    :class:`RiskProfiles`, all of them together.
"""

from __future__ import annotations

from node.kinds.risk_profiles.forms import (
    HIT_KIND,
    HITS,
    PROFILE_KIND,
    PROFILES,
    hit_from_record,
    hit_to_record,
    profile_from_record,
    profile_to_record,
    related_proto,
    validate_profile,
    validity_now,
)
from node.kinds.risk_profiles.hits import HitOperations
from node.kinds.risk_profiles.in_force import InForce, ProfileInfo, Snapshot
from node.kinds.risk_profiles.profiles import ProfileOperations


class RiskProfiles(ProfileOperations, HitOperations):
    """Risk profiles and hits of one node: the kinds, the profiles in force, statistics."""


__all__ = [
    "HITS",
    "HIT_KIND",
    "PROFILES",
    "PROFILE_KIND",
    "InForce",
    "ProfileInfo",
    "RiskProfiles",
    "Snapshot",
    "hit_from_record",
    "hit_to_record",
    "profile_from_record",
    "profile_to_record",
    "related_proto",
    "validate_profile",
    "validity_now",
]
