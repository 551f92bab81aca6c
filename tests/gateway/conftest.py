"""A real federation on disk and a real gateway (gRPC, mTLS) per test."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import GatewayConfig
from gateway.server import RunningGateway, start
from intelshare import config, devfed
from intelshare.directory import Anchor, verify_directory
from intelshare.envelope import HeaderFields, lookup_recipient_keys, seal
from intelshare.gateway_client import GatewayClient
from intelshare.v1 import envelope_pb2

DEMO = Path(__file__).resolve().parents[2].parent / "shared" / "examples" / "demo-federation.yaml"

AGENCIES = [
    devfed.AgencySpec("nl-customs", "Netherlands Customs", "NL", "customs"),
    devfed.AgencySpec("be-police", "Belgian Federal Police", "BE", "police"),
    devfed.AgencySpec("de-customs", "German Customs", "DE", "customs"),
    devfed.AgencySpec("fr-customs", "French Customs", "FR", "customs"),
]


def demo_treaties(today: date | None = None) -> list[dict[str, Any]]:
    """The two treaties of the demo federation, valid around ``today``."""
    today = today or datetime.now(UTC).date()
    data = yaml.safe_load(TREATIES_YAML)
    for t in data:
        t["valid"] = {
            "from": (today - timedelta(days=30)).isoformat(),
            "until": (today + timedelta(days=365)).isoformat(),
        }
    return data


TREATIES_YAML = """
- id: customs-mutual-assistance
  version: 1
  title: Mutual assistance between customs administrations
  parties: [nl-customs, de-customs]
  kinds: [alert, alert_update, case_entry, hit_report]
  categories: [counterfeit_goods, narcotics, excise_fraud, trade_secret_theft, firearms, suspect_shipment]
  max_handling: {code: H2, tlp: AMBER}
  fields:
    alert: [kind, urgency, description, subjects.persons.name]
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
    alert: [kind, urgency, description]
  retention_days: 365
  purpose: counterfeit medicines
  onward_sharing: forbidden
"""


@dataclasses.dataclass
class GatewayEnv:
    fed: devfed.LocalFederation
    running: RunningGateway
    config: GatewayConfig

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.running.port}"

    def client(self, agency: str | None) -> GatewayClient:
        ca = self.fed.ca_file.read_bytes()
        if agency is None:
            return GatewayClient(self.target, ca_pem=ca, cert_pem=None, key_pem=None)
        a = self.fed.agencies[agency]
        return GatewayClient(self.target, ca_pem=ca, cert_pem=a.cert_pem, key_pem=a.key_pem)

    def directory(self):  # type: ignore[no-untyped-def]
        return verify_directory(
            self.fed.directory_file.read_bytes(),
            Anchor.load(self.fed.anchor_file),
            now=datetime.now(UTC),
        )

    def seal(
        self,
        sender: str,
        recipients: list[str],
        *,
        treaty: str = "counterfeit-medicines-taskforce",
        treaty_version: int = 1,
        payload: bytes = b'{"kind": "counterfeit_goods"}',
        kind: int = envelope_pb2.MESSAGE_KIND_ALERT,
        categories: tuple[str, ...] = ("counterfeit_goods",),
        handling: int = envelope_pb2.HANDLING_CODE_H1,
        tlp: int = envelope_pb2.TLP_AMBER,
        expire_in: timedelta = timedelta(days=7),
        create_time: datetime | None = None,
        keys_of: str | None = None,
        directory: Any = None,
    ) -> envelope_pb2.Envelope:
        d = directory or self.directory()
        signer = self.fed.agencies[keys_of or sender].keys
        now = create_time or datetime.now(UTC)
        fields = HeaderFields(
            sender=sender,
            recipients=tuple(recipients),
            treaty_id=treaty,
            treaty_version=treaty_version,
            kind=kind,  # type: ignore[arg-type]
            handling=handling,  # type: ignore[arg-type]
            tlp=tlp,  # type: ignore[arg-type]
            categories=categories,
            expire_time=now + expire_in,
            create_time=now,
        )
        return seal(
            fields,
            payload,
            signing_key=signer.signing,
            signing_key_id=signer.signing_key_id,
            recipient_keys=lookup_recipient_keys(d, recipients),
        )


def write_config(fed: devfed.LocalFederation, db_url: str, **over: Any) -> GatewayConfig:
    values = fed.gateway_config(db_url, **{"heartbeat_seconds": 0.5, **over})
    # as the service reads its file, without the environment's overrides
    return config.load(GatewayConfig, "gateway", {"gateway": values}, env={})


@pytest.fixture
def local_fed(tmp_path: Path) -> devfed.LocalFederation:
    return devfed.build(tmp_path / "fed", AGENCIES, demo_treaties())


@pytest.fixture
def make_gateway(
    local_fed: devfed.LocalFederation, db_url: str
) -> Iterator[Callable[..., GatewayEnv]]:
    started: list[RunningGateway] = []

    def factory(publish_treaties: bool = True, **over: Any) -> GatewayEnv:
        cfg = write_config(local_fed, db_url, **over)
        running = start(cfg)
        started.append(running)
        env = GatewayEnv(local_fed, running, cfg)
        if publish_treaties:
            local_fed.publish_treaties(running.port)
        return env

    yield factory
    for r in started:
        r.stop(grace=0.5)


@pytest.fixture
def gw(make_gateway: Callable[..., GatewayEnv]) -> GatewayEnv:
    return make_gateway()
