"""A node holding seeded alerts, and the TAXII server in front of it, for the TAXII tests.

The node and gateway are the node tests' (``tests.node.conftest``); the
alerts are written into the node's database before it starts by the
benches' seeder (:mod:`bench._seed`: the rows a node writes, half issued
to de-customs and half received from it under the customs treaty), which
fills thousands of alerts in seconds where issuing them through the API
would take minutes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bench._seed import seed
from intelshare import migrate
from intelshare.db import make_engine
from intelshare.directory import Anchor, verify_directory
from node.schema import alert as rec
from node.server import MIGRATIONS
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


def seed_node_db(world: Cluster, url: str, count: int) -> None:
    engine = make_engine(url)
    try:
        migrate.upgrade(engine, MIGRATIONS)
    finally:
        engine.dispose()
    federation = world.fed
    directory = verify_directory(
        federation.directory_file.read_bytes(),
        Anchor.load(federation.anchor_file),
        now=datetime.now(UTC),
    )
    record = rec.alert_to_record(demo_alert())
    seed(
        url,
        agency=AGENCY,
        keys=federation.agencies[AGENCY].keys,
        partner=PARTNER,
        partner_keys=federation.agencies[PARTNER].keys,
        directory=directory,
        treaty=federation.signed_treaty(CUSTOMS).treaty,
        record=record,
        count=count,
    )


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
        seed_node_db(cluster, url, count)
        cluster.start_node(PARTNER)
        node = cluster.start_node(AGENCY, db=url)
        config = config_from_mapping(taxii_values(cluster, node, tmp_path, **over), base=tmp_path)
        running = start(config)
        started.append(running)
        return World(cluster, node, running, count)

    yield make
    for s in started:
        s.stop()
