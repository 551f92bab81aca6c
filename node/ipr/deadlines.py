"""The deadlines of Regulation (EU) No 608/2013, in working days of the detaining country.

What the regulation fixes
-------------------------
* Art. 17(3) and 18(3): customs notify the declarant and the holder "within
  one working day" of suspending release or detaining the goods
  (:data:`DeadlineKind.NOTIFICATION`, from the detention).
* Art. 23(1) and (3): within 10 working days of that notification, 3 for
  perishable goods, the holder confirms the infringement and agrees to
  destruction, or starts proceedings (``HOLDER_ANSWER``); the declarant
  agrees or objects in the same period, and silence counts as agreement
  (``DECLARANT_ANSWER``).
* Art. 23(4): customs may extend the holder's period once, by at most 10
  working days, on a duly justified request; never for perishable goods.
* Art. 18(5)(b): ex officio, the holder has 4 working days from the
  notification to lodge an application (``HOLDER_APPLICATION``). Once it is
  granted, the periods of art. 23 run from the notification of that grant
  (the node starts them when the officer records it; see
  :func:`node.ipr.lifecycle.application_granted`).
* Art. 26(4) and (9): small consignments, the declarant has 10 working days
  from the notification to object (``DECLARANT_OBJECTION``); after an
  objection the holder has 10 working days from being told of it to start
  proceedings (``HOLDER_PROCEEDINGS``). Neither is shortened for perishable
  goods nor can be extended.

How the days are counted
------------------------
608/2013 does not say; we follow Regulation (EEC, Euratom) No 1182/71, the
EU's rules for periods, dates and time limits:

* Art. 3(1): the day of the event (the notification) does not count. Day
  one is the first working day *after* the local calendar day on which the
  event happened, so a notification at 16:55 on a Friday and one at 09:00
  on the Saturday after both start counting on the Monday.
* Art. 3(2)(b) and (3): the period ends with the expiry of the last hour of
  its last day; in a period of working days every day counted is a working
  day, so the last day is never a weekend or a public holiday and art. 3(4)
  (moving the end off a holiday) never has anything to do.
* Art. 2(2): working days are all days other than public holidays,
  Saturdays and Sundays. Saturday and Sunday are fixed by the regulation,
  whatever the country's own weekend.
* Art. 2(1): public holidays are the days designated as such in the Member
  State where the action is taken: the detaining agency's country, i.e.
  the public holidays the ``holidays`` library lists for it (category
  "public", observed days included), and of its subdivision when one is
  configured (e.g. Epiphany in Bavaria, "DE"/"BY"). National rules on time
  limits can differ from that list (the Dutch Algemene termijnenwet counts
  5 May every year, the library only every fifth); an agency lists such
  days in ``closed_days``.

"Local" is the time zone of the detaining agency's country (zoneinfo):
the event's instant is turned into a local calendar date there, and the
period's end is local midnight after the last day, stored as an instant
(``due_time``) next to the date itself (``last_day``). Countries spanning
several zones take the zone of their capital unless the agency names its
own (an office in the Canary Islands: "Atlantic/Canary").

Every computation is pure: the same inputs give the same deadline on every
node and in every test, and a later event never gives an earlier deadline.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from google.protobuf.timestamp_pb2 import Timestamp

from intelshare.errors import (
    ConfigError,
    DeadlinePassed,
    ExtensionRefused,
    FieldInvalid,
)
from intelshare.v1 import detention_pb2

DeadlineKind = detention_pb2.DeadlineKind

#: Art. 17(3), 18(3): notify within one working day of the detention.
NOTIFICATION_DAYS: Final = 1
#: Art. 23(1), (3): the holder's (and declarant's) answer.
ANSWER_DAYS: Final = 10
#: Art. 23(1), (3): the same, for perishable goods.
PERISHABLE_ANSWER_DAYS: Final = 3
#: Art. 23(4): one extension of at most this many working days.
MAX_EXTENSION_DAYS: Final = 10
#: Art. 18(5)(b): ex officio, the holder's application.
APPLICATION_DAYS: Final = 4
#: Art. 26(4), (9): small consignments, the declarant's objection and the
#: holder's proceedings after one.
SMALL_CONSIGNMENT_DAYS: Final = 10

#: Kinds of deadline art. 23(4) lets customs extend.
EXTENDABLE: Final = frozenset({DeadlineKind.DEADLINE_KIND_HOLDER_ANSWER})

#: Time zone of each country's capital, for agencies that name none: the
#: EU and EEA, Switzerland and the United Kingdom, and the EU's neighbours.
COUNTRY_ZONES: Final[dict[str, str]] = {
    "AL": "Europe/Tirane",
    "AT": "Europe/Vienna",
    "BA": "Europe/Sarajevo",
    "BE": "Europe/Brussels",
    "BG": "Europe/Sofia",
    "CH": "Europe/Zurich",
    "CY": "Asia/Nicosia",
    "CZ": "Europe/Prague",
    "DE": "Europe/Berlin",
    "DK": "Europe/Copenhagen",
    "EE": "Europe/Tallinn",
    "ES": "Europe/Madrid",
    "FI": "Europe/Helsinki",
    "FR": "Europe/Paris",
    "GB": "Europe/London",
    "GE": "Asia/Tbilisi",
    "GR": "Europe/Athens",
    "HR": "Europe/Zagreb",
    "HU": "Europe/Budapest",
    "IE": "Europe/Dublin",
    "IS": "Atlantic/Reykjavik",
    "IT": "Europe/Rome",
    "LI": "Europe/Vaduz",
    "LT": "Europe/Vilnius",
    "LU": "Europe/Luxembourg",
    "LV": "Europe/Riga",
    "MD": "Europe/Chisinau",
    "ME": "Europe/Podgorica",
    "MK": "Europe/Skopje",
    "MT": "Europe/Malta",
    "NL": "Europe/Amsterdam",
    "NO": "Europe/Oslo",
    "PL": "Europe/Warsaw",
    "PT": "Europe/Lisbon",
    "RO": "Europe/Bucharest",
    "RS": "Europe/Belgrade",
    "SE": "Europe/Stockholm",
    "SI": "Europe/Ljubljana",
    "SK": "Europe/Bratislava",
    "TR": "Europe/Istanbul",
    "UA": "Europe/Kyiv",
}

_SATURDAY: Final = 5
#: Any year the library covers, to learn whether it knows a country at all.
_PROBE_YEAR: Final = 2024


@functools.lru_cache(maxsize=1024)
def _public_holidays(country: str, subdivision: str, year: int) -> frozenset[date]:
    # One frozen set per year: the library's own objects fill themselves in
    # lazily as dates are asked for, which is not safe across server threads.
    calendar = holidays.country_holidays(
        country, subdiv=subdivision or None, years=year, categories=("public",)
    )
    return frozenset(calendar.keys())


@dataclass(frozen=True)
class Calendar:
    """The working days of one country (and subdivision), in one time zone.

    Build it with :func:`calendar_for`, which checks the country,
    subdivision and zone; the constructor trusts its arguments.
    """

    country: str
    subdivision: str
    zone: ZoneInfo
    #: Further days off that national rules on time limits add.
    closed_days: frozenset[date] = field(default_factory=frozenset)

    @property
    def time_zone(self) -> str:
        return self.zone.key

    def is_working_day(self, day: date) -> bool:
        if day.weekday() >= _SATURDAY or day in self.closed_days:
            return False
        return day not in _public_holidays(self.country, self.subdivision, day.year)

    def local_date(self, instant: datetime) -> date:
        """The calendar day, in this country, on which ``instant`` falls."""
        return _aware(instant).astimezone(self.zone).date()

    def add_working_days(self, after: date, count: int) -> date:
        """The ``count``-th working day after the day ``after`` (which never counts)."""
        if count < 1:
            raise ValueError("a period has at least one working day")
        day = after
        counted = 0
        while counted < count:
            day += timedelta(days=1)
            if self.is_working_day(day):
                counted += 1
        return day

    def end_of(self, day: date) -> datetime:
        """The instant ``day`` ends here (local midnight after it), in UTC."""
        midnight = datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.zone)
        return midnight.astimezone(UTC)

    def working_days(self, start: date, end: date) -> Iterable[date]:
        """The working days from ``start`` to ``end``, both included."""
        day = start
        while day <= end:
            if self.is_working_day(day):
                yield day
            day += timedelta(days=1)


def calendar_for(
    country: str,
    subdivision: str = "",
    time_zone: str = "",
    closed_days: Iterable[date] = (),
) -> Calendar:
    """The calendar of an agency's country; ConfigError names what is wrong."""
    code = country.strip().upper()
    sub = subdivision.strip()
    try:
        _public_holidays(code, sub, _PROBE_YEAR)
    except NotImplementedError as exc:
        what = f"subdivision {sub!r} of {code}" if sub else f"country {code!r}"
        raise ConfigError(
            f"no public holiday calendar for {what}; use an ISO 3166 code the holidays "
            "library knows (e.g. DE, NL; subdivision e.g. BY)",
            metadata={"country": code, "subdivision": sub},
        ) from exc
    zone_name = time_zone.strip() or COUNTRY_ZONES.get(code, "")
    if not zone_name:
        raise ConfigError(
            f"no default time zone for {code}: name the agency's IANA time zone",
            metadata={"country": code},
        )
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"unknown time zone {zone_name!r} (an IANA name, e.g. Europe/Berlin)",
            metadata={"time_zone": zone_name},
        ) from exc
    return Calendar(code, sub, zone, frozenset(closed_days))


