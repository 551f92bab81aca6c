"""The core's public face: exactly these names, each importable and documented.

A name added to or removed from an ``__all__`` is a change of the public API
and must show here; every public class and function says what it is.
"""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
from typing import Any

import pytest

PUBLIC = {
    "intelshare": [
        "AgencyKeys",
        "Anchor",
        "AuditLog",
        "Decision",
        "EnvelopeInvalid",
        "GatewayClient",
        "HeaderFields",
        "IntelshareError",
        "InvalidArgument",
        "NotFound",
        "Opened",
        "PermissionDenied",
        "SignedTreatyDoc",
        "Treaty",
        "TrustedDirectory",
        "__version__",
        "decide",
        "envelope_sha256",
        "in_force",
        "lookup_recipient_keys",
        "new_message_id",
        "open_envelope",
        "redact",
        "seal",
        "verify",
        "verify_consistency",
        "verify_directory",
        "verify_inclusion",
        "verify_signatures",
        "verify_tree_head",
    ],
    "intelshare.treaty": [
        "ALL_KINDS",
        "CONTROL_KINDS",
        "DATA_KINDS",
        "RECORD_KINDS",
        "SIGNATURE_LABEL",
        "Decision",
        "Handling",
        "OnwardSharing",
        "SignedTreatyDoc",
        "Tlp",
        "Treaty",
        "alert_kind_name",
        "check_fields",
        "decide",
        "decide_header",
        "decide_header_in_force",
        "decide_review",
        "document_digest",
        "in_force",
        "kind_name",
        "onward_sharing_allowed",
        "redact",
        "register_record_kind",
        "retention_until",
        "review_matches",
        "review_required",
        "sign",
        "signing_message",
        "treaties_from_yaml",
        "unpermitted_paths",
        "verify_signatures",
    ],
    "intelshare.audit": [
        "Appended",
        "AuditLog",
        "FieldValue",
        "VerifyReport",
        "audit_metadata",
        "create_tables",
        "verify_consistency",
        "verify_inclusion",
        "verify_tree_head",
    ],
}


def _documented(name: str, value: Any) -> bool:
    """A class or function has a docstring of its own; a constant a ``#:`` comment above it
    or a docstring below it."""
    if inspect.isclass(value):
        return bool(value.__dict__.get("__doc__"))
    if inspect.isroutine(value):
        return bool(value.__doc__)
    if name == "__version__":
        return True
    for module in [m for n, m in sys.modules.items() if n.startswith("intelshare")]:
        try:
            lines = inspect.getsource(module).splitlines()
        except (OSError, TypeError):
            continue
        for i, line in enumerate(lines):
            if not line.startswith((f"{name} =", f"{name}:")):
                continue
            above = lines[i - 1] if i else ""
            below = lines[i + 1] if i + 1 < len(lines) else ""
            if above.startswith("#:") or below.startswith('"""'):
                return True
    return False


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_public_names_are_exactly_these(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert sorted(module.__all__) == sorted(PUBLIC[module_name])
    assert len(set(module.__all__)) == len(module.__all__)


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_every_public_name_is_importable_and_documented(module_name: str) -> None:
    module = importlib.import_module(module_name)
    undocumented = []
    for name in module.__all__:
        value = getattr(module, name)  # AttributeError: exported but not there
        if not _documented(name, value):
            undocumented.append(name)
    assert undocumented == []


def test_the_package_names_are_the_modules_own_objects() -> None:
    import intelshare
    from intelshare import audit, envelope, errors, treaty

    assert intelshare.seal is envelope.seal
    assert intelshare.Treaty is treaty.Treaty
    assert intelshare.AuditLog is audit.AuditLog
    assert intelshare.IntelshareError is errors.IntelshareError
    assert set(intelshare.__all__) <= set(dir(intelshare))
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        _ = intelshare.nothing_here


def test_importing_the_errors_loads_nothing_heavy() -> None:
    # The CLI and the workers import intelshare.errors first: the package's
    # exports load on first use, not with it.
    code = (
        "import sys, intelshare.errors; "
        "print(sorted(m for m in ('grpc', 'sqlalchemy', 'cryptography') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
