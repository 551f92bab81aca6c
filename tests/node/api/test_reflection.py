"""A node serves reflection as grpc.reflection.v1 and v1alpha (issue 22, item 6).

Newer clients (grpcurl, grpc-js tools) ask v1 first; the v1 call here is
made by method path with v1 bytes (the messages are the same as v1alpha's
under another package), as a client without our Python stubs would.
"""

from __future__ import annotations

import grpc
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2

from tests.node.conftest import Cluster
from tests.reflection_client import V1, V1ALPHA, ask, file_names


def test_reflection_answers_v1_and_v1alpha_alike(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs")
    with nl.client() as client:
        listed = {}
        for path in (V1, V1ALPHA):
            (answer,) = ask(
                client.channel, path, reflection_pb2.ServerReflectionRequest(list_services="")
            )
            listed[path] = {s.name for s in answer.list_services_response.service}
        assert listed[V1] == listed[V1ALPHA]
        assert {
            "intelshare.v1.AlertService",
            "intelshare.v1.TreatyService",
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        } <= listed[V1]

        alerts, v1_itself, missing = ask(
            client.channel,
            V1,
            reflection_pb2.ServerReflectionRequest(
                file_containing_symbol="intelshare.v1.AlertService"
            ),
            reflection_pb2.ServerReflectionRequest(
                file_containing_symbol="grpc.reflection.v1.ServerReflection"
            ),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="no.such.Service"),
        )
    # The service's file comes with the files it imports (field_behavior among them),
    # so a client can build every message from reflection alone.
    files = file_names(alerts)
    assert files[0] == "intelshare/v1/alert_service.proto"
    assert "google/api/field_behavior.proto" in files
    assert "intelshare/v1/alert.proto" in files
    (reflection_file,) = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in v1_itself.file_descriptor_response.file_descriptor_proto
    ]
    assert reflection_file.package == "grpc.reflection.v1"
    assert reflection_file.service[0].method[0].input_type == (
        ".grpc.reflection.v1.ServerReflectionRequest"
    )
    assert missing.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
