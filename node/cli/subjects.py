"""The subjects of an alert or a case entry, as officers type them.

``--person name=Jan Jansen,dob=1980-02-29,passport=NX1234567`` and the
like, one option per subject type, repeated for several. The same options
and the same parsing serve every command that takes subjects.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from intelshare.errors import FieldInvalid
from node.schema import alert as rec

#: option, subject type, help
_OPTIONS = (
    ("--person", "persons", "name=..,dob=YYYY-MM-DD,nationality=NL,passport=.."),
    ("--vehicle", "vehicles", "plate=..,country=NL,vin=..,make=..,model=.."),
    ("--container", "containers", "number=MSCU1234566,bl=..,hs=300490;300410"),
    ("--vessel", "vessels", "name=..,imo=9074729,flag=PA"),
    ("--company", "companies", "name=..,country=NL,vat=..,role=consignee"),
    ("--document", "documents", "type=bill_of_lading,number=..,country=NL"),
)

_ALIASES = {
    "persons": {"dob": "date_of_birth", "passport": "passport_number", "id_card": "id_card_number"},
    "vehicles": {"country": "registration_country"},
    "containers": {"bl": "bill_of_lading", "hs": "hs_codes"},
    "vessels": {"imo": "imo_number"},
    "companies": {"vat": "vat_number", "registration": "registration_number"},
    "documents": {"country": "issuing_country"},
}


def parse_subject(kind: str, text: str, option: str) -> dict[str, Any]:
    """``key=value,key=value`` (lists separated by ';') into a record subject."""
    out: dict[str, Any] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or not key:
            raise FieldInvalid(
                f"{option} expects key=value pairs separated by commas, got {part!r}",
                violations={option: "e.g. name=Jan de Vries,nationality=NL"},
            )
        key = _ALIASES[kind].get(key, key)
        value = value.strip()
        out[key] = (
            [v.strip() for v in value.split(";") if v.strip()] if key == "hs_codes" else value
        )
    return out


def subject_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the subject options to ``command``, which receives ``subjects`` (or None)."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        found: dict[str, list[dict[str, Any]]] = {}
        for option, kind, _help in _OPTIONS:
            for value in kwargs.pop(option.removeprefix("--")):
                found.setdefault(kind, []).append(parse_subject(kind, value, option))
        kwargs["subjects"] = rec.record_to_alert({"subjects": found}).subjects if found else None
        return command(*args, **kwargs)

    for option, _kind, help_text in reversed(_OPTIONS):
        run = click.option(option, multiple=True, help=help_text)(run)
    return run
