"""The rules of IPR enforcement at the border, as pure functions over protobuf messages.

A customs agency grants a rights holder's application for action (a
*recordation*, ``intelshare.v1.Recordation``) and shares it with the
agencies it is valid for; an officer who finds goods that may infringe one
suspends their release (a *detention*, ``intelshare.v1.Detention``), the
holder and the declarant get the deadlines of Regulation (EU) No 608/2013,
and a confirmed detention can be reported to partners
(``intelshare.v1.DetentionReport``). The record engine of the node stores
and shares these records; this package holds what is true whatever the
storage, so the servicer, the worker, the CLI and the tests use the same
rules:

* :mod:`node.ipr.deadlines`: the regulation's deadlines in working days of
  the detaining agency's country (the ``holidays`` library, the country's
  time zone), and how the days are counted (Regulation 1182/71).
* :mod:`node.ipr.lifecycle`: the detention state machine and the
  recordation lifecycle: which moves exist, who (customs, rights holder,
  the node itself) may make each, and what a move does to the history and
  the deadlines.
* :mod:`node.ipr.validate`: validation of new recordations and detentions,
  every problem at once, by proto path (identifiers through
  :mod:`intelshare.identifiers`).
* :mod:`node.ipr.views`: what a rights holder sees (a field mask), what
  never leaves the node, the detention report built from a detention, and
  the matching of products to recordations by GTIN, HS code and right
  name.

Nothing here does I/O, reads a clock or imports storage or sharing: every
function takes ``now`` and returns new messages. Errors are the project's
(:mod:`intelshare.errors`): INVALID_ARGUMENT with field violations (or its
GTIN_INVALID / HS_CODE_INVALID / CONTAINER_NUMBER_INVALID subclasses),
FAILED_PRECONDITION subclasses for moves (DETENTION_MOVE_INVALID,
RECORDATION_MOVE_INVALID, DEADLINE_PASSED, RECORDATION_EXPIRED,
EXTENSION_REFUSED) and PERMISSION_DENIED / HOLDER_MISMATCH for a holder
reaching for another holder's records.
"""
