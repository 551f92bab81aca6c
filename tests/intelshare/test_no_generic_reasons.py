"""No refusal of the node or the gateway carries a reason that only repeats its code.

A client branches on ``ErrorInfo.reason``: ``NOT_FOUND`` with code
NOT_FOUND says nothing the code did not. The generic classes stay (they are
the bases that ``except`` clauses catch, and what a client makes of an
older peer's status), but the services raise only their causes
(:mod:`intelshare.error_causes`). This test reads every module of ``node/``
and ``gateway/`` and fails on any construction of a class whose reason is
its code, however it is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from intelshare import errors

ROOT = Path(__file__).resolve().parents[2]

#: classes whose reason is only their code (or the catch-all POLICY_REFUSED)
GENERIC = {
    cls.__name__
    for cls in errors.all_error_classes()
    if cls.reason == cls.grpc_code or cls.reason == "POLICY_REFUSED"
}


def test_the_generic_classes_are_the_ones_expected() -> None:
    expected = {
        "IntelshareError",
        "InvalidArgument",
        "NotFound",
        "FailedPrecondition",
        "PermissionDenied",
        "Unauthenticated",
        "Unavailable",
        "PolicyRefused",
    }
    assert expected == GENERIC


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _allowed_uses(tree: ast.AST) -> set[int]:
    """Nodes where a generic class may appear: catching, type tests, annotations."""
    allowed: set[int] = set()

    def allow(sub: ast.AST | None) -> None:
        if sub is not None:
            allowed.update(id(n) for n in ast.walk(sub))

    for node in ast.walk(tree):
        if isinstance(node, ast.ExceptHandler):
            allow(node.type)
        elif isinstance(node, ast.Call) and _name(node.func) in ("isinstance", "issubclass"):
            for arg in node.args[1:]:
                allow(arg)
        elif isinstance(node, ast.Call) and _name(node.func) == "suppress":
            for arg in node.args:
                allow(arg)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            allow(node)  # a union of types (a type alias)
        elif isinstance(node, (ast.arg, ast.AnnAssign)):
            allow(node.annotation)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            allow(node.returns)
        elif isinstance(node, ast.Subscript):  # type[InvalidArgument], tuple[...] of types
            allow(node.slice)
        elif isinstance(node, ast.ClassDef):
            for base in node.bases:
                allow(base)
        elif isinstance(node, ast.Tuple) and all(_name(e) for e in node.elts):
            # a tuple of classes is an except or isinstance target kept in a constant
            allow(node)
    return allowed


def _constructions(path: Path, root: Path = ROOT) -> list[str]:
    """``file:line Class`` for every raise-able use of a generic error class in ``path``.

    A call (``errors.NotFound(...)``) and a class passed on as a value (a
    default ``kind=InvalidArgument`` that is called later) both count;
    catching, ``isinstance`` and annotations do not.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    allowed = _allowed_uses(tree)
    found: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Name, ast.Attribute)) or id(node) in allowed:
            continue
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            continue
        name = _name(node)
        if name in GENERIC:
            found.append(f"{path.relative_to(root)}:{node.lineno} {name}")
    return sorted(set(found), key=lambda s: int(s.split(":")[1].split()[0]))


@pytest.mark.parametrize("package", ["node", "gateway"])
def test_no_refusal_carries_a_reason_that_repeats_its_code(package: str) -> None:
    offenders = [
        hit for path in sorted((ROOT / package).rglob("*.py")) for hit in _constructions(path)
    ]
    assert offenders == [], (
        "raise the cause (intelshare/error_causes.py, with its reason in "
        "protos/intelshare/v1/error_reason.proto), not the generic class: " + ", ".join(offenders)
    )


def test_the_scan_sees_a_generic_raise(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from intelshare import errors\n"
        "from intelshare.errors import FailedPrecondition\n"
        "def f():\n"
        "    raise errors.NotFound('x')\n"
        "def g():\n"
        "    raise errors.AlertNotFound('x')\n"
        "def h():\n"
        "    raise FailedPrecondition('x')\n"
        "def k(kind: type[errors.InvalidArgument] = errors.InvalidArgument):\n"
        "    try:\n"
        "        raise kind('x')\n"
        "    except (errors.NotFound, errors.InvalidArgument):\n"
        "        return isinstance(kind, errors.PermissionDenied)\n",
        encoding="utf-8",
    )
    assert _constructions(sample, tmp_path) == [
        "sample.py:4 NotFound",
        "sample.py:8 FailedPrecondition",
        "sample.py:9 InvalidArgument",
    ]


def test_every_cause_has_its_own_reason_and_a_generic_base() -> None:
    causes = [c for c in errors.all_error_classes() if c.__module__ == "intelshare.error_causes"]
    assert len(causes) >= 40
    reasons = [c.reason for c in causes]
    assert len(reasons) == len(set(reasons))
    for cls in causes:
        assert cls.reason != cls.grpc_code, cls
        assert any(base.__name__ in GENERIC for base in cls.__mro__[1:]), cls
