"""The 608/2013 deadlines on real calendars: Christmas, Easter, national days, time zones."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intelshare.errors import ConfigError, DeadlinePassed, ExtensionRefused, InvalidArgument
from intelshare.v1 import detention_pb2 as D
from node.ipr import deadlines as dl

HOLDER = D.DEADLINE_KIND_HOLDER_ANSWER
DE = dl.calendar_for("DE")
NL = dl.calendar_for("NL")
BAVARIA = dl.calendar_for("DE", "BY")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- worked examples --------------------------------------------------------------------


@pytest.mark.parametrize("calendar", [DE, NL], ids=["DE", "NL"])
def test_christmas_2025_ten_working_days(calendar: dl.Calendar) -> None:
    # Notified Tuesday 23 December 2025. Day 1 is Wednesday the 24th (Christmas
    # Eve is not a public holiday), then 25/26 December, the weekend and
    # 1 January are skipped: 29, 30, 31 Dec, 2, 5, 6, 7, 8, 9 Jan.
    got = dl.deadline(HOLDER, utc(2025, 12, 23, 10, 0), 10, calendar)
    assert got.last_day == "2026-01-09"
    assert got.working_days == 10
    # Midnight at the end of Friday 9 January in Berlin/Amsterdam (UTC+1).
    assert got.due_time.ToDatetime(tzinfo=UTC) == utc(2026, 1, 9, 23, 0)
    assert got.state == D.DEADLINE_STATE_OPEN
    assert (got.country, got.time_zone) == (
        calendar.country,
        "Europe/Berlin" if calendar.country == "DE" else "Europe/Amsterdam",
    )


def test_christmas_in_bavaria_also_skips_epiphany() -> None:
    # Same detention at a Bavarian office: 6 January is a holiday there only.
    got = dl.deadline(HOLDER, utc(2025, 12, 23, 10, 0), 10, BAVARIA)
    assert got.last_day == "2026-01-12"
    assert got.subdivision == "BY"


def test_perishable_before_christmas() -> None:
    days = dl.answer_days(perishable=True)
    assert days == 3
    for calendar in (DE, NL):
        got = dl.deadline(HOLDER, utc(2025, 12, 23, 10, 0), days, calendar)
        assert got.last_day == "2025-12-30"  # 24, 29, 30 December


@pytest.mark.parametrize(
    ("calendar", "expected"),
    [(DE, "2026-04-09"), (NL, "2026-04-09")],
    ids=["DE", "NL"],
)
def test_easter_2026_perishable(calendar: dl.Calendar, expected: str) -> None:
    # Notified Thursday 2 April 2026; Good Friday (3rd) and Easter Monday (6th)
    # are public holidays in both calendars: 7, 8, 9 April.
    got = dl.deadline(HOLDER, utc(2026, 4, 2, 8, 0), 3, calendar)
    assert got.last_day == expected


def test_kings_day_counts_in_nl_not_in_de() -> None:
    # Notified Thursday 23 April 2026; Monday 27 April is King's Day in NL.
    start = utc(2026, 4, 23, 9, 0)
    assert dl.deadline(HOLDER, start, 3, DE).last_day == "2026-04-28"
    assert dl.deadline(HOLDER, start, 3, NL).last_day == "2026-04-29"


def test_german_unity_day_counts_in_de_not_in_nl() -> None:
    # Notified Wednesday 1 October 2025; Friday 3 October is a holiday in DE.
    start = utc(2025, 10, 1, 9, 0)
    assert dl.deadline(HOLDER, start, 3, DE).last_day == "2025-10-07"
    assert dl.deadline(HOLDER, start, 3, NL).last_day == "2025-10-06"


def test_day_of_the_event_is_the_local_day() -> None:
    # 23:30 UTC on Wednesday 23 December 2026 is already Thursday the 24th in
    # Berlin: day one is the next working day after the 24th, Monday the 28th.
    late = dl.deadline(D.DEADLINE_KIND_NOTIFICATION, utc(2026, 12, 23, 23, 30), 1, DE)
    assert late.last_day == "2026-12-28"
    # Half an hour earlier it is still the 23rd there: day one is the 24th.
    early = dl.deadline(D.DEADLINE_KIND_NOTIFICATION, utc(2026, 12, 23, 22, 30), 1, DE)
    assert early.last_day == "2026-12-24"


def test_weekend_notification_starts_counting_on_monday() -> None:
    friday = dl.deadline(HOLDER, utc(2026, 3, 6, 15, 55), 1, NL)
    saturday = dl.deadline(HOLDER, utc(2026, 3, 7, 8, 0), 1, NL)
    sunday = dl.deadline(HOLDER, utc(2026, 3, 8, 8, 0), 1, NL)
    assert friday.last_day == saturday.last_day == sunday.last_day == "2026-03-09"


def test_due_time_follows_summer_time() -> None:
    # A period ending in summer ends at 22:00 UTC (midnight CEST).
    got = dl.deadline(HOLDER, utc(2026, 7, 1, 9, 0), 1, DE)
    assert got.last_day == "2026-07-02"
    assert got.due_time.ToDatetime(tzinfo=UTC) == utc(2026, 7, 2, 22, 0)


def test_closed_days_of_national_rules() -> None:
    # The Dutch Algemene termijnenwet counts 5 May every year; the library only
    # lists it every fifth year (2025, 2030). An agency adds it.
    start = utc(2026, 5, 4, 9, 0)  # Monday
    assert dl.deadline(HOLDER, start, 1, NL).last_day == "2026-05-05"
    strict = dl.calendar_for("NL", closed_days=[date(2026, 5, 5)])
    assert dl.deadline(HOLDER, start, 1, strict).last_day == "2026-05-06"


def test_deadlines_of_each_procedure() -> None:
    start = utc(2026, 3, 2, 9, 0)  # Monday
    standard = dl.deadlines_on_notification(D.DETENTION_PROCEDURE_STANDARD, False, start, DE)
    assert [(x.kind, x.working_days, x.last_day) for x in standard] == [
        (D.DEADLINE_KIND_HOLDER_ANSWER, 10, "2026-03-16"),
        (D.DEADLINE_KIND_DECLARANT_ANSWER, 10, "2026-03-16"),
    ]
    perishable = dl.deadlines_on_notification(D.DETENTION_PROCEDURE_STANDARD, True, start, DE)
    assert {x.working_days for x in perishable} == {3}
    ex_officio = dl.deadlines_on_notification(D.DETENTION_PROCEDURE_EX_OFFICIO, False, start, DE)
    assert [(x.kind, x.working_days, x.last_day) for x in ex_officio] == [
        (D.DEADLINE_KIND_HOLDER_APPLICATION, 4, "2026-03-06")
    ]
    small = dl.deadlines_on_notification(D.DETENTION_PROCEDURE_SMALL_CONSIGNMENT, True, start, DE)
    # Small consignments: 10 working days even for perishable goods (art. 26).
    assert [(x.kind, x.working_days) for x in small] == [(D.DEADLINE_KIND_DECLARANT_OBJECTION, 10)]
    with pytest.raises(InvalidArgument):
        dl.deadlines_on_notification(D.DETENTION_PROCEDURE_UNSPECIFIED, False, start, DE)


def test_notification_within_one_working_day() -> None:
    # Detained on Thursday 24 December 2026: notify by the end of Monday the 28th.
    got = dl.notification_deadline(utc(2026, 12, 24, 10, 0), DE)
    assert (got.kind, got.working_days, got.last_day) == (
        D.DEADLINE_KIND_NOTIFICATION,
        1,
        "2026-12-28",
    )


# --- extension ---------------------------------------------------------------------------


def test_extension_counts_on_from_the_last_day() -> None:
    start = utc(2025, 12, 23, 10, 0)
    first = dl.deadline(HOLDER, start, 10, DE)  # 9 January 2026
    extended = dl.extend(first, 10, perishable=False, now=start + timedelta(days=3))
    assert extended.extended
    assert extended.extension_working_days == 10
    assert extended.working_days == 20
    assert extended.last_day == "2026-01-23"  # 12-16 and 19-23 January
    assert extended.start_time == first.start_time
    assert not first.extended  # the argument is not changed


def test_extension_only_once() -> None:
    first = dl.deadline(HOLDER, utc(2026, 3, 2, 9, 0), 10, DE)
    once = dl.extend(first, 2, perishable=False, now=utc(2026, 3, 3))
    with pytest.raises(ExtensionRefused) as info:
        dl.extend(once, 2, perishable=False, now=utc(2026, 3, 3))
    assert info.value.metadata["rule"] == "once"


def test_extension_refused_for_perishable_goods() -> None:
    first = dl.deadline(HOLDER, utc(2026, 3, 2, 9, 0), 3, DE)
    with pytest.raises(ExtensionRefused) as info:
        dl.extend(first, 1, perishable=True, now=utc(2026, 3, 3))
    assert info.value.metadata["rule"] == "perishable"
    assert info.value.reason == "EXTENSION_REFUSED"


def test_extension_at_most_ten_days_and_at_least_one() -> None:
    first = dl.deadline(HOLDER, utc(2026, 3, 2, 9, 0), 10, DE)
    with pytest.raises(ExtensionRefused) as info:
        dl.extend(first, 11, perishable=False, now=utc(2026, 3, 3))
    assert info.value.metadata["rule"] == "max_days"
    with pytest.raises(InvalidArgument) as bad:
        dl.extend(first, 0, perishable=False, now=utc(2026, 3, 3))
    assert "working_days" in bad.value.violations


def test_only_the_holders_answer_is_extended() -> None:
    for kind in (
        D.DEADLINE_KIND_DECLARANT_ANSWER,
        D.DEADLINE_KIND_HOLDER_APPLICATION,
        D.DEADLINE_KIND_DECLARANT_OBJECTION,
        D.DEADLINE_KIND_HOLDER_PROCEEDINGS,
        D.DEADLINE_KIND_NOTIFICATION,
    ):
        other = dl.deadline(kind, utc(2026, 3, 2, 9, 0), 10, DE)
        with pytest.raises(ExtensionRefused) as info:
            dl.extend(other, 5, perishable=False, now=utc(2026, 3, 3))
        assert info.value.metadata["rule"] == "kind"


def test_no_extension_after_the_deadline() -> None:
    first = dl.deadline(HOLDER, utc(2026, 3, 2, 9, 0), 1, DE)  # ends 3 March, 23:00 UTC
    due = first.due_time.ToDatetime(tzinfo=UTC)
    assert dl.extend(first, 1, perishable=False, now=due - timedelta(seconds=1)).extended
    with pytest.raises(DeadlinePassed) as info:
        dl.extend(first, 1, perishable=False, now=due)
    assert info.value.metadata["deadline"] == "holder_answer"
    assert info.value.reason == "DEADLINE_PASSED"


def test_passed_as_of() -> None:
    first = dl.deadline(HOLDER, utc(2026, 3, 2, 9, 0), 1, DE)
    due = first.due_time.ToDatetime(tzinfo=UTC)
    assert dl.as_of(first, due - timedelta(microseconds=1)).state == D.DEADLINE_STATE_OPEN
    assert dl.as_of(first, due).state == D.DEADLINE_STATE_PASSED
    met = D.DetentionDeadline()
    met.CopyFrom(first)
    met.state = D.DEADLINE_STATE_MET
    assert dl.as_of(met, due + timedelta(days=9)).state == D.DEADLINE_STATE_MET


# --- calendars -----------------------------------------------------------------------------


def test_bad_calendars_say_what_is_wrong() -> None:
    with pytest.raises(ConfigError, match="country 'XX'"):
        dl.calendar_for("XX")
    with pytest.raises(ConfigError, match="subdivision 'ZZ' of DE"):
        dl.calendar_for("DE", "ZZ")
    with pytest.raises(ConfigError, match="unknown time zone"):
        dl.calendar_for("DE", time_zone="Europe/Atlantis")
    with pytest.raises(ConfigError, match="no default time zone for US"):
        dl.calendar_for("US")
    assert dl.calendar_for("us", time_zone="America/New_York").country == "US"
    assert dl.calendar_for("ES", "CN", "Atlantic/Canary").time_zone == "Atlantic/Canary"


def test_calendar_of_a_stored_deadline() -> None:
    got = dl.deadline(HOLDER, utc(2026, 3, 2, 9, 0), 5, BAVARIA)
    again = dl.calendar_of(got)
    assert (again.country, again.subdivision, again.time_zone) == ("DE", "BY", "Europe/Berlin")


# --- properties ------------------------------------------------------------------------------

CALENDARS = [DE, NL, BAVARIA, dl.calendar_for("BE"), dl.calendar_for("FR"), dl.calendar_for("GB")]
instants = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=300, deadline=None)
@given(start=instants, days=st.integers(1, 20), calendar=st.sampled_from(CALENDARS))
def test_last_day_is_a_working_day_and_the_count_is_exact(
    start: datetime, days: int, calendar: dl.Calendar
) -> None:
    got = dl.deadline(HOLDER, start, days, calendar)
    last = date.fromisoformat(got.last_day)
    assert last.weekday() < 5
    assert calendar.is_working_day(last)
    first_counted = calendar.local_date(start) + timedelta(days=1)
    assert len(list(calendar.working_days(first_counted, last))) == days
    due = got.due_time.ToDatetime(tzinfo=UTC)
    assert due > start
    # due_time is the end of last_day, local: one instant earlier is still that day.
    assert calendar.local_date(due - timedelta(microseconds=1)) == last
    assert calendar.local_date(due) == last + timedelta(days=1)


@settings(max_examples=300, deadline=None)
@given(
    first=instants,
    later_by=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=40)),
    days=st.integers(1, 10),
    calendar=st.sampled_from(CALENDARS),
)
def test_a_later_event_never_gets_an_earlier_deadline(
    first: datetime, later_by: timedelta, days: int, calendar: dl.Calendar
) -> None:
    a = dl.deadline(HOLDER, first, days, calendar)
    b = dl.deadline(HOLDER, first + later_by, days, calendar)
    assert b.due_time.ToDatetime(tzinfo=UTC) >= a.due_time.ToDatetime(tzinfo=UTC)
    assert b.last_day >= a.last_day


@settings(max_examples=200, deadline=None)
@given(start=instants, extra=st.integers(1, 10), calendar=st.sampled_from(CALENDARS))
def test_an_extension_lands_on_a_working_day_later(
    start: datetime, extra: int, calendar: dl.Calendar
) -> None:
    first = dl.deadline(HOLDER, start, 10, calendar)
    extended = dl.extend(first, extra, perishable=False, now=start)
    assert extended.last_day > first.last_day
    assert calendar.is_working_day(date.fromisoformat(extended.last_day))
    # Extending is the same as a longer period from the start.
    assert extended.last_day == dl.deadline(HOLDER, start, 10 + extra, calendar).last_day
