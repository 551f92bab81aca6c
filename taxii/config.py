"""The TAXII server's configuration file (YAML).

::

    taxii:
      listen: 127.0.0.1:9443        # host:port
      node: 127.0.0.1:7443          # the agency's node (gRPC)
      ca: /etc/intelshare/ca.pem    # the federation CA (the node's TLS)
      agency_id: nl-customs         # the node's agency id (its TLS name)
      treaties:                     # one collection per treaty: its signed .treaty file
        - /etc/intelshare/treaties/customs-mutual-assistance.treaty
      tls_cert: /etc/intelshare/taxii.crt   # HTTPS (required unless listen is loopback)
      tls_key: /etc/intelshare/taxii.key
      title: Netherlands Customs TAXII   # optional
      default_limit: 100            # objects per page when the client gives no limit
      max_limit: 1000               # most objects per page
      traversal_ttl_seconds: 600    # how long a 'next' stays valid after its last use
      max_traversals: 64            # snapshots kept at once (oldest dropped)

Relative paths are relative to the file. Every problem is reported at once,
keyed by the setting's name.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from intelshare.errors import ConfigError, IntelshareError
from intelshare.treaty import SignedTreatyDoc, Treaty

_KEYS = {
    "listen",
    "node",
    "ca",
    "agency_id",
    "treaties",
    "tls_cert",
    "tls_key",
    "title",
    "default_limit",
    "max_limit",
    "traversal_ttl_seconds",
    "max_traversals",
}


@dataclass(frozen=True)
class TaxiiConfig:
    host: str
    port: int
    node: str
    ca_pem: bytes
    agency_id: str
    treaties: tuple[Treaty, ...]
    tls_cert: Path | None = None
    tls_key: Path | None = None
    title: str = ""
    default_limit: int = 100
    max_limit: int = 1000
    traversal_ttl_seconds: float = 600.0
    max_traversals: int = 64

    @property
    def onward_rules(self) -> dict[str, str]:
        return {t.id: t.onward_sharing.value for t in self.treaties}


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_config(path: Path) -> TaxiiConfig:
    """Read and check the file; :class:`ConfigError` naming every bad setting."""
    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read TAXII config {path}: {exc}") from None
    if not isinstance(loaded, dict) or not isinstance(loaded.get("taxii"), dict):
        raise ConfigError(f"{path}: expected a mapping with a 'taxii' section")
    return config_from_mapping(loaded["taxii"], base=path.parent)


def config_from_mapping(values: dict[str, Any], *, base: Path) -> TaxiiConfig:
    problems: dict[str, str] = {}
    for key in sorted(set(values) - _KEYS):
        problems[f"taxii.{key}"] = "unknown setting"

    def path_of(key: str) -> Path | None:
        value = values.get(key)
        if value in (None, ""):
            return None
        p = Path(str(value)).expanduser()
        return p if p.is_absolute() else base / p

    host, port = "", 0
    listen = str(values.get("listen", ""))
    h, sep, p = listen.rpartition(":")
    if not sep or not p.isdigit() or not h:
        problems["taxii.listen"] = "host:port, e.g. 127.0.0.1:9443"
    else:
        host, port = h.strip("[]"), int(p)
    for key in ("node", "agency_id"):
        if not isinstance(values.get(key), str) or not values[key]:
            problems[f"taxii.{key}"] = "required"
    ca_pem = b""
    ca = path_of("ca")
    if ca is None:
        problems["taxii.ca"] = "required: the federation CA file"
    else:
        try:
            ca_pem = ca.read_bytes()
        except OSError as exc:
            problems["taxii.ca"] = f"cannot read {ca}: {exc.strerror}"
    treaties: list[Treaty] = []
    raw = values.get("treaties") or []
    if not isinstance(raw, list):
        problems["taxii.treaties"] = "a list of .treaty files"
        raw = []
    for n, item in enumerate(raw):
        f = path_of_value(item, base)
        try:
            treaties.append(SignedTreatyDoc.from_bytes(f.read_bytes()).treaty)
        except OSError as exc:
            problems[f"taxii.treaties[{n}]"] = f"cannot read {f}: {exc.strerror}"
        except IntelshareError as exc:
            problems[f"taxii.treaties[{n}]"] = f"{f} is not a treaty file: {exc.message}"
    if len({t.id for t in treaties}) != len(treaties):
        problems["taxii.treaties"] = "a treaty is listed twice"
    tls_cert, tls_key = path_of("tls_cert"), path_of("tls_key")
    if (tls_cert is None) != (tls_key is None):
        problems["taxii.tls_cert"] = "give both tls_cert and tls_key, or neither"
    if tls_cert is None and host and not _is_loopback(host):
        problems["taxii.listen"] = (
            "tokens must not cross a network in clear: give tls_cert and tls_key, "
            "or listen on a loopback address behind your own TLS proxy"
        )
    ints: dict[str, int] = {}
    for key, default, low in (
        ("default_limit", 100, 1),
        ("max_limit", 1000, 1),
        ("max_traversals", 64, 1),
        ("traversal_ttl_seconds", 600, 1),
    ):
        value = values.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            problems[f"taxii.{key}"] = f"a whole number, at least {low}"
        else:
            ints[key] = value
    if ints.get("default_limit", 0) > ints.get("max_limit", 10**9):
        problems["taxii.default_limit"] = "must not exceed max_limit"
    if problems:
        shown = "; ".join(f"{k}: {v}" for k, v in sorted(problems.items())[:3])
        raise ConfigError(f"invalid TAXII config: {shown}", metadata=problems)
    return TaxiiConfig(
        host=host,
        port=port,
        node=str(values["node"]),
        ca_pem=ca_pem,
        agency_id=str(values["agency_id"]),
        treaties=tuple(treaties),
        tls_cert=tls_cert,
        tls_key=tls_key,
        title=str(values.get("title") or f"{values['agency_id']} TAXII"),
        default_limit=ints["default_limit"],
        max_limit=ints["max_limit"],
        traversal_ttl_seconds=float(ints["traversal_ttl_seconds"]),
        max_traversals=ints["max_traversals"],
    )


def path_of_value(value: object, base: Path) -> Path:
    p = Path(str(value)).expanduser()
    return p if p.is_absolute() else base / p
