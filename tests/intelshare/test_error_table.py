"""docs/errors.md is what error_reason.proto and intelshare/errors.py say now, and complete."""

from __future__ import annotations

import ast
from pathlib import Path

from intelshare import errors
from intelshare._build import error_table

ROOT = Path(__file__).resolve().parents[2]


def test_committed_table_is_current() -> None:
    assert error_table.main(["--check"]) == 0, (
        "docs/errors.md is stale: run python -m intelshare._build.error_table"
    )


def test_every_reason_of_the_wire_enum_is_a_row() -> None:
    text = error_table.OUT.read_text(encoding="utf-8")
    reasons = error_table.read_reasons(error_table.PROTO.read_text(encoding="utf-8"))
    assert len(reasons) > 50
    for r in reasons:
        assert f"| `{r.name}` | {r.number} |" in text


def test_a_code_stated_in_a_comment_is_the_code_sent() -> None:
    by_reason = error_table.classes_by_reason()
    reasons = error_table.read_reasons(error_table.PROTO.read_text(encoding="utf-8"))
    stated = [r for r in reasons if r.stated_code]
    assert len(stated) > 10
    for r in stated:
        codes = {c.grpc_code for c in by_reason.get(r.name, [])}
        assert codes in (set(), {r.stated_code}), (r.name, r.stated_code, codes)


def test_metadata_keys_are_read_from_the_comment() -> None:
    r = error_table.Reason(
        "X",
        1,
        'Something. Code RESOURCE_EXHAUSTED; metadata "scope" ("gateway" or "agency") '
        'and "limit". More, e.g. "other".',
    )
    assert r.metadata_keys == ("scope", "limit")
    assert r.stated_code == "RESOURCE_EXHAUSTED"
    assert r.meaning == 'Something. More, e.g. "other".'


def _metadata_in_code() -> dict[str, set[tuple[str, str]]]:
    """reason -> (key, where) for every literal metadata key the services raise with."""
    by_name = {c.__name__: c.reason for c in errors.all_error_classes()}
    found: dict[str, set[tuple[str, str]]] = {}
    files = [
        p
        for package in ("intelshare", "node", "gateway")
        for p in (ROOT / package).rglob("*.py")
        if "/v1/" not in p.as_posix()
    ]
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name == "refuse" and node.args and isinstance(node.args[0], ast.Attribute):
                name = node.args[0].attr  # Decision.refuse(errors.X, ..., metadata=...)
            reason = by_name.get(name)
            if reason is None:
                continue
            for kw in node.keywords:
                if kw.arg == "metadata" and isinstance(kw.value, ast.Dict):
                    for key in kw.value.keys:
                        if isinstance(key, ast.Constant) and isinstance(key.value, str):
                            where = f"{path.relative_to(ROOT)}:{node.lineno}"
                            found.setdefault(reason, set()).add((key.value, where))
    return found


def test_every_metadata_key_the_code_sends_is_documented() -> None:
    reasons = {
        r.name: set(r.metadata_keys)
        for r in error_table.read_reasons(error_table.PROTO.read_text(encoding="utf-8"))
    }
    found = _metadata_in_code()
    assert len(found) > 15  # the scan sees the raises
    missing = sorted(
        f"{reason}: {key} ({where})"
        for reason, keys in found.items()
        for key, where in keys
        if key not in reasons.get(reason, set())
    )
    assert missing == [], "document these keys in error_reason.proto, then regenerate"
