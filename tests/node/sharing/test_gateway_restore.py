"""Nodes after the gateway's database went back to a backup.

A restored gateway has allocated fewer sequence numbers than its nodes have
already read, and it allocates the next ones again to new messages. A node
must neither wait forever on a cursor the gateway refuses nor acknowledge
(release) entries it never received: it reads again from the gateway's
acknowledged position, recognizes what it stored by message id, and stores
what is new. Real database backups (SQLite's backup API, a PostgreSQL
template copy), a real gateway restarted on them, real nodes.
"""

from __future__ import annotations

import shutil
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import select

from intelshare import errors
from intelshare.cli import _load_plugins, cli
from node.storage import tables as t
from tests.conftest import PG_ADMIN_URL
from tests.gateway.test_service import entries_until
from tests.node.conftest import Cluster, RunningNode, demo_alert, wait_for
from tests.node.sharing.test_inbound import audit_leaves, count, leaves_in
from tests.node.sharing.test_outbound_concurrent import TO_BE

pytestmark = pytest.mark.slow
_load_plugins()


def _backup(url: str, tmp_path: Path) -> Callable[[], None]:
    """Copy the (stopped) gateway's database now; the function puts the copy back."""
    if url.startswith("sqlite"):
        live = Path(url.removeprefix("sqlite:///"))
        saved = tmp_path / "gateway-backup.db"
        with sqlite3.connect(live) as src, sqlite3.connect(saved) as dst:
            src.backup(dst)

        def restore_sqlite() -> None:
            for suffix in ("-wal", "-shm"):
                Path(f"{live}{suffix}").unlink(missing_ok=True)
            shutil.copyfile(saved, live)

        return restore_sqlite
    name = url.rsplit("/", 1)[1]
    saved_name = f"intelshare_bk_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{saved_name}" TEMPLATE "{name}"')

    def restore_pg() -> None:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{saved_name}"')
            conn.execute(f'DROP DATABASE "{saved_name}"')

    return restore_pg


def _issue(nl: RunningNode, n: int, label: str) -> None:
    with nl.client("liaison") as c:
        for i in range(n):
            c.create_alert(demo_alert(recipients=TO_BE, description=f"{label} {i}"))


def _settled(*nodes: RunningNode) -> None:
    """Every submission the gateway answered is recorded as accepted (none resent)."""
    for node in nodes:
        wait_for(lambda node=node: node.node.sender.pending_count() == 0, what="senders idle")


def _received_alerts(node: RunningNode) -> list[str]:
    with node.node.store.engine.connect() as conn:
        rows = conn.execute(
            select(t.received.c.message_id).where(t.received.c.kind == 1)  # MESSAGE_KIND_ALERT
        ).all()
    return [r.message_id for r in rows]


def test_nodes_read_again_after_the_gateway_database_was_restored(
    cluster: Cluster, tmp_path: Path
) -> None:
    nl = cluster.start_node("nl-customs")
    be = cluster.start_node("be-police")
    _issue(nl, 2, "before the backup")
    wait_for(lambda: len(_received_alerts(be)) == 2, what="two alerts stored at be-police")
    wait_for(lambda: be.node.inbound.cursor() == 2, what="be-police at sequence 2")
    port = cluster.gateway.port
    url = cluster.gateway_values["database_url"]

    _settled(nl, be)
    cluster.gateway.stop(grace=0.2)
    restore = _backup(url, tmp_path)
    cluster.restart_gateway(port)
    _issue(nl, 3, "lost with the restore")
    wait_for(lambda: len(_received_alerts(be)) == 5, what="five alerts stored at be-police")
    wait_for(lambda: be.node.inbound.cursor() == 5, what="be-police at sequence 5")

    _settled(nl, be)
    cluster.gateway.stop(grace=0.2)
    restore()  # be-police's queue is back at 2; its cursor says 5
    cluster.restart_gateway(port)
    reset = wait_for(
        lambda: audit_leaves(be, "cursor_reset") or None,
        what="be-police told that its cursor is ahead",
    )
    assert [(e["cursor"], e["gateway_last"]) for e in reset] == [(5, 2)]
    assert reset[0]["gateway_acknowledged"] <= 2
    assert cluster.gateway.state.store.position("be-police")[0] == 2  # nothing released

    # The next alert gets sequence 3 again: be-police must store it, not skip it.
    _issue(nl, 1, "after the restore")
    wait_for(lambda: len(_received_alerts(be)) == 6, what="the new alert stored at be-police")
    assert len(set(_received_alerts(be))) == 6  # nothing stored twice
    wait_for(lambda: be.node.inbound.cursor() == 3, what="be-police at sequence 3")
    assert count(be, t.received) == len(set(_all_received(be)))  # receipts too, once each
    # The gateway kept the evidence of the refusal in its own log.
    leaves = _gateway_leaves(cluster, "cursor_ahead")
    assert any(leaf["recipient"] == "be-police" and leaf["cursor"] == 5 for leaf in leaves)


