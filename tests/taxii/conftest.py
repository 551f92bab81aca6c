"""A node holding seeded alerts, and the TAXII server in front of it, for the TAXII tests.

The node and gateway are the node tests' (``tests.node.conftest``); the
alerts are written into the node's database before it starts by the
benches' seeder (:mod:`bench._seed`: the node's own writers in the test's
process, half issued to de-customs and half received from it under the
customs treaty), which fills thousands of alerts far faster than issuing
them through the API.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bench._seed import seed
from intelshare import devfed
from intelshare.v1 import alert_pb2
from taxii.config import config_from_mapping
from taxii.server import RunningTaxii, start
from tests.node.conftest import (  # noqa: F401  (fixtures)
    CUSTOMS,
    TASKFORCE,
    Cluster,
    RunningNode,
    cluster,
    db_factory,
    demo_alert,
    fed,
)

AGENCY, PARTNER = "nl-customs", "de-customs"


@dataclasses.dataclass
class World:
    cluster: Cluster
    node: RunningNode
    taxii: RunningTaxii
    seeded: int

    @property
    def discovery(self) -> str:
        return f"{self.taxii.url}/taxii2/"

    def collection_url(self, collection_id: str) -> str:
        return f"{self.taxii.url}/{AGENCY}/collections/{collection_id}/"


def seed_node_db(world: Cluster, url: str, count: int, where: Path) -> None:
    values = world.fed.node_config(AGENCY, url, world.gateway.port)
    config = devfed.write_config(where / f"{AGENCY}-seed.yaml", "node", values)
    alert = demo_alert(recipients=[alert_pb2.AlertRecipient(agency_id=PARTNER, treaty_id=CUSTOMS)])
    seed(config, world.fed, partner=PARTNER, alert=alert, count=count)


def treaty_files(world: Cluster, where: Path) -> list[str]:
    out = []
    for tid in (CUSTOMS, TASKFORCE):
        path = where / f"{tid}.treaty"
        path.write_bytes(world.fed.signed_treaty(tid).to_proto().SerializeToString())
        out.append(str(path))
    return out


def taxii_values(world: Cluster, node: RunningNode, tmp_path: Path, **over: Any) -> dict[str, Any]:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(node.ca_pem)
    values: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "node": node.target,
        "ca": str(ca),
        "agency_id": AGENCY,
        "treaties": treaty_files(world, tmp_path),
        "max_limit": 1000,
    }
    values.update(over)
    return values


@pytest.fixture
def world_factory(
    cluster: Cluster,  # noqa: F811  (the fixture imported above)
    tmp_path: Path,
) -> Iterator[Callable[..., World]]:
    started: list[RunningTaxii] = []

    def make(count: int, **over: Any) -> World:
        url = cluster.make_db(AGENCY)
        seed_node_db(cluster, url, count, tmp_path)
        cluster.start_node(PARTNER)
        node = cluster.start_node(AGENCY, db=url)
        config = config_from_mapping(taxii_values(cluster, node, tmp_path, **over), base=tmp_path)
        running = start(config)
        started.append(running)
        return World(cluster, node, running, count)

    yield make
    for s in started:
        s.stop()