def calendar_of(deadline: detention_pb2.DetentionDeadline) -> Calendar:
    """The calendar a stored deadline was computed with."""
    return calendar_for(deadline.country, deadline.subdivision, deadline.time_zone)


# --- deadlines ---------------------------------------------------------------------


def deadline(
    kind: detention_pb2.DeadlineKind.ValueType,
    start: datetime,
    working_days: int,
    calendar: Calendar,
) -> detention_pb2.DetentionDeadline:
    """A period of ``working_days`` working days running from the event at ``start``."""
    last = calendar.add_working_days(calendar.local_date(start), working_days)
    return detention_pb2.DetentionDeadline(
        kind=kind,
        start_time=_timestamp(start),
        due_time=_timestamp(calendar.end_of(last)),
        last_day=last.isoformat(),
        working_days=working_days,
        state=detention_pb2.DEADLINE_STATE_OPEN,
        country=calendar.country,
        subdivision=calendar.subdivision,
        time_zone=calendar.time_zone,
    )


def notification_deadline(
    detain_time: datetime, calendar: Calendar
) -> detention_pb2.DetentionDeadline:
    """Customs notify holder and declarant within one working day (arts. 17(3), 18(3))."""
    return deadline(
        DeadlineKind.DEADLINE_KIND_NOTIFICATION, detain_time, NOTIFICATION_DAYS, calendar
    )


