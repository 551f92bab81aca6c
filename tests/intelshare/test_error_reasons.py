"""The error reasons in Python and on the wire must not drift apart."""

from __future__ import annotations

import grpc
from google.rpc import code_pb2

from intelshare import errors
from intelshare.v1 import error_reason_pb2


def test_every_reason_is_in_the_wire_enum() -> None:
    wire = {
        name.removeprefix("ERROR_REASON_")
        for name in error_reason_pb2.ErrorReason.keys()  # noqa: SIM118 (enum wrapper)
        if name != "ERROR_REASON_UNSPECIFIED"
    }
    python = {cls.reason for cls in errors.all_error_classes()} - {"INTERNAL"}
    assert python - wire == set(), "add these to protos/intelshare/v1/error_reason.proto"


def test_every_class_names_a_real_grpc_code() -> None:
    for cls in errors.all_error_classes():
        assert hasattr(code_pb2, cls.grpc_code), cls
        assert grpc.StatusCode[cls.grpc_code], cls


def test_one_hierarchy() -> None:
    classes = errors.all_error_classes()
    assert all(issubclass(c, errors.IntelshareError) for c in classes)
    assert len(classes) == len(set(classes))
