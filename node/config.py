"""The node's settings (section ``node`` of the config file).

The identity directory is the bundle ``intelshare federation enrol --out``
(or :mod:`intelshare.devfed`) writes for an agency: ``signing.key``,
``encryption.key``, ``tls.key`` (mode 0600), ``tls.crt``, ``ca.pem`` and
``anchor.json``. The node uses the agency certificate twice: as its client
certificate towards the gateway (mTLS) and as the server certificate of the
officer API, so officers' clients trust the federation CA and dial the node
with server name = agency id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from intelshare import config as cfgmod
from intelshare.config import parse_address, setting
from intelshare.errors import ConfigError
from intelshare.federation import ANCHOR_FILE, CA_CERT_FILE, TLS_CERT_FILE, TLS_KEY_FILE


@dataclass(frozen=True)
class NodeConfig:
    agency_id: str = setting(doc="this agency's id in the federation directory")
    listen: str = setting(doc="host:port of the officer API (port 0 picks a free one)")
    database_url: str = setting(doc="SQLAlchemy URL: sqlite:///path or postgresql://...")
    gateway: str = setting(doc="host:port of the federation gateway")
    identity_dir: Path = setting(
        doc="agency bundle: signing/encryption/tls keys, tls.crt, ca.pem, anchor.json"
    )
    gateway_server_name: str = setting(
        "", doc="TLS name to expect from the gateway (empty: the host of 'gateway')"
    )
    directory_cache: Path | None = setting(
        None, doc="file keeping the newest verified directory (default: identity_dir/directory.pb)"
    )
    redis_url: str | None = setting(
        None, doc="Redis for cross-process wake-ups of feeds; unset: this process only"
    )
    redis_prefix: str = setting("intelshare:node:", doc="Redis channel prefix for wake-ups")
    max_workers: int = setting(
        32, doc="gRPC worker threads for everything but feeds (feeds have threads of their own)"
    )
    max_feeds: int = setting(
        64,
        doc="feeds (WatchAlerts, WatchCase, ...) open at once on this node, each on a thread "
        "of its own; one more is refused (TOO_MANY_STREAMS)",
    )
    max_feeds_per_officer: int = setting(
        8, doc="feeds one officer may hold open at once; one more is refused (TOO_MANY_STREAMS)"
    )
    database_pool_size: int = setting(
        10,
        doc="PostgreSQL connections the node keeps open, all opened at start (more may open "
        "under a burst and are closed after it)",
    )
    health_listen: str | None = setting(
        None, doc="host:port of a plaintext port serving only grpc.health.v1 (for probes)"
    )
    metrics_listen: str | None = setting(
        None,
        doc="host:port of a plaintext HTTP endpoint serving Prometheus metrics at /metrics "
        "(port 0 picks a free one); unset: no endpoint. 'intelshare worker' serves its own "
        "there too: a node and a worker on one host need different ports "
        "(e.g. INTELSHARE_NODE_METRICS_LISTEN for the worker)",
    )
    metrics_refresh_seconds: float = setting(
        5.0,
        doc="gauges read from the database (queue depths, dead letters) are refreshed "
        "at most this often",
    )
    max_alert_days: int = setting(366, doc="longest allowed alert lifetime in days")
    control_message_days: int = setting(
        30, doc="how long acknowledgements, receipts and hit reports wait at the gateway"
    )
    directory_refresh_seconds: float = setting(300.0, doc="how often the directory is refetched")
    treaty_refresh_seconds: float = setting(300.0, doc="how often treaties are refetched")
    maintenance_seconds: float = setting(
        30.0, doc="how often alert expiry and retention purges run"
    )
    send_backoff_max_seconds: float = setting(
        30.0, doc="longest wait between attempts to submit to the gateway"
    )
    inbox_backoff_max_seconds: float = setting(
        30.0, doc="longest wait between attempts to reconnect the inbox stream"
    )
    heartbeat_seconds: float = setting(15.0, doc="heartbeat interval on idle WatchAlerts streams")
    gateway_timeout_seconds: float = setting(10.0, doc="deadline of unary calls to the gateway")
    max_payload_bytes: int = setting(1024 * 1024, doc="largest plaintext payload sealed or opened")
    # --- notifications (node.notify) -----------------------------------------------
    broker_url: str | None = setting(
        None,
        doc="Redis URL of the Celery broker for notifications; unset: redis_url, "
        "and without either a bundled Redis (append-only) that the node starts",
    )
    embedded_redis_dir: Path | None = setting(
        None, doc="where the bundled Redis keeps its append-only file (default: identity_dir/redis)"
    )
    maintenance_in_node: bool = setting(
        True,
        doc="run alert expiry, retention purges and audit head signing in the node process; "
        "set false when 'intelshare worker --beat' runs them",
    )
    notify_relay_seconds: float = setting(
        1.0, doc="longest wait of the outbox relay between looks at the event log"
    )
    notify_deadline_seconds: float = setting(
        60.0, doc="an outbox row or webhook delivery not confirmed after this is enqueued again"
    )
    notify_task_time_limit_seconds: float = setting(
        60.0, doc="hard time limit of every notification task"
    )
    notify_visibility_timeout_seconds: float = setting(
        900.0,
        doc="the broker redelivers a task not acknowledged after this; must exceed the task "
        "time limit plus the longest webhook retry delay",
    )
    worker_concurrency: int = setting(8, doc="tasks one 'intelshare worker' runs at once (threads)")
    webhook_timeout_seconds: float = setting(10.0, doc="deadline of one webhook POST")
    webhook_max_attempts: int = setting(
        8, doc="attempts before a webhook delivery goes to the dead letters"
    )
    webhook_backoff_seconds: float = setting(
        5.0, doc="delay before the first webhook retry; doubles with each attempt"
    )
    webhook_backoff_max_seconds: float = setting(300.0, doc="longest delay between webhook retries")
    # --- IPR deadlines (node.ipr.deadlines) ------------------------------------------
    holiday_subdivision: str = setting(
        "",
        doc="region of this agency's country whose public holidays also stop the working-day "
        "deadlines of detentions, as an ISO 3166-2 code: DE-BY (Bavaria), ES-CN (Canary "
        "Islands); empty: the country's national holidays only",
    )
    deadline_time_zone: str = setting(
        "",
        doc="IANA time zone in which the days of detention deadlines begin and end "
        "(Atlantic/Canary); empty: the time zone of the country's capital",
    )
    deadline_closed_days: tuple[str, ...] = setting(
        (),
        doc="further days (YYYY-MM-DD) on which deadlines do not run, which national rules "
        "on time limits close and the holidays library does not list",
    )

    def validate(self) -> None:
        parse_address("node.listen", self.listen)
        parse_address("node.gateway", self.gateway)
        if self.health_listen:
            parse_address("node.health_listen", self.health_listen)
        if self.metrics_listen:
            parse_address("node.metrics_listen", self.metrics_listen)
        if self.metrics_refresh_seconds < 0:
            raise ConfigError("node.metrics_refresh_seconds: must not be negative")
        if not self.agency_id:
            raise ConfigError("node.agency_id: required")
        if self.max_workers < 4:
            raise ConfigError("node.max_workers: must be at least 4")
        if self.max_feeds < 1:
            raise ConfigError("node.max_feeds: must be at least 1")
        if not 1 <= self.max_feeds_per_officer <= self.max_feeds:
            raise ConfigError("node.max_feeds_per_officer: must be between 1 and max_feeds")
        if self.database_pool_size < 1:
            raise ConfigError("node.database_pool_size: must be at least 1")
        if not 1 <= self.max_alert_days <= 3660:
            raise ConfigError("node.max_alert_days: must be between 1 and 3660")
        if self.control_message_days < 1:
            raise ConfigError("node.control_message_days: must be at least 1")
        for name in (
            "directory_refresh_seconds",
            "treaty_refresh_seconds",
            "maintenance_seconds",
            "send_backoff_max_seconds",
            "inbox_backoff_max_seconds",
            "heartbeat_seconds",
            "gateway_timeout_seconds",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"node.{name}: must be positive")
        self._validate_notify()
        self._validate_deadlines()

    def _validate_deadlines(self) -> None:
        """The form of the deadline settings; the calendar itself is checked when built."""
        sub = self.holiday_subdivision.strip()
        if sub and not re.fullmatch(r"[A-Za-z]{2}-[A-Za-z0-9]{1,3}", sub):
            raise ConfigError(
                f"node.holiday_subdivision: {sub!r} is not an ISO 3166-2 code such as DE-BY "
                "(country, '-', region)"
            )
        zone = self.deadline_time_zone.strip()
        if zone:
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ConfigError(
                    f"node.deadline_time_zone: unknown time zone {zone!r} "
                    "(an IANA name such as Europe/Berlin)"
                ) from None
        for i, day in enumerate(self.deadline_closed_days):
            try:
                date.fromisoformat(day)
            except ValueError:
                raise ConfigError(
                    f"node.deadline_closed_days[{i}]: {day!r} is not a date (YYYY-MM-DD)"
                ) from None

    @property
    def closed_days(self) -> tuple[date, ...]:
        """:attr:`deadline_closed_days` as dates (after :meth:`validate`)."""
        return tuple(date.fromisoformat(d) for d in self.deadline_closed_days)

    def _validate_notify(self) -> None:
        for name in (
            "notify_relay_seconds",
            "notify_deadline_seconds",
            "notify_task_time_limit_seconds",
            "notify_visibility_timeout_seconds",
            "webhook_timeout_seconds",
            "webhook_backoff_seconds",
            "webhook_backoff_max_seconds",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"node.{name}: must be positive")
        if self.worker_concurrency < 1:
            raise ConfigError("node.worker_concurrency: must be at least 1")
        if self.webhook_max_attempts < 1:
            raise ConfigError("node.webhook_max_attempts: must be at least 1")
        if self.webhook_timeout_seconds >= self.notify_task_time_limit_seconds:
            raise ConfigError(
                "node.webhook_timeout_seconds: must be shorter than notify_task_time_limit_seconds"
            )
        # A task waiting for its retry countdown sits unacknowledged at the broker: if the
        # visibility timeout ran out first, Redis would hand it to a second worker.
        longest = self.notify_task_time_limit_seconds + self.webhook_backoff_max_seconds
        if self.notify_visibility_timeout_seconds <= longest:
            raise ConfigError(
                "node.notify_visibility_timeout_seconds: must exceed "
                f"notify_task_time_limit_seconds + webhook_backoff_max_seconds ({longest:g})"
            )

    # --- derived paths -------------------------------------------------------------

    @property
    def tls_cert(self) -> Path:
        return self.identity_dir / TLS_CERT_FILE

    @property
    def tls_key(self) -> Path:
        return self.identity_dir / TLS_KEY_FILE

    @property
    def ca_cert(self) -> Path:
        return self.identity_dir / CA_CERT_FILE

    @property
    def anchor(self) -> Path:
        return self.identity_dir / ANCHOR_FILE

    @property
    def directory_file(self) -> Path:
        return self.directory_cache or self.identity_dir / "directory.pb"

    @property
    def redis_dir(self) -> Path:
        """Folder of the bundled Redis (used only when no broker URL is configured)."""
        return self.embedded_redis_dir or self.identity_dir / "redis"


def load_config(path: Path) -> NodeConfig:
    """Read section ``node`` of ``path`` with ``INTELSHARE_NODE_*`` overrides."""
    data = cfgmod.read_file(path)
    return cfgmod.load(NodeConfig, "node", data, base=path.parent)
