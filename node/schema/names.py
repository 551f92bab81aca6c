"""Resource names and the one rule for the ids in them.

Two kinds of id appear in names, each with one rule everywhere:

* **ids the node assigns** (alerts, cases, case entries, forwards, consent
  requests): the message id of the envelope that carried the resource, a
  canonical lower-case UUIDv7 (``intelshare.ids.is_message_id``). A received
  alert keeps the sender's message id, so both ends name it alike.
* **ids a client chooses** (recordations, detentions and the other record
  kinds of :mod:`node.sharing.records` that take one): 1 to 63 lower-case
  letters, digits and ``-``, starting and ending with a letter or digit
  (:func:`check_client_id`).

A name whose id breaks its rule is ``NAME_INVALID`` (a client-chosen id in
a create request, ``ID_INVALID``), never looked up: so ``alerts/nope`` is
refused the same way as ``cases/nope``, before any read.
"""

from __future__ import annotations

import re
from typing import Final

from intelshare import errors
from intelshare.ids import is_message_id

#: the form of a client-chosen id (recordations, detentions, ...)
CLIENT_ID_RE: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def assigned_id(name: str, collection: str, field: str = "name") -> str:
    """The id of ``{collection}/{id}`` where the node assigned the id (a UUIDv7)."""
    prefix = f"{collection}/"
    ident = name[len(prefix) :] if name.startswith(prefix) else ""
    if not is_message_id(ident):
        raise errors.NameInvalid(
            f"{field} must look like {collection}/{{id}} with a lower-case UUIDv7 id, "
            f"got {name[:100]!r}",
            violations={field: f"expected {collection}/{{id}} (the id a lower-case UUIDv7)"},
        )
    return ident


def check_client_id(ident: str, field: str) -> str:
    """``ident`` when it is a valid client-chosen id; ID_INVALID naming ``field`` otherwise."""
    if not CLIENT_ID_RE.fullmatch(ident):
        raise errors.IdInvalid(
            f"{field} {ident[:100]!r} must be 1-63 lower-case letters, digits or '-'",
            violations={field: "lower case, digits, '-'"},
        )
    return ident
