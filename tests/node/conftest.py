"""A federation on disk, a gateway and agency nodes, for node tests.

The treaties are the two of the demo federation (``shared/examples``), valid
around today, with the demo's alert field allow-lists and a ``hit_report``
allow-list (the demo has none, so there a hit report carries only the fact
of a hit). Every node gets its own database: SQLite files, or fresh
PostgreSQL databases on the server of the ``db_url`` fixture.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import GatewayConfig
from gateway.server import RunningGateway
from gateway.server import start as start_gateway
from intelshare import devfed
from node.cli.client import NodeClient
from node.config import NodeConfig
from node.server import Node
from node.server import start as start_node
from node.storage.officers import OfficerRegistry
from tests.conftest import PG_ADMIN_URL

AGENCIES = [
    devfed.AgencySpec("nl-customs", "Netherlands Customs", "NL", "customs"),
    devfed.AgencySpec("be-police", "Belgian Federal Police", "BE", "police"),
    devfed.AgencySpec("de-customs", "German Customs", "DE", "customs"),
]

CUSTOMS = "customs-mutual-assistance"
TASKFORCE = "counterfeit-medicines-taskforce"

TREATIES_YAML = """
- id: customs-mutual-assistance
  version: 1
  title: Mutual assistance between customs administrations
  parties: [nl-customs, de-customs]
  kinds: [alert, alert_update, case_entry, hit_report]
  categories: [counterfeit_goods, narcotics, excise_fraud, trade_secret_theft, firearms, suspect_shipment]
  max_handling: {code: H2, tlp: AMBER}
  fields:
    alert: [kind, urgency, description, subjects.persons.name, subjects.persons.date_of_birth,
            subjects.persons.nationality, subjects.persons.passport_number, subjects.companies,
            subjects.containers, subjects.vessels, subjects.vehicles, subjects.documents,
            handling, tlp, evaluation, expires_at]
    hit_report: [found_at, place, found]
  retention_days: 1095
  purpose: customs cooperation
  onward_sharing: with_originator_consent
- id: counterfeit-medicines-taskforce
  version: 1
  title: Joint task force on counterfeit medicines
  parties: [nl-customs, be-police, de-customs]
  kinds: [alert, alert_update, case_entry, hit_report]
  categories: [counterfeit_goods, narcotics]
  max_handling: {code: H1, tlp: AMBER}
  fields:
    alert: [kind, urgency, description, subjects.persons.name, subjects.persons.nationality,
            subjects.companies, subjects.containers, subjects.vessels, subjects.vehicles,
            handling, tlp, evaluation, expires_at]
    hit_report: [found_at, place, found]
    case_entry: [text, subjects, attachments_digest]
  retention_days: 365
  purpose: counterfeit medicines
  onward_sharing: forbidden
  review_required_for: [wanted_person]