def answer_days(perishable: bool) -> int:
    return PERISHABLE_ANSWER_DAYS if perishable else ANSWER_DAYS


def answer_deadlines(
    notify_time: datetime, perishable: bool, calendar: Calendar
) -> list[detention_pb2.DetentionDeadline]:
    """The holder's and the declarant's answers under art. 23 (standard procedure)."""
    days = answer_days(perishable)
    return [
        deadline(DeadlineKind.DEADLINE_KIND_HOLDER_ANSWER, notify_time, days, calendar),
        deadline(DeadlineKind.DEADLINE_KIND_DECLARANT_ANSWER, notify_time, days, calendar),
    ]


def deadlines_on_notification(
    procedure: detention_pb2.DetentionProcedure.ValueType,
    perishable: bool,
    notify_time: datetime,
    calendar: Calendar,
) -> list[detention_pb2.DetentionDeadline]:
    """The deadlines that start when holder and declarant are notified."""
    if procedure == detention_pb2.DETENTION_PROCEDURE_STANDARD:
        return answer_deadlines(notify_time, perishable, calendar)
    if procedure == detention_pb2.DETENTION_PROCEDURE_EX_OFFICIO:
        return [
            deadline(
                DeadlineKind.DEADLINE_KIND_HOLDER_APPLICATION,
                notify_time,
                APPLICATION_DAYS,
                calendar,
            )
        ]
    if procedure == detention_pb2.DETENTION_PROCEDURE_SMALL_CONSIGNMENT:
        return [
            deadline(
                DeadlineKind.DEADLINE_KIND_DECLARANT_OBJECTION,
                notify_time,
                SMALL_CONSIGNMENT_DAYS,
                calendar,
            )
        ]
    raise FieldInvalid("the detention has no procedure", violations={"procedure": "must be set"})


