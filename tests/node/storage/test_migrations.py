"""A database of the previous release upgrades with its rows intact (SQLite and PostgreSQL)."""

from __future__ import annotations

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from intelshare import migrate
from intelshare.db import make_engine
from node.server import MIGRATIONS
from node.storage import tables as t


def test_upgrade_from_0005_keeps_alerts_events_and_received_envelopes(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine, MIGRATIONS, "0005")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO node_alerts (alert_id, direction, origin_agency, kind, urgency, "
                    "treaty_id, treaty_version, categories, recipients, handling, tlp, record, "
                    "revision, state, create_ms, update_ms, expire_ms, expired_noted) VALUES "
                    "('a1', 'issued', 'nl-customs', 'counterfeit_goods', 'high', 't', 1, "
                    "'[\"counterfeit_goods\"]', '[]', 2, 3, '{\"description\":\"x\"}', 1, "
                    "'active', 10, 10, 99, false)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO node_events (seq, event_id, type, alert_id, created_ms) "
                    "VALUES (1, 'e1', 'alert.issued', 'a1', 10)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO node_received (message_id, kind, sender, treaty_id, "
                    "treaty_version, alert_id, sequence, envelope, envelope_sha256, "
                    "gateway_receipt, received_ms, retain_until_ms) VALUES "
                    "('m1', 1, 'be-police', 't', 1, 'a1', 7, :b, :d, :b, 10, 20)"
                ),
                {"b": b"env", "d": b"\x00" * 32},
            )
        migrate.upgrade(engine, MIGRATIONS)
        # the newest migration, whichever it is (0006 made the tables checked below)
        head = ScriptDirectory.from_config(migrate.alembic_config(MIGRATIONS)).get_current_head()
        assert migrate.current(engine, MIGRATIONS) == head
        with engine.connect() as conn:
            alert = conn.execute(t.alerts.select()).one()
            assert (alert.alert_id, alert.record) == ("a1", '{"description":"x"}')
            event = conn.execute(t.events.select()).one()
            assert (event.alert_id, event.record_id) == ("a1", None)
            envelope = conn.execute(t.received.select()).one()
            assert (bytes(envelope.envelope), envelope.record_id) == (b"env", None)
            assert conn.execute(t.records.select()).first() is None
        tables = set(inspect(engine).get_table_names())
        assert {"node_records", "node_record_views", "node_record_deliveries"} <= tables
    finally:
        engine.dispose()


def test_upgrade_to_0011_turns_reported_times_into_microseconds(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine, MIGRATIONS, "0010")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO node_alerts (alert_id, direction, origin_agency, kind, urgency, "
                    "treaty_id, treaty_version, categories, recipients, handling, tlp, record, "
                    "revision, state, create_ms, update_ms, expire_ms, expired_noted, "
                    "acknowledged_ms) VALUES ('a1', 'issued', 'nl-customs', 'counterfeit_goods', "
                    "'high', 't', 1, '[]', '[]', 2, 3, '{}', 1, 'active', 10, 10, 99, false, 1234)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO node_deliveries (alert_id, agency_id, view_id, treaty_id, "
                    "treaty_version, acknowledged_ms, hit_count, last_hit_ms) VALUES "
                    "('a1', 'be-police', 'v1', 't', 1, 1500, 1, 1600)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO node_hits (hit_id, alert_id, agency_id, direction, found_ms, "
                    "place, found, reported_ms) VALUES "
                    "('h1', 'a1', 'be-police', 'received', 1400, 'p', 'f', 1600), "
                    "('h2', 'a1', 'be-police', 'received', NULL, 'p', 'f', 1700)"
                )
            )
        migrate.upgrade(engine, MIGRATIONS, "0011")

        def read(sql: str) -> list[tuple[object, ...]]:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(text(sql))]

        assert read("SELECT acknowledged_us FROM node_alerts") == [(1_234_000,)]
        assert read("SELECT acknowledged_us, last_hit_us FROM node_deliveries") == [
            (1_500_000, 1_600_000)
        ]
        assert read("SELECT found_us, reported_us FROM node_hits ORDER BY hit_id") == [
            (1_400_000, 1_600_000),
            (None, 1_700_000),
        ]
        cfg = migrate.alembic_config(MIGRATIONS)
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0010")
        assert read("SELECT found_ms, reported_ms FROM node_hits ORDER BY hit_id") == [
            (1400, 1600),
            (None, 1700),
        ]
    finally:
        engine.dispose()
