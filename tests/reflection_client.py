"""Server reflection asked by method path, as a client without our stubs would.

The v1 and v1alpha messages are the same bytes under two package names, so
v1alpha's Python messages serialize a v1 request.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2

V1 = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
V1ALPHA = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"


def ask(
    channel: grpc.Channel, path: str, *requests: reflection_pb2.ServerReflectionRequest
) -> list[reflection_pb2.ServerReflectionResponse]:
    call = channel.stream_stream(
        path,
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )

    def stream() -> Iterator[reflection_pb2.ServerReflectionRequest]:
        yield from requests

    return list(call(stream(), timeout=10))


def file_names(response: reflection_pb2.ServerReflectionResponse) -> list[str]:
    return [
        descriptor_pb2.FileDescriptorProto.FromString(raw).name
        for raw in response.file_descriptor_response.file_descriptor_proto
    ]
