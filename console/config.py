"""The console's settings (section ``console`` of its YAML file).

The console serves officers over HTTP(S) and talks to exactly one node, the
agency's own, the way the officers' command line does: it trusts the
federation CA and names the node by its agency id (the TLS server name).
No token is configured here: every call carries the signed-in officer's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from intelshare import config as cfgmod
from intelshare.config import parse_address, setting
from intelshare.errors import ConfigError


@dataclass(frozen=True)
class ConsoleConfig:
    node: str = setting(doc="host:port of the agency node's officer API (gRPC, TLS)")
    node_ca: Path = setting(doc="federation CA certificate (PEM) the node's certificate chains to")
    node_server_name: str = setting(doc="the node's TLS server name: the agency id")
    listen: str = setting("127.0.0.1:8080", doc="host:port the console binds (port 0: any free)")
    tls_cert: Path | None = setting(
        None, doc="console TLS certificate (PEM); with tls_key, the console serves HTTPS"
    )
    tls_key: Path | None = setting(None, doc="console TLS private key (PEM, mode 0600)")
    secure_cookies: bool | None = setting(
        None,
        doc="mark the session cookie Secure; unset: when the console serves TLS itself "
        "(set true behind a TLS-terminating proxy)",
    )
    session_lifetime_minutes: int = setting(
        480, doc="a session ends this long after sign-in, whatever the officer does"
    )
    session_idle_minutes: int = setting(60, doc="a session ends after this long without a request")
    page_size: int = setting(25, doc="alerts and cases per page")
    node_timeout_seconds: float = setting(15.0, doc="deadline of each call to the node")

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def cookie_secure(self) -> bool:
        return self.tls if self.secure_cookies is None else self.secure_cookies

    def validate(self) -> None:
        parse_address("console.listen", self.listen)
        parse_address("console.node", self.node)
        if not self.node_server_name:
            raise ConfigError("console.node_server_name: required (the agency id of the node)")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("console.tls_cert and console.tls_key: give both or neither")
        for name in ("node_ca", "tls_cert", "tls_key"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ConfigError(f"console.{name}: no such file {path}")
        if self.session_lifetime_minutes < 1 or self.session_idle_minutes < 1:
            raise ConfigError("console.session_lifetime_minutes/session_idle_minutes: at least 1")
        if not 1 <= self.page_size <= 500:
            raise ConfigError("console.page_size: between 1 and 500")
        if self.node_timeout_seconds <= 0:
            raise ConfigError("console.node_timeout_seconds: must be positive")


def load_config(path: Path) -> ConsoleConfig:
    """Read ``path`` (section ``console``) with ``INTELSHARE_CONSOLE_*`` overrides."""
    return cfgmod.load(ConsoleConfig, "console", cfgmod.read_file(path), base=path.parent)
