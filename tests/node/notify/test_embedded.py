"""The embedded default: no Redis configured, the node starts the bundled one; beat does the jobs.

``intelshare node serve`` without ``redis_url`` or ``broker_url`` starts a
real ``redis-server`` (append-only, Unix socket); ``intelshare worker
--beat`` with the same configuration finds it. The node runs with
``maintenance_in_node: false``, so the ``alert.expired`` event the webhook
receives can only come from beat's expiry task.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from intelshare import devfed
from intelshare.v1 import alert_pb2
from node.cli.client import NodeClient
from node.config import load_config
from node.notify import broker
from node.server import open_database
from node.storage.officers import OfficerRegistry
from tests.node.conftest import (
    TASKFORCE,
    demo_alert,
    expire_in,
    gateway_config,
    node_config,
    publish_treaties,
    wait_for,
)
from tests.node.notify.conftest import NOTIFY_SETTINGS, Receiver, Route, cli
from tests.node.test_processes import Service, _write

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(broker.redis_binary() is None, reason="no redis-server binary"),
]


def test_bundled_redis_and_beat(
    tmp_path: Path, fed: devfed.LocalFederation, receiver: Receiver
) -> None:
    from datetime import timedelta

    gw_cfg = _write(
        tmp_path / "gateway.yaml",
        "gateway",
        gateway_config(fed, f"sqlite:///{tmp_path / 'gateway.db'}"),
    )
    gateway = Service("gateway", ["gateway", "serve", "--config", str(gw_cfg)], tmp_path)
    services = [gateway]
    with tempfile.TemporaryDirectory(prefix="isr-") as short:
        values = node_config(
            fed,
            "nl-customs",
            f"sqlite:///{tmp_path / 'nl.db'}",
            0,
            embedded_redis_dir=short,
            maintenance_in_node=False,
            **NOTIFY_SETTINGS,
        )
        try:
            gateway.start()
            publish_treaties(fed, gateway.port)
            values["gateway"] = f"127.0.0.1:{gateway.port}"
            cfg_path = _write(tmp_path / "nl.yaml", "node", values)
            cfg = load_config(cfg_path)
            assert broker.uses_bundled(cfg)
            store = open_database(cfg)
            token = OfficerRegistry(store.engine).add("liaison", "liaison")[1]
            store.engine.dispose()
            node = Service("nl", ["node", "serve", "--config", str(cfg_path)], tmp_path)
            services.append(node)
            node.start()
            sock = broker.socket_path(cfg)
            assert sock.exists()  # the node started the bundled Redis
            route = Route()
            data = json.loads(
                cli(
                    "node",
                    "webhook",
                    "add",
                    receiver.url("/embedded"),
                    "--events",
                    "alert.issued,alert.expired",
                    "--config",
                    str(cfg_path),
                    "--json",
                )
            )
            route.secret = data["secret"]
            receiver.routes["/embedded"] = route
            worker = Service("worker", ["worker", "--config", str(cfg_path), "--beat"], tmp_path)
            services.append(worker)
            worker.start()
            with NodeClient(
                f"127.0.0.1:{node.port}",
                ca_pem=fed.ca_file.read_bytes(),
                server_name="nl-customs",
                token=token,
            ) as c:
                c.create_alert(
                    demo_alert(
                        description="embedded",
                        recipients=[
                            alert_pb2.AlertRecipient(agency_id="be-police", treaty_id=TASKFORCE)
                        ],
                        expire_time=expire_in(timedelta(seconds=2)),
                    )
                )
            wait_for(
                lambda: (
                    sorted(b["type"] for b in route.bodies.values())
                    == ["alert.expired", "alert.issued"]
                ),
                60,
                "alert.issued and beat's alert.expired at the webhook",
            )
            assert route.bad_signatures == 0
            assert route.duplicates() == 0
        finally:
            for service in reversed(services):
                service.stop()
        assert not sock.exists()  # stopped with the node that started it
        assert any(p.name.startswith("appendonly") for p in Path(short).iterdir())
