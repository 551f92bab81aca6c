"""intelshare: the shared core of the federation.

Envelope cryptography, federation trust (root, directory), treaties and the
sharing policy, the audit log, configuration and the one exception hierarchy.
The ``node`` and ``gateway`` packages build on this core; it imports neither.

The names below are the core's public face, what a service or a tool built on
it needs, importable from here (``from intelshare import seal, Treaty``);
``tests/intelshare/test_public_api.py`` pins the list. Each lives in its own
module (:mod:`intelshare.envelope`, :mod:`intelshare.treaty`,
:mod:`intelshare.audit`, ...), which has its own ``__all__``. They are loaded
on first use (PEP 562): ``import intelshare.errors`` alone stays cheap, as the
command line and the workers rely on.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the lazy names below are, for type checkers
    from intelshare.audit import (
        AuditLog,
        verify_consistency,
        verify_inclusion,
        verify_tree_head,
    )
    from intelshare.directory import Anchor, TrustedDirectory, verify_directory
    from intelshare.envelope import (
        HeaderFields,
        Opened,
        envelope_sha256,
        lookup_recipient_keys,
        open_envelope,
        seal,
        verify,
    )
    from intelshare.errors import (
        EnvelopeInvalid,
        IntelshareError,
        InvalidArgument,
        NotFound,
        PermissionDenied,
    )
    from intelshare.gateway_client import GatewayClient
    from intelshare.ids import new_message_id
    from intelshare.keys import AgencyKeys
    from intelshare.treaty import (
        Decision,
        SignedTreatyDoc,
        Treaty,
        decide,
        in_force,
        redact,
        verify_signatures,
    )

__version__ = "0.1.0"

#: Each public name and the module that defines it.
_HOME = {
    # sealing, verifying and opening envelopes
    "HeaderFields": "intelshare.envelope",
    "Opened": "intelshare.envelope",
    "envelope_sha256": "intelshare.envelope",
    "lookup_recipient_keys": "intelshare.envelope",
    "open_envelope": "intelshare.envelope",
    "seal": "intelshare.envelope",
    "verify": "intelshare.envelope",
    # an agency's keys and message ids
    "AgencyKeys": "intelshare.keys",
    "new_message_id": "intelshare.ids",
    # federation trust: the anchor and the signed directory
    "Anchor": "intelshare.directory",
    "TrustedDirectory": "intelshare.directory",
    "verify_directory": "intelshare.directory",
    # treaties and the sharing policy
    "Decision": "intelshare.treaty",
    "SignedTreatyDoc": "intelshare.treaty",
    "Treaty": "intelshare.treaty",
    "decide": "intelshare.treaty",
    "in_force": "intelshare.treaty",
    "redact": "intelshare.treaty",
    "verify_signatures": "intelshare.treaty",
    # the tamper-evident audit log
    "AuditLog": "intelshare.audit",
    "verify_consistency": "intelshare.audit",
    "verify_inclusion": "intelshare.audit",
    "verify_tree_head": "intelshare.audit",
    # the gateway, as a client sees it
    "GatewayClient": "intelshare.gateway_client",
    # the exception hierarchy: its root and the errors callers handle most
    "EnvelopeInvalid": "intelshare.errors",
    "IntelshareError": "intelshare.errors",
    "InvalidArgument": "intelshare.errors",
    "NotFound": "intelshare.errors",
    "PermissionDenied": "intelshare.errors",
}

__all__ = [
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
]


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'intelshare' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
