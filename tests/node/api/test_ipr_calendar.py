"""The node's deadline settings: a holiday subdivision and a time zone (SQLite, PostgreSQL).

A German customs office at Büsingen am Hochrhein (Baden-Württemberg,
time zone Europe/Busingen) counts Epiphany (6 January), which is a
public holiday in Baden-Württemberg and Bavaria but not in Germany as a
whole: a detention on Monday 5 January 2026 must be notified by the end
of Wednesday the 7th there, by the end of Tuesday the 6th elsewhere in
Germany. Settings the libraries do not know, or a region outside the
agency's country, stop the node at start with the setting's name.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from intelshare import devfed, errors
from intelshare.v1 import detention_pb2
from node.config import NodeConfig
from node.ipr import deadlines as dl
from node.kinds.ipr_common import calendar_provider
from tests.node.api.ipr_fixtures import client, ipr_fed, shoes, ts
from tests.node.conftest import Cluster

D = detention_pb2


@pytest.fixture
def fed(tmp_path: Path) -> devfed.LocalFederation:
    return ipr_fed(tmp_path)


def _config(**over: object) -> NodeConfig:
    values: dict[str, object] = {
        "agency_id": "de-customs",
        "listen": "127.0.0.1:0",
        "database_url": "sqlite:///:memory:",
        "gateway": "127.0.0.1:1",
        "identity_dir": Path("/nonexistent"),
    }
    values.update(over)
    return NodeConfig(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("setting", "value", "words"),
    [
        (
            "holiday_subdivision",
            "Bavaria",
            "node.holiday_subdivision: 'Bavaria' is not an ISO 3166-2",
        ),
        ("deadline_time_zone", "Europe/Hamburg", "node.deadline_time_zone: unknown time zone"),
        ("deadline_closed_days", ("2026-05-05", "5 May"), "node.deadline_closed_days[1]: '5 May'"),
    ],
)
def test_config_refuses_malformed_deadline_settings(
    setting: str, value: object, words: str
) -> None:
    with pytest.raises(errors.ConfigError) as caught:
        _config(**{setting: value}).validate()
    assert words in caught.value.message


def test_config_takes_well_formed_deadline_settings() -> None:
    cfg = _config(
        holiday_subdivision="DE-BW",
        deadline_time_zone="Europe/Busingen",
        deadline_closed_days=("2026-12-24",),
    )
    cfg.validate()
    assert cfg.closed_days == (date(2026, 12, 24),)


def test_calendar_settings_the_libraries_do_not_know() -> None:
    with pytest.raises(errors.ConfigError, match=r"node\.holiday_subdivision: .*'ZZ' of DE"):
        calendar_provider(lambda: "DE", subdivision="DE-ZZ")
    with pytest.raises(errors.ConfigError, match=r"node\.deadline_time_zone: unknown time zone"):
        calendar_provider(lambda: "DE", subdivision="DE-BY", time_zone="Mars/Olympus")
    # a region of another country is refused once the directory names this one
    elsewhere = calendar_provider(lambda: "DE", subdivision="ES-CN")
    with pytest.raises(errors.ConfigError, match=r"ES-CN is not in DE"):
        elsewhere()
    # closed days of national rules count as holidays
    closed = calendar_provider(lambda: "NL", closed_days=[date(2026, 5, 5)])()
    assert not closed.is_working_day(date(2026, 5, 5))
    assert dl.calendar_for("NL").is_working_day(date(2026, 5, 5))


def test_a_node_counts_its_subdivisions_holidays_in_its_time_zone(cluster: Cluster) -> None:
    de = cluster.start_node(
        "de-customs", holiday_subdivision="DE-BW", deadline_time_zone="Europe/Busingen"
    )
    detained = datetime(2026, 1, 5, 10, 30, tzinfo=ZoneInfo("Europe/Busingen"))
    draft = shoes(procedure=D.DETENTION_PROCEDURE_EX_OFFICIO)
    draft.detain_time.CopyFrom(ts(detained))
    with client(de) as c:
        created = c.create_detention(draft)
    (notification,) = created.deadlines
    assert notification.kind == D.DEADLINE_KIND_NOTIFICATION
    assert (notification.country, notification.subdivision) == ("DE", "BW")
    assert notification.time_zone == "Europe/Busingen"
    # Epiphany is not a working day in Baden-Württemberg: one working day is the 7th
    assert notification.last_day == "2026-01-07"
    end = datetime(2026, 1, 8, tzinfo=ZoneInfo("Europe/Busingen")).astimezone(UTC)
    assert notification.due_time.ToDatetime(tzinfo=UTC) == end
    # the same detention elsewhere in Germany would be due a day earlier
    national = dl.notification_deadline(detained, dl.calendar_for("DE"))
    assert national.last_day == "2026-01-06"
    assert national.due_time.ToDatetime(tzinfo=UTC) == end - timedelta(days=1)


def test_a_region_outside_the_agencys_country_stops_the_node(cluster: Cluster) -> None:
    with pytest.raises(errors.ConfigError, match=r"node\.holiday_subdivision: ES-CN is not in DE"):
        cluster.start_node("de-customs", holiday_subdivision="ES-CN")
