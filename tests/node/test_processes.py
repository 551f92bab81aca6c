"""The done-criterion for alerts: a gateway and three nodes as separate processes.

Every service is ``python -m intelshare.cli ... serve`` in its own process,
exactly as operators run them, talking mTLS to each other; the test talks
to the nodes through the officer API as the ``alert`` commands do. One
scenario per database backend (SQLite files; fresh PostgreSQL databases),
in the order a real day would bring it:

issue → delivery and redaction per treaty (de-customs gets date of birth
and passport number, be-police does not) → acknowledgement → hit report →
update → expiry → gateway outage (SIGKILL, issue while it is down, restart,
delivered) → node restart (SIGKILL be-police, alerts keep arriving at the
gateway, restart, it catches up, nothing twice) → revoke.

Waits poll a condition with a deadline; nothing sleeps in place of waiting.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select

from intelshare import devfed, errors
from intelshare.db import make_engine
from intelshare.v1 import alert_pb2
from node.cli.client import NodeClient
from node.config import load_config
from node.server import open_database
from node.storage import tables as t
from node.storage.officers import OfficerRegistry
from tests.node.conftest import (
    CUSTOMS,
    TASKFORCE,
    demo_alert,
    expire_in,
    gateway_config,
    node_config,
    publish_treaties,
    wait_for,
)

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@dataclass
class Service:
    """One ``intelshare ... serve`` process."""

    name: str
    args: list[str]
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0

    @property
    def ready_file(self) -> Path:
        return self.workdir / f"{self.name}.port"

    @property
    def log_file(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace")[-6000:] if self.log_file.exists() else ""

    def start(self, timeout: float = 60.0) -> None:
        self.ready_file.unlink(missing_ok=True)
        with self.log_file.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "intelshare.cli",
                    *self.args,
                    "--ready-file",
                    str(self.ready_file),
                    "--log-level",
                    "WARNING",
                ],
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited early:\n{self.log_text()}")
            text = self.ready_file.read_text().strip() if self.ready_file.exists() else ""
            if text.isdigit():
                self.port = int(text)
                return
            time.sleep(0.05)
        raise AssertionError(f"{self.name} not ready after {timeout}s:\n{self.log_text()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hook, no flush, no finally block."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@dataclass
class World:
    fed: devfed.LocalFederation
    workdir: Path
    gateway: Service
    nodes: dict[str, Service] = field(default_factory=dict)
    configs: dict[str, Path] = field(default_factory=dict)
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)

    def client(self, agency: str, role: str = "admin") -> NodeClient:
        return NodeClient(
            f"127.0.0.1:{self.nodes[agency].port}",
            ca_pem=self.fed.ca_file.read_bytes(),
            server_name=agency,
            token=self.tokens[agency][role],
            timeout=15.0,
        )

    def count(self, agency: str, table: Any) -> int:
        engine = make_engine(load_config(self.configs[agency]).database_url)
        try:
            with engine.connect() as conn:
                return int(conn.execute(select(func.count()).select_from(table)).scalar_one())
        finally:
            engine.dispose()


def _write(path: Path, section: str, values: dict[str, Any]) -> Path:
    path.write_text(
        yaml.safe_dump(
            {section: {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}}
        )
    )
    return path


@pytest.fixture
def world(
    tmp_path: Path,
    fed: devfed.LocalFederation,
    db_url: str,
    db_factory: Callable[[str], str],
) -> Iterator[World]:
    gw_cfg = _write(
        tmp_path / "gateway.yaml", "gateway", gateway_config(fed, db_url, max_workers=16)
    )
    gateway = Service("gateway", ["gateway", "serve", "--config", str(gw_cfg)], tmp_path)
    w = World(fed, tmp_path, gateway)
    try:
        gateway.start()
        # Restarts must come back on the same port: the nodes are configured with it.
        _write(
            gw_cfg,
            "gateway",
            gateway_config(fed, db_url, max_workers=16, listen=f"127.0.0.1:{gateway.port}"),
        )
        publish_treaties(fed, gateway.port)
        for agency in ("nl-customs", "be-police", "de-customs"):
            cfg = _write(
                tmp_path / f"{agency}.yaml",
                "node",
                node_config(fed, agency, db_factory(agency), gateway.port, max_workers=8),
            )
            w.configs[agency] = cfg
            store = open_database(load_config(cfg))  # migrate, then add officers
            registry = OfficerRegistry(store.engine)
            w.tokens[agency] = {
                role: registry.add(role, role)[1] for role in ("admin", "liaison", "analyst")
            }
            store.engine.dispose()
            w.nodes[agency] = Service(agency, ["node", "serve", "--config", str(cfg)], tmp_path)
        for service in w.nodes.values():
            service.start()
        yield w
    finally:
        for service in [*w.nodes.values(), gateway]:
            service.stop()


def received_alerts(w: World, agency: str) -> list[alert_pb2.Alert]:
    with w.client(agency, "analyst") as c:
        return c.list_all(direction=alert_pb2.ALERT_DIRECTION_RECEIVED)


def one_received(w: World, agency: str, description: str) -> alert_pb2.Alert:
    def find() -> alert_pb2.Alert | None:
        for a in received_alerts(w, agency):
            if a.description == description:
                return a
        return None

    found: alert_pb2.Alert = wait_for(find, 45, f"{description!r} at {agency}")
    return found


def test_alerts_across_processes(world: World) -> None:
    w = world
    nl_liaison = w.client("nl-customs", "liaison")
    nl_analyst = w.client("nl-customs", "analyst")

    # --- issue, delivery, redaction per treaty -----------------------------------------
    issued = nl_liaison.create_alert(demo_alert(description="demo: counterfeit medicines"))
    at_de = one_received(w, "de-customs", "demo: counterfeit medicines")
    at_be = one_received(w, "be-police", "demo: counterfeit medicines")
    assert at_de.subjects.persons[0].date_of_birth == "1980-02-29"
    assert at_de.subjects.persons[0].passport_number == "NX1234567"
    assert at_be.subjects.persons[0].name == "Jan Jansen"
    assert at_be.subjects.persons[0].date_of_birth == ""
    assert at_be.subjects.persons[0].passport_number == ""
    assert at_be.treaty_id == TASKFORCE
    assert at_de.treaty_id == CUSTOMS
    wait_for(
        lambda: (
            {d.state for d in nl_analyst.get_alert(issued.name).deliveries}
            == {alert_pb2.DELIVERY_STATE_DELIVERED}
        ),
        45,
        "delivery receipts at nl-customs",
    )
    assert (
        "subjects.persons.passport_number"
        in nl_analyst.get_delivery(issued.name, "be-police").removed_fields
    )

    # --- acknowledgement and hit report --------------------------------------------------
    with w.client("be-police", "analyst") as be:
        be.acknowledge_alert(at_be.name)
        be.report_hit(
            at_be.name,
            found_time=expire_in(timedelta(hours=-1)),
            place="Port of Antwerp",
            found="consignee collected the container",
        )
    seen = wait_for(
        lambda: (a := nl_analyst.get_alert(issued.name)).hits and a,
        45,
        "hit report at nl-customs",
    )
    by_agency = {d.agency_id: d for d in seen.deliveries}
    assert by_agency["be-police"].state == alert_pb2.DELIVERY_STATE_HIT
    assert by_agency["be-police"].HasField("acknowledge_time")
    assert seen.hits[0].place == "Port of Antwerp"

    # --- update ---------------------------------------------------------------------------
    nl_liaison.update_alert(
        alert_pb2.Alert(name=issued.name, urgency=alert_pb2.URGENCY_CRITICAL), ["urgency"]
    )
    for agency, name in (("be-police", at_be.name), ("de-customs", at_de.name)):
        with w.client(agency, "analyst") as c:
            wait_for(
                lambda c=c, name=name: c.get_alert(name).urgency == alert_pb2.URGENCY_CRITICAL,
                45,
                f"update at {agency}",
            )

    # --- expiry ---------------------------------------------------------------------------
    short = nl_liaison.create_alert(
        demo_alert(description="demo: short-lived", expire_time=expire_in(timedelta(seconds=4)))
    )
    one_received(w, "be-police", "demo: short-lived")
    one_received(w, "de-customs", "demo: short-lived")
    for agency in ("nl-customs", "be-police", "de-customs"):
        with w.client(agency, "analyst") as c:
            wait_for(
                lambda c=c: all(
                    a.description != "demo: short-lived"
                    for a in c.list_all(state=alert_pb2.ALERT_STATE_ACTIVE)
                ),
                45,
                f"expiry at {agency}",
            )
            expired = c.list_all(state=alert_pb2.ALERT_STATE_EXPIRED)
            assert [a.description for a in expired] == ["demo: short-lived"]
    assert nl_analyst.get_alert(short.name).state == alert_pb2.ALERT_STATE_EXPIRED

    # --- gateway outage -------------------------------------------------------------------
    w.gateway.kill()
    during = nl_liaison.create_alert(demo_alert(description="demo: during the outage"))
    assert {d.state for d in during.deliveries} == {alert_pb2.DELIVERY_STATE_QUEUED}
    w.gateway.start()
    one_received(w, "be-police", "demo: during the outage")
    one_received(w, "de-customs", "demo: during the outage")
    wait_for(
        lambda: (
            {d.state for d in nl_analyst.get_alert(during.name).deliveries}
            == {alert_pb2.DELIVERY_STATE_DELIVERED}
        ),
        45,
        "receipts after the outage",
    )

    # --- node restart: be-police is down while alerts arrive at the gateway ---------------
    w.nodes["be-police"].kill()
    to_be = [alert_pb2.AlertRecipient(agency_id="be-police", treaty_id=TASKFORCE)]
    offline = [
        nl_liaison.create_alert(
            demo_alert(description=f"demo: while be is down {n}", recipients=to_be)
        )
        for n in range(3)
    ]
    for a in offline:
        wait_for(
            lambda a=a: (
                nl_analyst.get_alert(a.name).deliveries[0].state == alert_pb2.DELIVERY_STATE_SENT
            ),
            45,
            "accepted by the gateway while be-police is down",
        )
    w.nodes["be-police"].start()
    for n in range(3):
        one_received(w, "be-police", f"demo: while be is down {n}")
    for a in offline:
        wait_for(
            lambda a=a: (
                nl_analyst.get_alert(a.name).deliveries[0].state
                == alert_pb2.DELIVERY_STATE_DELIVERED
            ),
            45,
            "receipts from the restarted node",
        )
    # Nothing twice: one alert per message, one stored envelope per message id.
    at_be_all = received_alerts(w, "be-police")
    descriptions = [a.description for a in at_be_all]
    assert len(descriptions) == len(set(descriptions)) == 6
    assert w.count("be-police", t.alerts) == 6
    assert w.count("be-police", t.received) == 6 + 1  # six alerts and one update

    # --- revoke ---------------------------------------------------------------------------
    nl_liaison.revoke_alert(issued.name, reason="container seized")
    for agency, name in (("be-police", at_be.name), ("de-customs", at_de.name)):
        with w.client(agency, "analyst") as c:
            wait_for(
                lambda c=c, name=name: c.get_alert(name).state == alert_pb2.ALERT_STATE_REVOKED,
                45,
                f"revocation at {agency}",
            )

    # --- a refusal names the treaty rule ----------------------------------------------------
    with pytest.raises(errors.CategoryNotPermitted):
        nl_liaison.create_alert(
            demo_alert(
                kind=alert_pb2.ALERT_KIND_FIREARMS, description="demo: firearms", recipients=to_be
            )
        )
    nl_liaison.close()
    nl_analyst.close()
    for agency in w.nodes:
        w.nodes[agency].stop()
        assert "Traceback" not in w.nodes[agency].log_text(), w.nodes[agency].log_text()
