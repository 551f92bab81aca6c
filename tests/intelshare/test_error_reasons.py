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


def test_the_module_docstring_draws_the_error_tree_as_it_is() -> None:
    from intelshare import errors

    def children(cls: type) -> list[type]:
        return sorted(
            (
                k
                for k in cls.__subclasses__()
                if k.__module__ in ("intelshare.errors", "intelshare.error_causes")
            ),
            key=lambda k: k.__name__,
        )

    lines: list[str] = []

    def label(cls: type) -> str:
        extra = "" if cls.reason == cls.grpc_code else f", {cls.reason}"  # type: ignore[attr-defined]
        return f"{cls.__name__} ({cls.grpc_code}{extra})"  # type: ignore[attr-defined]

    def walk(cls: type, prefix: str) -> None:
        kids = children(cls)
        for i, kid in enumerate(kids):
            last = i == len(kids) - 1
            lines.append(prefix + ("└─ " if last else "├─ ") + label(kid))
            walk(kid, prefix + ("   " if last else "│  "))

    lines.append(label(errors.IntelshareError))
    walk(errors.IntelshareError, "")
    drawn = "\n".join("    " + line for line in lines)
    assert drawn in (errors.__doc__ or ""), "redraw the tree in intelshare/errors.py's docstring"
