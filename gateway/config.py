"""The gateway's settings (section ``gateway`` of the config file)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from intelshare.config import parse_address, setting
from intelshare.errors import ConfigError

#: Room beside the envelope in a request (its framing and fields): the limit of
#: a submission is ``max_envelope_bytes`` plus this, and of any other request.
REQUEST_OVERHEAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class GatewayConfig:
    listen: str = setting(doc="host:port the gRPC server binds (port 0 picks a free one)")
    database_url: str = setting(doc="SQLAlchemy URL: sqlite:///path or postgresql://...")
    anchor: Path = setting(doc="federation anchor file (the root public key)")
    tls_cert: Path = setting(doc="gateway TLS certificate (PEM, issued by the federation CA)")
    tls_key: Path = setting(doc="gateway TLS private key (PEM, mode 0600)")
    ca_cert: Path = setting(doc="federation CA certificate (PEM)")
    signing_key: Path = setting(doc="gateway Ed25519 key for receipts and audit heads (0600)")
    gateway_id: str = setting("gateway", doc="directory id of the gateway (receipt signer)")
    directory: Path | None = setting(None, doc="signed directory file loaded at start")
    redis_url: str | None = setting(
        None, doc="Redis for cross-replica wake-ups; unset: one process only"
    )
    redis_prefix: str = setting(
        "intelshare:",
        doc="Redis channel prefix; replicas of one federation share it, others must not",
    )
    max_envelope_bytes: int = setting(1_200_000, doc="largest accepted envelope in bytes")
    clock_skew_seconds: int = setting(300, doc="accepted difference between clocks")
    heartbeat_seconds: float = setting(15.0, doc="heartbeat interval on idle inbox streams")
    purge_interval_seconds: float = setting(60.0, doc="how often expired entries are purged")
    max_workers: int = setting(
        64,
        doc="gRPC worker threads for unary calls (submissions, acknowledgements, directory, "
        "treaties); inbox streams run on threads of their own (see max_inbox_streams)",
    )
    max_inbox_streams: int = setting(
        128,
        doc="inbox streams open at once across agencies, each on a thread of its own pool; "
        "beyond it a stream of an agency that holds none is refused (TOO_MANY_STREAMS)",
    )
    max_inbox_streams_per_agency: int = setting(
        4,
        doc="inbox streams one agency may hold at once; a new one replaces its oldest "
        "(which ends with STREAM_REPLACED), as a reconnecting node needs",
    )
    max_request_bytes: int = setting(
        8 * 1024 * 1024,
        doc="largest request the gRPC runtime reads; requests above a method's own limit "
        "(max_envelope_bytes for submissions) are refused by the handler with "
        "PAYLOAD_TOO_LARGE, those above this one by the runtime with a bare status",
    )
    max_expiry_days: int = setting(
        366,
        doc="longest envelope lifetime accepted (expire_time - create_time), in days; "
        "the nodes cap alerts at 366 days",
    )
    health_listen: str | None = setting(
        None, doc="host:port of a plaintext port serving only grpc.health.v1 (for probes)"
    )
    metrics_listen: str | None = setting(
        None,
        doc="host:port of a plaintext HTTP endpoint serving Prometheus metrics at /metrics "
        "(port 0 picks a free one); unset: no endpoint",
    )
    metrics_refresh_seconds: float = setting(
        5.0, doc="gauges read from the database (inbox depth) are refreshed at most this often"
    )

    def validate(self) -> None:
        parse_address("gateway.listen", self.listen)
        if self.health_listen:
            parse_address("gateway.health_listen", self.health_listen)
        if self.metrics_listen:
            parse_address("gateway.metrics_listen", self.metrics_listen)
        if self.metrics_refresh_seconds < 0:
            raise ConfigError("gateway.metrics_refresh_seconds: must not be negative")
        if self.max_envelope_bytes < 1024:
            raise ConfigError("gateway.max_envelope_bytes: must be at least 1024")
        if self.heartbeat_seconds <= 0:
            raise ConfigError("gateway.heartbeat_seconds: must be positive")
        if self.max_workers < 4:
            raise ConfigError("gateway.max_workers: must be at least 4")
        if self.max_inbox_streams < 1:
            raise ConfigError("gateway.max_inbox_streams: must be at least 1")
        if not 1 <= self.max_inbox_streams_per_agency <= self.max_inbox_streams:
            raise ConfigError(
                "gateway.max_inbox_streams_per_agency: must be between 1 and max_inbox_streams"
            )
        if self.max_request_bytes < self.max_envelope_bytes + REQUEST_OVERHEAD_BYTES:
            raise ConfigError(
                "gateway.max_request_bytes: must be at least max_envelope_bytes + "
                f"{REQUEST_OVERHEAD_BYTES} (a submission carries its envelope)"
            )
        if not 1 <= self.max_expiry_days <= 36500:
            raise ConfigError("gateway.max_expiry_days: must be between 1 and 36500")
