"""Markings: the official TLP 2.0 marking definitions and onward-sharing statements.

STIX 2.1 predefines TLP 1.0 only (``stix2.TLP_AMBER`` is TLP 1.0's AMBER).
TLP 2.0 was published by the OASIS CTI TC as marking definitions with fixed
ids carried through its own extension (``cti-stix-common-objects``,
``extension-definition-specifications/tlp-2.0``); the objects below are
those, byte for byte in content, so every tool that knows TLP 2.0
recognises them by id.

A record this node *received* under a treaty is the originator's, not
ours: the treaty says whether it may go further (``forbidden``,
``with_originator_consent``, ``within_treaty``). Exports of received
records carry that rule as a ``statement`` marking on every object, so the
tool that imports them (and the analyst reading it there) sees it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Final

from stix2.v21 import MarkingDefinition

from intelshare.interop.ids import stix_id

#: The extension the TLP 2.0 marking definitions declare themselves through.
TLP2_EXTENSION: Final = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"

#: Published ids of the TLP 2.0 marking definitions, by our ``Tlp`` names.
TLP2_IDS: Final = {
    "CLEAR": "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    "GREEN": "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    "AMBER": "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    "AMBER_STRICT": "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    "RED": "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}
_TLP2_VALUES: Final = {
    "CLEAR": "clear",
    "GREEN": "green",
    "AMBER": "amber",
    "AMBER_STRICT": "amber+strict",
    "RED": "red",
}

#: TLP 1.0 ids (predefined by STIX 2.1), read on import: WHITE is TLP 2.0's CLEAR.
TLP1_IDS: Final = {
    "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9": "CLEAR",
    "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da": "GREEN",
    "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82": "AMBER",
    "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed": "RED",
}
TLP_BY_MARKING_ID: Final = {**{v: k for k, v in TLP2_IDS.items()}, **TLP1_IDS}

#: When our statement markings are said to be created: a constant, because a
#: statement's id comes from its text and one id must always be one object.
STATEMENT_CREATED: Final = "2026-12-01T00:00:00.000Z"

_TLP_CACHE: dict[str, MarkingDefinition] = {}


def tlp_marking(tlp: str) -> MarkingDefinition:
    """The published TLP 2.0 marking definition for ``CLEAR`` ... ``RED``."""
    found = _TLP_CACHE.get(tlp)
    if found is None:
        found = MarkingDefinition(
            id=TLP2_IDS[tlp],
            created="2022-10-01T00:00:00.000Z",
            name="TLP:" + _TLP2_VALUES[tlp].upper(),
            extensions={
                TLP2_EXTENSION: {
                    "extension_type": "property-extension",
                    "tlp_2_0": _TLP2_VALUES[tlp],
                }
            },
            allow_custom=True,
        )
        _TLP_CACHE[tlp] = found
    return found


#: What each treaty rule means for the holder of a received record.
ONWARD_RULES: Final = {
    "forbidden": "forbidden: this record must not be passed to anyone outside {holder}",
    "with_originator_consent": "only with the consent of {origin}, asked for each recipient",
    "within_treaty": "only to parties of treaty {treaty}",
}


def onward_statement(
    *, holder: str, origin: str, treaty: str, version: int, rule: str | None
) -> str:
    """The statement a received record carries (``rule``: a treaty's onward_sharing value)."""
    received = f"Received by {holder} from {origin} under treaty {treaty}"
    if version:
        received += f" version {version}"
    if rule in ONWARD_RULES:
        says = ONWARD_RULES[rule].format(holder=holder, origin=origin, treaty=treaty)
        return f"{received}. Onward sharing under that treaty: {says}."
    return (
        f"{received}. Onward sharing is governed by that treaty (see 'intelshare treaty show "
        f"{treaty}'); until you have read it, treat it as forbidden."
    )


@lru_cache(maxsize=256)
def statement_marking(text: str) -> MarkingDefinition:
    """A ``statement`` marking definition whose id is derived from its text."""
    return MarkingDefinition(
        id=stix_id("marking-definition", "statements/" + text),
        created=STATEMENT_CREATED,
        name="intelshare onward sharing",
        definition_type="statement",
        definition={"statement": text},
    )


def tlp_of_marking_refs(refs: list[Any]) -> tuple[str | None, list[str]]:
    """The most restrictive TLP among ``refs``, and the refs that were not TLP."""
    order = ["CLEAR", "GREEN", "AMBER", "AMBER_STRICT", "RED"]
    found: str | None = None
    others: list[str] = []
    for ref in refs:
        tlp = TLP_BY_MARKING_ID.get(str(ref))
        if tlp is None:
            others.append(str(ref))
        elif found is None or order.index(tlp) > order.index(found):
            found = tlp
    return found, others
