"""Build a complete local federation on disk: for tests, demos and benchmarks.

One call does what an operator and each agency would do by hand with the
``intelshare federation`` / ``treaty`` commands: initialise the root and CA,
enrol each agency (keys generated into its own folder, mode 0600), enrol the
gateway's receipt-signing identity and issue its server certificate, publish
the directory, and have every party sign each treaty. It uses the same
library calls as those commands, so what tests exercise is what operators run.

It is also the one place that knows which files of the federation a
gateway's and a node's configuration point at
(:meth:`LocalFederation.gateway_config`, :meth:`LocalFederation.node_config`):
tests, the benchmarks and ``deploy/local_federation.py`` add only their own
settings (timings, thread pools, Redis) on top.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from intelshare import federation as fed
from intelshare.gateway_client import GatewayClient
from intelshare.keys import SIGNING_KEY_FILE, AgencyKeys
from intelshare.treaty import SignedTreatyDoc, Treaty, sign

GATEWAY_ID = "gateway"


@dataclass(frozen=True)
class AgencySpec:
    agency_id: str
    name: str
    country: str
    kind: str


@dataclass
class LocalAgency:
    """Paths of one agency's identity bundle."""

    agency_id: str
    dir: Path

    @property
    def keys(self) -> AgencyKeys:
        return AgencyKeys.load(self.dir)

    @property
    def cert_pem(self) -> bytes:
        return (self.dir / fed.TLS_CERT_FILE).read_bytes()

    @property
    def key_pem(self) -> bytes:
        return (self.dir / fed.TLS_KEY_FILE).read_bytes()


@dataclass
class LocalFederation:
    root: Path
    federation: fed.Federation
    agencies: dict[str, LocalAgency]
    gateway_identity: LocalAgency
    gateway_server_dir: Path
    treaties: dict[str, Path] = field(default_factory=dict)

    @property
    def ca_file(self) -> Path:
        return self.root / "federation" / fed.CA_CERT_FILE

    @property
    def anchor_file(self) -> Path:
        return self.root / "federation" / fed.ANCHOR_FILE

    @property
    def directory_file(self) -> Path:
        return self.federation.directory_file

    def publish(self, expire_in: timedelta = timedelta(days=30)) -> bytes:
        return self.federation.publish_directory(expire_in).SerializeToString()

    def signed_treaty(self, treaty_id: str) -> SignedTreatyDoc:
        return SignedTreatyDoc.from_bytes(self.treaties[treaty_id].read_bytes())

    def gateway_config(self, database_url: str, **over: Any) -> dict[str, Any]:
        """The ``gateway:`` section of this federation's gateway; ``over`` adds or replaces."""
        srv = self.gateway_server_dir
        values: dict[str, Any] = {
            "listen": "127.0.0.1:0",
            "database_url": database_url,
            "anchor": str(self.anchor_file),
            "tls_cert": str(srv / fed.TLS_CERT_FILE),
            "tls_key": str(srv / fed.TLS_KEY_FILE),
            "ca_cert": str(self.ca_file),
            "signing_key": str(self.gateway_identity.dir / SIGNING_KEY_FILE),
            "directory": str(self.directory_file),
        }
        values.update(over)
        return values

    def node_config(
        self, agency: str, database_url: str, gateway_port: int, **over: Any
    ) -> dict[str, Any]:
        """The ``node:`` section of ``agency``'s node on the gateway at ``gateway_port``.

        The directory cache lies under the federation's root, one file per
        agency, so that nodes sharing an identity folder's parent never share it.
        """
        values: dict[str, Any] = {
            "agency_id": agency,
            "listen": "127.0.0.1:0",
            "database_url": database_url,
            "gateway": f"127.0.0.1:{gateway_port}",
            "gateway_server_name": "localhost",
            "identity_dir": str(self.agencies[agency].dir),
            "directory_cache": str(self.root / "node-cache" / f"{agency}.directory.pb"),
        }
        values.update(over)
        return values

    def gateway_client(self, port: int, agency: str, **options: Any) -> GatewayClient:
        """A client of the local gateway with ``agency``'s mTLS identity."""
        a = self.agencies[agency]
        return GatewayClient(
            f"127.0.0.1:{port}",
            ca_pem=self.ca_file.read_bytes(),
            cert_pem=a.cert_pem,
            key_pem=a.key_pem,
            server_name="localhost",
            **options,
        )

    def publish_treaties(self, port: int) -> None:
        """Publish every treaty to the gateway at ``port`` (as its first party: all signed)."""
        for treaty_id in self.treaties:
            doc = self.signed_treaty(treaty_id)
            with self.gateway_client(port, doc.treaty.parties[0]) as client:
                client.publish_treaty(doc.to_proto())


def write_config(path: Path, section: str, values: Mapping[str, Any]) -> Path:
    """Write ``{section: values}`` as a YAML configuration file at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({section: dict(values)}, sort_keys=False))
    return path


def sign_by_parties(
    treaty: Treaty, agencies: Mapping[str, LocalAgency], signers: Sequence[str] | None = None
) -> SignedTreatyDoc:
    """``treaty`` signed by ``signers`` (default: every party)."""
    doc = SignedTreatyDoc.unsigned(treaty)
    for party in treaty.parties if signers is None else signers:
        keys = agencies[party].keys
        doc = doc.with_signature(sign(doc.document, party, keys.signing, keys.signing_key_id))
    return doc


def build(
    root: Path,
    agencies: Sequence[AgencySpec],
    treaties: Sequence[Treaty | Mapping[str, Any]] = (),
    *,
    federation_id: str = "intelshare-local",
    gateway_hosts: Sequence[str] = ("localhost", "127.0.0.1"),
    directory_lifetime: timedelta = timedelta(days=30),
) -> LocalFederation:
    """Create a federation with ``agencies`` and fully signed ``treaties`` under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    federation = fed.init(root / "federation", federation_id)
    local: dict[str, LocalAgency] = {}
    for spec in agencies:
        out = root / "agencies" / spec.agency_id
        federation.enrol(
            spec.agency_id,
            display_name=spec.name,
            country=spec.country,
            kind=spec.kind,
            out_dir=out,
        )
        local[spec.agency_id] = LocalAgency(spec.agency_id, out)
    gw_identity = root / "gateway" / "identity"
    federation.enrol(
        GATEWAY_ID,
        display_name="Federation gateway",
        country="EU",
        kind="gateway",
        out_dir=gw_identity,
    )
    gw_server = root / "gateway" / "server"
    federation.issue_server_certificate(GATEWAY_ID, gateway_hosts, out_dir=gw_server)
    federation.publish_directory(directory_lifetime)
    result = LocalFederation(
        root=root,
        federation=federation,
        agencies=local,
        gateway_identity=LocalAgency(GATEWAY_ID, gw_identity),
        gateway_server_dir=gw_server,
    )
    for item in treaties:
        treaty = item if isinstance(item, Treaty) else Treaty.from_mapping(item)
        doc = sign_by_parties(treaty, local)
        path = root / "treaties" / f"{treaty.id}.v{treaty.version}.treaty"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(doc.to_bytes())
        result.treaties[treaty.id] = path
    return result
