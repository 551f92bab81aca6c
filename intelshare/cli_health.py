"""``intelshare health ADDRESS``: a probe for the plaintext health port.

Container health checks and service managers need a command that exits 0
when a service is serving; this asks the standard gRPC health service on a
service's ``health_listen`` port, which needs no client certificate.
"""

from __future__ import annotations

import click
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from intelshare.cli import cli


@cli.command("health")
@click.argument("address")
@click.option("--service", default="", help="Service name to ask about; empty: the server.")
@click.option("--timeout", default=3.0, show_default=True, help="Seconds to wait.")
def health_command(address: str, service: str, timeout: float) -> None:
    """Exit 0 if the server at ADDRESS (its health port) is SERVING, else 1."""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as err:
            # Raw code on purpose: a probe prints the status and exits 1, whatever failed.
            click.echo(f"{address}: {err.code().name}", err=True)
            raise SystemExit(1) from None
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    click.echo(f"{address}: {status}")
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        raise SystemExit(1)