def _all_received(node: RunningNode) -> list[str]:
    with node.node.store.engine.connect() as conn:
        return [r.message_id for r in conn.execute(select(t.received.c.message_id))]


def test_an_acknowledgement_beyond_the_queue_is_refused_not_clamped(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs")
    be = cluster.start_node("be-police")
    be.node.inbound.stop()
    _issue(nl, 2, "queued")
    store = cluster.gateway.state.store
    # CreateAlert answers once nl-customs committed; its sender submits after.
    wait_for(lambda: store.position("be-police")[0] == 2, what="both alerts at the gateway")
    with be.node.gateway_client() as client:
        with pytest.raises(errors.CursorAhead) as refused:
            client.acknowledge(7)
        assert refused.value.metadata["last_sequence"] == "2"
        assert refused.value.metadata["acknowledged_sequence"] == "0"
        # Nothing was released: both entries are still there to be read.
        assert [e.sequence for e in entries_until(client.stream_inbox(0), 2)] == [1, 2]
        assert client.acknowledge(2) == 2


def _gateway_leaves(cluster: Cluster, event: str) -> list[dict[str, Any]]:
    return leaves_in(cluster.gateway.state.store.engine, event)


def test_a_fenced_restore_numbers_new_messages_above_every_cursor(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The operator's procedure: restore, ``intelshare gateway queues fence``, start.

    Without the fence, be-police (cursor 5, restored queue at 2) would read
    on from 5 once the queue is back at 6 and skip the new messages 3 to 5.
    """
    nl = cluster.start_node("nl-customs")
    be = cluster.start_node("be-police")
    _issue(nl, 2, "before the backup")
    wait_for(lambda: be.node.inbound.cursor() == 2, what="be-police at sequence 2")
    port = cluster.gateway.port
    _settled(nl, be)
    cluster.gateway.stop(grace=0.2)
    restore = _backup(cluster.gateway_values["database_url"], tmp_path)
    cluster.restart_gateway(port)
    _issue(nl, 3, "lost with the restore")
    wait_for(lambda: be.node.inbound.cursor() == 5, what="be-police at sequence 5")
    be_db = be.node.config.database_url
    _settled(nl, be)
    be.node.stop(grace=0.2)  # offline while the gateway is restored and new alerts queue up
    cluster.gateway.stop(grace=0.2)
    restore()

    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({"gateway": {**cluster.gateway_values}}))
    fenced = CliRunner().invoke(
        cli, ["gateway", "queues", "fence", "--config", str(config), "--gap", "1000", "--yes"]
    )
    assert fenced.exit_code == 0, fenced.output
    assert "be-police: last sequence 2 -> next after 1002" in fenced.output
    cluster.restart_gateway(port)
    _issue(nl, 4, "after the restore")  # be-police's queue: 1003 to 1006
    be = cluster.start_node("be-police", db=be_db)
    wait_for(lambda: len(_received_alerts(be)) == 9, what="the four new alerts at be-police")
    assert len(set(_received_alerts(be))) == 9
    assert audit_leaves(be, "cursor_reset") == []
    wait_for(lambda: be.node.inbound.cursor() >= 1006, what="be-police past sequence 1006")
    fences = _gateway_leaves(cluster, "queue_fenced")
    assert {(f["recipient"], f["last_sequence"], f["next_after"]) for f in fences} >= {
        ("be-police", 2, 1002)
    }