"""


def treaties(today: date | None = None) -> list[dict[str, Any]]:
    today = today or datetime.now(UTC).date()
    data = yaml.safe_load(TREATIES_YAML)
    for t in data:
        t["valid"] = {
            "from": (today - timedelta(days=30)).isoformat(),
            "until": (today + timedelta(days=365)).isoformat(),
        }
    return data


#: The tests' timings: heartbeats, maintenance and back-off short enough for a test to wait out.
GATEWAY_TIMINGS: dict[str, Any] = {"heartbeat_seconds": 0.5}
NODE_TIMINGS: dict[str, Any] = {
    "heartbeat_seconds": 0.5,
    "maintenance_seconds": 0.5,
    "send_backoff_max_seconds": 1.0,
    "inbox_backoff_max_seconds": 1.0,
    "gateway_timeout_seconds": 5.0,
}


def gateway_config(fed: devfed.LocalFederation, db_url: str, **over: Any) -> dict[str, Any]:
    return fed.gateway_config(db_url, **{**GATEWAY_TIMINGS, **over})


def node_config(
    fed: devfed.LocalFederation, agency: str, db_url: str, gateway_port: int, **over: Any
) -> dict[str, Any]:
    return fed.node_config(agency, db_url, gateway_port, **{**NODE_TIMINGS, **over})


def publish_treaties(fed: devfed.LocalFederation, port: int) -> None:
    fed.publish_treaties(port)


@pytest.fixture
def fed(tmp_path: Path) -> devfed.LocalFederation:
    return devfed.build(tmp_path / "fed", AGENCIES, treaties())


@pytest.fixture
def db_factory(db_url: str, tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """More databases of the same kind as ``db_url``: one per node."""
    created: list[str] = []

    def make(name: str) -> str:
        if db_url.startswith("sqlite"):
            return f"sqlite:///{tmp_path / (name + '.db')}"
        import psycopg

        db = f"intelshare_n_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{db}"')
        created.append(db)
        return db_url.rsplit("/", 1)[0] + f"/{db}"

    yield make
    if created:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            for db in created:
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


@dataclasses.dataclass
class RunningNode:
    node: Node
    tokens: dict[str, str]
    ca_pem: bytes

    @property
    def agency(self) -> str:
        return self.node.config.agency_id

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.node.port}"

    def client(self, role: str = "admin") -> NodeClient:
        return NodeClient(
            self.target, ca_pem=self.ca_pem, server_name=self.agency, token=self.tokens[role]
        )


_PATHS = ("anchor", "tls_cert", "tls_key", "ca_cert", "signing_key", "directory")


def _gateway(values: dict[str, Any]) -> RunningGateway:
    return start_gateway(
        GatewayConfig(**{k: (Path(v) if k in _PATHS else v) for k, v in values.items()})
    )


@dataclasses.dataclass
class Cluster:
    fed: devfed.LocalFederation
    gateway: RunningGateway
    nodes: dict[str, RunningNode]
    make_db: Callable[[str], str]
    _started: list[RunningNode]
    gateway_values: dict[str, Any] = dataclasses.field(default_factory=dict)

    def restart_gateway(self, port: int) -> RunningGateway:
        """A new gateway on the same database and port (after ``gateway.stop``)."""
        self.gateway = _gateway({**self.gateway_values, "listen": f"127.0.0.1:{port}"})
        return self.gateway

    def start_node(self, agency: str, db: str | None = None, **over: Any) -> RunningNode:
        url = db or self.make_db(agency)
        cfg = NodeConfig(
            **{
                k: (Path(v) if k in ("identity_dir", "directory_cache") else v)
                for k, v in node_config(self.fed, agency, url, self.gateway.port, **over).items()
            }
        )
        node = start_node(cfg)
        registry = OfficerRegistry(node.store.engine)
        tokens = {}
        existing = {o.name for o in registry.list()}
        for role in ("admin", "liaison", "analyst"):
            name = f"{role}-{uuid.uuid4().hex[:6]}" if role in existing else role
            tokens[role] = registry.add(name, role)[1]
        running = RunningNode(node, tokens, self.fed.ca_file.read_bytes())
        self.nodes[agency] = running
        self._started.append(running)
        return running


@pytest.fixture
def cluster(
    fed: devfed.LocalFederation,
    db_url: str,
    db_factory: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Cluster]:
    """A gateway (in this process) with treaties published; start nodes with ``start_node``.

    Nodes started here run without the notification relay (no bundled
    Redis per node): these tests are about alerts and cases, the relay has
    its own tests in ``tests/node/notify``, and starting a server process
    from this multi-threaded test process is best avoided.
    """
    monkeypatch.setattr("node.server.start_notifier", lambda config, store: None)
    values = gateway_config(fed, db_url)
    gw = _gateway(values)
    publish_treaties(fed, gw.port)
    c = Cluster(fed, gw, {}, db_factory, [], values)
    yield c
    for n in c._started:
        n.node.stop(grace=0.2)
    c.gateway.stop(grace=0.2)


# --- helpers for tests ---------------------------------------------------------------


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout``."""
    import time

    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = condition()
        except AssertionError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def expire_in(delta: timedelta) -> Any:
    from node.schema import alert as rec

    return rec.ms_to_ts(int((datetime.now(UTC) + delta).timestamp() * 1000))


def demo_alert(**over: Any) -> Any:
    """The demo scenario's alert: a container of counterfeit medicines, a consignee, a person."""
    from intelshare.v1 import alert_pb2, envelope_pb2

    alert = alert_pb2.Alert(
        kind=alert_pb2.ALERT_KIND_COUNTERFEIT_GOODS,
        urgency=alert_pb2.URGENCY_HIGH,
        description="Container of counterfeit medicines expected at Rotterdam; consignee in Antwerp",
        handling=envelope_pb2.HANDLING_CODE_H1,
        tlp=envelope_pb2.TLP_AMBER,
        evaluation=alert_pb2.Evaluation(
            source_reliability=alert_pb2.SOURCE_RELIABILITY_B,
            information_credibility=alert_pb2.INFORMATION_CREDIBILITY_2,
        ),
        expire_time=expire_in(timedelta(days=7)),
        recipients=[
            alert_pb2.AlertRecipient(agency_id="de-customs", treaty_id=CUSTOMS),
            alert_pb2.AlertRecipient(agency_id="be-police", treaty_id=TASKFORCE),
        ],
    )
    alert.subjects.persons.add(
        name="Jan Jansen",
        date_of_birth="1980-02-29",
        nationality="NL",
        passport_number="NX1234567",
        role="consignee's director",
    )
    alert.subjects.containers.add(
        number="MSCU1234566", bill_of_lading="MEDU1234567", hs_codes=["300490"]
    )
    alert.subjects.companies.add(name="Pharma Trading BV", country="BE", role="consignee")
    for key, value in over.items():
        if isinstance(value, list):
            del getattr(alert, key)[:]
            getattr(alert, key).extend(value)
        elif hasattr(value, "CopyFrom"):
            getattr(alert, key).CopyFrom(value)
        else:
            setattr(alert, key, value)
    return alert
