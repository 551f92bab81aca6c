"""Detentions (kept here) and detention reports (a record kind shared under treaties).

Detentions
----------
A detention never leaves the detaining node: its parties are personal data
and its deadlines are this agency's. It lives in ``node_detentions`` (the
full record as JSON), with the recordations the officer confirmed
(``node_detention_recordations``, which is how a rights holder's
detentions are found) and one row per deadline (``node_detention_deadlines``,
what the periodic job reads). Every rule is :mod:`node.ipr`'s: validation,
the deadlines in working days of this agency's country (the directory
names it), the state machine with who may move, the holder's view. Each
move is written with its reason in the history, an event and an audit
entry, in one transaction with the change.

The node suggests the recordations a detention may fall under from the
search index of :mod:`node.kinds.recordations` (GTIN, HS code, brand),
ranked by :func:`node.ipr.views.match_detention`; the officer confirms.
A confirmed recordation must be one this node holds and in force.

Detention reports
-----------------
The kind ``detention_report`` runs on the generic record engine: a report
(:func:`node.ipr.views.detention_report`: goods, transport, origin and
destination, rights, the recordations by their grantor's names, the
summary; never deadlines, history or notes) is redacted by the treaty's
allow-list, sealed and queued like any record. One goes out on an
officer's request (``ShareDetentionReport``) and automatically when a
detention is confirmed (the holder confirms the infringement or agrees to
destruction): to the agency that granted each confirmed recordation this
node received, under the treaty its copy came under, when that treaty
lets a ``detention_report`` through (else nothing is sent, and the audit
says why). A received report is linked to the recordations it names that
this node holds, and counted in the statistics as the partner's.

The periodic job
----------------
:meth:`Detentions.check_deadlines` (the node's maintenance loop, or Celery
beat's ``intelshare.periodic.ipr_deadlines``) reminds once when a deadline
is due within :data:`REMIND_BEFORE_MS` (event ``detention.deadline_due``,
which the notification workers fan out to webhooks and feeds), and when
one has passed records it (``detention.deadline_passed``) and moves the
detention to ``deadline_passed`` where the state machine lets the node do
so. It is idempotent: a row changes state once, in a conditional update.

The package, module by module
-----------------------------
Each part is a class on :class:`~.core.DetentionCore`; :class:`Detentions`
puts them together, as :mod:`node.kinds.alerts` does.

``report_kind``
    the ``detention_report`` kind on the generic record engine;
``core``
    collaborators, rows and protos, what a caller may see, a change written
    with its facts (links, deadline rows, statistics rows);
``changes``
    create, update, move, extend a deadline, disclose parties, samples;
``reading``
    officers' and holders' reads, which detentions a feed may show, the
    statistics;
``reports``
    reports on request and on confirmation, and reading them;
``deadline_job``
    reminders and passed deadlines.
"""

from __future__ import annotations

from node.kinds.detentions.changes import DetentionChanges
from node.kinds.detentions.core import CONFIRMED, REMIND_BEFORE_MS, UPDATABLE
from node.kinds.detentions.deadline_job import DeadlineJob
from node.kinds.detentions.reading import DetentionReading
from node.kinds.detentions.report_kind import DETENTION_REPORT
from node.kinds.detentions.reports import DetentionReports


class Detentions(DetentionChanges, DetentionReports, DetentionReading, DeadlineJob):
    """The detentions of one node, its reports, the deadline job and the statistics."""


__all__ = [
    "CONFIRMED",
    "DETENTION_REPORT",
    "REMIND_BEFORE_MS",
    "UPDATABLE",
    "Detentions",
]