def proceedings_deadline(
    told_time: datetime, calendar: Calendar
) -> detention_pb2.DetentionDeadline:
    """Small consignment: the holder starts proceedings after an objection (art. 26(9))."""
    return deadline(
        DeadlineKind.DEADLINE_KIND_HOLDER_PROCEEDINGS, told_time, SMALL_CONSIGNMENT_DAYS, calendar
    )


def extend(
    current: detention_pb2.DetentionDeadline,
    working_days: int,
    *,
    perishable: bool,
    now: datetime,
) -> detention_pb2.DetentionDeadline:
    """The deadline extended once by ``working_days`` (art. 23(4)), or why not.

    The extension counts on from the current last day, so the holder loses
    nothing by asking early; it must be asked before the deadline passes.
    """
    if working_days < 1:
        raise FieldInvalid(
            "an extension adds at least one working day",
            violations={"working_days": "must be 1 to 10"},
        )
    rule = ""
    if current.kind not in EXTENDABLE:
        rule = "kind"
        message = f"the {kind_label(current.kind)} deadline cannot be extended"
    elif perishable:
        rule = "perishable"
        message = "deadlines for perishable goods cannot be extended (608/2013 art. 23(4))"
    elif current.extended:
        rule = "once"
        message = "this deadline was already extended; it can be extended only once"
    elif working_days > MAX_EXTENSION_DAYS:
        rule = "max_days"
        message = f"an extension adds at most {MAX_EXTENSION_DAYS} working days"
    if rule:
        raise ExtensionRefused(message, metadata={"rule": rule})
    if is_passed(current, now):
        raise DeadlinePassed(
            f"the {kind_label(current.kind)} deadline passed at the end of {current.last_day}",
            metadata={"deadline": kind_label(current.kind), "due_time": _iso(current.due_time)},
        )
    calendar = calendar_of(current)
    last = calendar.add_working_days(date.fromisoformat(current.last_day), working_days)
    extended = detention_pb2.DetentionDeadline()
    extended.CopyFrom(current)
    extended.due_time.CopyFrom(_timestamp(calendar.end_of(last)))
    extended.last_day = last.isoformat()
    extended.working_days = current.working_days + working_days
    extended.extended = True
    extended.extension_working_days = working_days
    return extended


def is_passed(current: detention_pb2.DetentionDeadline, now: datetime) -> bool:
    """Whether the period has ended at ``now`` (whatever its recorded state)."""
    return _aware(now) >= current.due_time.ToDatetime(tzinfo=UTC)


def as_of(
    current: detention_pb2.DetentionDeadline, now: datetime
) -> detention_pb2.DetentionDeadline:
    """The deadline as a read at ``now`` shows it: an open one past its end is PASSED."""
    shown = detention_pb2.DetentionDeadline()
    shown.CopyFrom(current)
    if shown.state == detention_pb2.DEADLINE_STATE_OPEN and is_passed(current, now):
        shown.state = detention_pb2.DEADLINE_STATE_PASSED
    return shown


def kind_label(kind: detention_pb2.DeadlineKind.ValueType) -> str:
    """ "holder_answer" for DEADLINE_KIND_HOLDER_ANSWER, and so on."""
    try:
        return DeadlineKind.Name(kind).removeprefix("DEADLINE_KIND_").lower()
    except ValueError:
        return str(int(kind))


# --- time helpers ------------------------------------------------------------------


def _aware(instant: datetime) -> datetime:
    if instant.tzinfo is None:
        raise ValueError("naive datetime: pass an aware one (UTC)")
    return instant


def _timestamp(instant: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(_aware(instant).astimezone(UTC))
    return stamp


def _iso(stamp: Timestamp) -> str:
    return stamp.ToDatetime(tzinfo=UTC).isoformat().replace("+00:00", "Z")
