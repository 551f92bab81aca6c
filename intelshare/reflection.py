"""Server reflection in both of its protocol versions, v1 and v1alpha.

``grpcio-reflection`` serves ``grpc.reflection.v1alpha`` only, while newer
clients (grpcurl, Postman, grpc-js's reflection tools) ask
``grpc.reflection.v1`` first. The two versions are the same messages with
the same field numbers under another package name, so one servicer answers
both: its v1alpha (de)serializers read and write v1 bytes unchanged.

So that a v1 client can also describe the v1 service itself, its file
descriptor is registered in the default pool: v1alpha's descriptor with the
package renamed (what ``grpc/reflection/v1/reflection.proto`` is).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection, reflection_pb2

V1ALPHA_SERVICE_NAME: str = reflection.SERVICE_NAME
V1_SERVICE_NAME = "grpc.reflection.v1.ServerReflection"
SERVICE_NAMES = (V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME)
_V1_FILE = "grpc/reflection/v1/reflection.proto"


def _register_v1_descriptor() -> None:
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(_V1_FILE)
        return
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    old, new = proto.package, "grpc.reflection.v1"
    proto.name = _V1_FILE
    proto.package = new
    proto.options.Clear()
    for message in proto.message_type:
        for field in message.field:
            if field.type_name.startswith(f".{old}."):
                field.type_name = f".{new}." + field.type_name[len(old) + 2 :]
    for service in proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(f".{old}.", f".{new}.")
            method.output_type = method.output_type.replace(f".{old}.", f".{new}.")
    pool.Add(proto)


def reflection_handler(service_names: Sequence[str]) -> grpc.RpcMethodHandler[Any, Any]:
    """The ServerReflectionInfo handler listing ``service_names`` and both reflection versions."""
    _register_v1_descriptor()
    servicer = reflection.ReflectionServicer([*service_names, *SERVICE_NAMES])
    return grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )


def enable_reflection(
    server: grpc.Server,
    service_names: Sequence[str],
    wrap: Callable[[grpc.RpcMethodHandler[Any, Any]], grpc.RpcMethodHandler[Any, Any]] = lambda h: (
        h
    ),
) -> None:
    """Serve reflection on ``server`` as v1 and as v1alpha (``wrap`` may move it to a pool)."""
    handler = wrap(reflection_handler(service_names))
    for name in SERVICE_NAMES:
        server.add_registered_method_handlers(  # type: ignore[attr-defined]
            name, {"ServerReflectionInfo": handler}
        )
