"""intelshare's STIX 2.1 extension: new object types and extra properties.

One ``extension-definition`` with a fixed id, published as
``docs/stix/intelshare-extension-definition.json`` with its JSON Schema
beside it (``python -m intelshare.interop.publish docs/stix`` writes
both; a test checks the shipped files are current). It declares:

``new-sdo``
    ``intelshare-vehicle``, ``intelshare-vessel``, ``intelshare-container``,
    ``intelshare-document``, ``intelshare-goods`` and ``intelshare-ip-right``:
    things STIX has no type for. (STIX 2.1's
    ``infrastructure`` is cyber infrastructure, ``location`` is a place, an
    ``artifact`` or ``file`` is bytes: a lorry, a ship, an ISO 6346 box or a
    passport are none of these, and forcing them in would mislead every
    tool that reads the type.) Their properties are the subject messages'
    fields in ``alert.proto``, read from the descriptors, so a field added
    there is exported without code changes; ``Document.type`` becomes
    ``document_type`` because ``type`` is STIX's own. Goods and rights have
    their property tables here (:data:`OTHER_SDO_PROPERTIES`).

``property-extension``
    On the record object (a ``report`` or ``grouping``): the kind and what
    no STIX property carries, for every record kind
    (:data:`RECORD_PROPERTIES`). On an ``identity``: the fields STIX
    ``identity`` has no property for (date of birth, nationality, passport
    and identity card numbers; country, registration, VAT and EORI numbers).

Properties added later are optional, so a consumer that knows version
1.0.0 keeps reading; a change of meaning would be a new extension id.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any, Final

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from stix2 import properties as p
from stix2.v21 import CustomExtension, CustomObject, ExtensionDefinition, Identity

from intelshare.v1 import alert_pb2

#: The fixed id of our extension definition (never change it).
EXTENSION_ID: Final = "extension-definition--f9531d72-f763-4b2c-b69c-cf63faea47fd"
#: The identity that publishes the extension: the intelshare project.
PUBLISHER_ID: Final = "identity--2fe79787-9f5b-4dc5-940d-c695164c8ab5"
#: 1.1.0 added recordations, detentions, detention reports and risk profiles
#: (new types and optional properties only: a 1.0.0 reader keeps reading).
EXTENSION_VERSION: Final = "1.1.0"
EXTENSION_CREATED: Final = "2026-12-01T00:00:00.000Z"
EXTENSION_MODIFIED: Final = "2026-12-06T00:00:00.000Z"
SCHEMA_FILE: Final = "intelshare-extension-schema.json"
DEFINITION_FILE: Final = "intelshare-extension-definition.json"

#: STIX type of each subject list that becomes a new object type.
NEW_SDO_TYPES: Final = {
    "vehicles": "intelshare-vehicle",
    "vessels": "intelshare-vessel",
    "containers": "intelshare-container",
    "documents": "intelshare-document",
}
#: Subject lists that become ``identity`` objects, with their identity_class.
IDENTITY_CLASSES: Final = {"persons": "individual", "companies": "organization"}

#: Proto field names STIX reserves, and what they are called in STIX.
RENAMED: Final = {"type": "document_type"}

#: Person and company fields that go to standard ``identity`` properties.
IDENTITY_FIELDS: Final = {"name": "name", "role": "roles", "address": "contact_information"}

#: Properties the extension adds to the record object (the ``report`` or
#: ``grouping`` of a record), for every record kind; each kind uses its own
#: subset. (name: (JSON type, meaning))
RECORD_PROPERTIES: Final[dict[str, tuple[str, str]]] = {
    "record_kind": (
        "string",
        "the intelshare record kind: alert, recordation, detention, detention_report or "
        "risk_profile",
    ),
    "alert_kind": ("string", "what the alert is about, e.g. counterfeit_goods"),
    "urgency": ("string", "low, normal, high or critical"),
    "handling": ("string", "handling code H0-H3"),
    "source_reliability": ("string", "admiralty source reliability A, B, C or X"),
    "information_credibility": ("integer", "information credibility 1-4"),
    "categories": ("array", "data categories, e.g. counterfeit_goods"),
    "expire_time": ("timestamp", "when the alert or recordation stops being in force"),
    "state": (
        "string",
        "lifecycle state in the kind's own words (alert: active, revoked, expired; "
        "recordation: granted, extended, expired, withdrawn, suspended; detention: detained, "
        "holder_notified, ...; risk profile: active, scheduled, expired, withdrawn)",
    ),
    "direction": ("string", "issued or received, seen from the holding agency"),
    "origin_agency": ("string", "agency that issued, granted or reported the record"),
    "holder_agency": ("string", "agency whose node exported the record"),
    "treaty_id": ("string", "treaty the record was shared or received under"),
    "treaty_version": ("integer", "version of that treaty (received records)"),
    "revision": ("integer", "1 when issued, increased by every change"),
    # recordations
    "grant_time": ("timestamp", "when the recordation was granted"),
    "valid_for": ("array", "agencies the recordation is valid for, as agency_id@treaty_id"),
    "validity_extensions": (
        "array",
        "extensions of a recordation's validity, as 'previous end -> new end: reason'",
    ),
    "authenticity_features": ("array", "how to tell genuine goods from fakes"),
    "usual_routes": (
        "array",
        "routes genuine goods usually take, as 'origin > transit > destination: description'",
    ),
    # detentions and detention reports
    "detention": ("string", "the detention at the detaining node, detentions/{id}"),
    "procedure": ("string", "standard, ex_officio or small_consignment (Regulation 608/2013)"),
    "perishable": ("boolean", "perishable goods (shorter deadlines, no extension)"),
    "customs_office": ("string", "customs office that detained the goods"),
    "detain_time": ("timestamp", "when the goods were detained"),
    "notify_time": ("timestamp", "when the rights holder and the declarant were notified"),
    "deadlines": (
        "array",
        "the regulation's deadlines, as 'kind: last day YYYY-MM-DD (time zone), state'",
    ),
    "transport_mode": ("string", "how the goods travelled: sea, air, road, rail, post, ..."),
    "origin_country": ("string", "country of dispatch, ISO 3166-1 alpha-2"),
    "destination_country": ("string", "country of destination, ISO 3166-1 alpha-2"),
    "recordations": (
        "array",
        "recordations the goods fall under (detention: recordations/{id}; detention report: "
        "agency_id:recordations/{id} at the granting agency)",
    ),
    "suggested_recordations": ("array", "recordations the node suggested for the goods"),
    "linked_recordations": ("array", "recordations this node holds that a report concerns"),
    "parties_disclosed": ("boolean", "whether the parties were disclosed to the rights holder"),
    # risk profiles
    "action": ("string", "documentary_check, scan or physical_inspection"),
    "start_time": ("timestamp", "when the risk profile starts to match"),
    "end_time": ("timestamp", "when the risk profile stops matching"),
    "criteria": (
        "string",
        "the risk profile's criteria, JSON in the language of docs/screening.md (exact; the "
        "indicator's pattern is a translation)",
    ),
    "withdraw_reason": ("string", "why the risk profile was withdrawn"),
}
#: The name the alert-only release of the extension used.
REPORT_PROPERTIES: Final = RECORD_PROPERTIES

#: Identity properties of the extension not taken from alert.proto's
#: Person and Company (rights holders, supply-chain parties, detention parties).
IDENTITY_EXTRA_PROPERTIES: Final[dict[str, tuple[str, str]]] = {
    "eori": ("string", "Economic Operators Registration and Identification number"),
    "is_representative": (
        "boolean",
        "the rights holder's representative that applied, not the holder itself",
    ),
}
#: Extra identity properties per identity_class (``unknown``: detention parties,
#: which may be natural or legal persons).
IDENTITY_EXTRA_BY_CLASS: Final = {
    "individual": (),
    "organization": ("eori", "is_representative"),
    "unknown": ("eori",),
}
#: Fields of a detention party carried by the extension (the rest are name
#: and address, standard identity properties).
PARTY_PROPERTIES: Final[dict[str, tuple[str, str]]] = {
    "country": ("string", "country, ISO 3166-1 alpha-2"),
    "registration_number": ("string", "trade register number"),
    "eori": IDENTITY_EXTRA_PROPERTIES["eori"],
}

#: New object types that are not alert subjects, with their properties.
OTHER_SDO_PROPERTIES: Final[dict[str, dict[str, tuple[str, str]]]] = {
    "intelshare-goods": {
        "description": ("string", "what the goods are"),
        "hs_codes": ("array", "Harmonized System codes (6 digits, or 8/10-digit CN/TARIC)"),
        "gtins": ("array", "Global Trade Item Numbers"),
        "right_names": ("array", "names of the rights covering the goods"),
        "brand": ("string", "brand or protected name the goods bear"),
        "quantity": ("integer", "number of units"),
        "unit": ("string", "item, pair, package, kilogram or litre"),
        "estimated_value": ("string", "estimated value of the genuine goods, e.g. '1250.00 EUR'"),
        "category": ("string", "product category, e.g. shoes"),
        "image_digests": ("array", "photos kept by the detaining agency, sha256:..."),
    },
    "intelshare-ip-right": {
        "right_type": ("string", "trade_mark, design, patent, copyright, ..."),
        "name": ("string", "the protected name or title, e.g. the word mark"),
        "registration_number": ("string", "registration number at the office"),
        "office": ("string", "office that registered it, e.g. EUIPO"),
        "expire_time": ("timestamp", "when the right itself expires"),
    },
}
#: What each of those types is (schema descriptions).
OTHER_SDO_DESCRIPTIONS: Final = {
    "intelshare-goods": "new-sdo: a line of goods of a recordation, detention or detention report",
    "intelshare-ip-right": "new-sdo: an intellectual property right a recordation or detention "
    "concerns",
}

#: The object a risk profile's indicator pattern speaks of: a customs
#: declaration line as the node screens it (``Declaration`` of
#: risk_service.proto). It is never exported as an object, only named in
#: patterns.
PATTERN_OBJECT: Final = "intelshare-declaration"
PATTERN_PROPERTIES: Final[dict[str, tuple[str, str]]] = {
    "hs_code": ("string", "commodity code of the goods item"),
    "origin_country": ("string", "country of origin, ISO 3166-1 alpha-2"),
    "dispatch_country": ("string", "country of dispatch, ISO 3166-1 alpha-2"),
    "loading_port": ("string", "UN/LOCODE of the port of loading"),
    "discharge_port": ("string", "UN/LOCODE of the port of discharge"),
    "transport_mode": ("string", "mode of transport at the border"),
    "consignor_eori": ("string", "consignor's EORI number"),
    "consignor_vat": ("string", "consignor's VAT number"),
    "consignor_name": ("string", "consignor's name, normalised as the node's identifier keys"),
    "consignee_eori": ("string", "consignee's EORI number"),
    "consignee_vat": ("string", "consignee's VAT number"),
    "consignee_name": ("string", "consignee's name, normalised as the node's identifier keys"),
    "containers": ("array", "container numbers (ISO 6346)"),
    "gtins": ("array", "GTINs of the goods"),
    "value_per_kg": ("number", "statistical value divided by the net mass in kg"),
    "quantity": ("number", "quantity in supplementary units"),
}


def _subject_descriptor(subject_list: str) -> Descriptor:
    field = alert_pb2.Subjects.DESCRIPTOR.fields_by_name[subject_list]
    message = field.message_type
    assert message is not None
    return message


def stix_field_name(proto_name: str) -> str:
    return RENAMED.get(proto_name, proto_name)


def _json_type(fd: FieldDescriptor) -> str:
    return "array" if fd.is_repeated else "string"


def identity_extension_fields(subject_list: str) -> dict[str, FieldDescriptor]:
    """Fields of a person or company carried by the extension, by STIX name."""
    return {
        stix_field_name(fd.name): fd
        for fd in _subject_descriptor(subject_list).fields
        if fd.name not in IDENTITY_FIELDS
    }


def new_sdo_fields(subject_list: str) -> dict[str, FieldDescriptor]:
    """Fields of a vehicle, vessel, container or document, by STIX name."""
    return {stix_field_name(fd.name): fd for fd in _subject_descriptor(subject_list).fields}


def _stix_property(json_type: str) -> p.Property:
    if json_type == "array":
        return p.ListProperty(p.StringProperty)
    if json_type == "integer":
        return p.IntegerProperty()
    if json_type == "boolean":
        return p.BooleanProperty()
    if json_type == "timestamp":
        return p.TimestampProperty(precision="second")
    return p.StringProperty()


def identity_properties(identity_class: str) -> dict[str, tuple[str, str]]:
    """Extension properties of an identity of ``identity_class`` (JSON type, meaning)."""

    def described(fd: FieldDescriptor) -> tuple[str, str]:
        owner = fd.containing_type.name if fd.containing_type else "?"
        return _json_type(fd), f"{owner}.{fd.name} of intelshare/v1/alert.proto"

    if identity_class == "unknown":
        return dict(PARTY_PROPERTIES)
    subject_list = next(k for k, v in IDENTITY_CLASSES.items() if v == identity_class)
    out = {n: described(fd) for n, fd in identity_extension_fields(subject_list).items()}
    out.update({n: IDENTITY_EXTRA_PROPERTIES[n] for n in IDENTITY_EXTRA_BY_CLASS[identity_class]})
    return out


def sdo_properties(stix_type: str) -> dict[str, tuple[str, str]]:
    """Properties of one of our new object types (JSON type, meaning)."""
    if stix_type in OTHER_SDO_PROPERTIES:
        return OTHER_SDO_PROPERTIES[stix_type]
    subject_list = next(k for k, v in NEW_SDO_TYPES.items() if v == stix_type)
    return {
        name: (
            _json_type(fd),
            f"{_subject_descriptor(subject_list).name}.{fd.name} of intelshare/v1/alert.proto",
        )
        for name, fd in new_sdo_fields(subject_list).items()
    }


#: Every new object type of the extension.
ALL_SDO_TYPES: Final = (*NEW_SDO_TYPES.values(), *OTHER_SDO_PROPERTIES)


# --- registration with the stix2 library ----------------------------------------------


def _register() -> dict[str, type[Any]]:
    # One extension id is used both as "new-sdo" (on our object types) and as
    # "property-extension" (on reports and identities), which the STIX spec
    # allows; the stix2 library wants one class per id, so extension_type is
    # an ordinary property of that class instead of a fixed class attribute.
    # The property extension's other properties (RECORD_PROPERTIES and the
    # identities') are not declared to the library: it would check all of
    # them on every object built, some sixty per object whatever the object
    # carries, which cost a quarter of the export's time. Their types are
    # fixed by the mapping code, and the tests check every exported value
    # against the published schema instead; objects are built with
    # allow_custom so the library accepts them undeclared.
    ext_props: list[tuple[str, p.Property]] = [
        ("extension_type", p.EnumProperty(["new-sdo", "property-extension"], required=True))
    ]
    CustomExtension(EXTENSION_ID, ext_props)(type("IntelshareExtension", (), {}))
    classes: dict[str, type[Any]] = {}
    for stix_type in ALL_SDO_TYPES:
        sdo_props: list[tuple[str, p.Property]] = [
            (name, _stix_property(kind)) for name, (kind, _) in sdo_properties(stix_type).items()
        ]
        cls = CustomObject(stix_type, sdo_props)(type(stix_type.title().replace("-", ""), (), {}))
        classes[stix_type] = cls
    return classes


SDO_CLASSES: Final = _register()


# --- the published definition and its schema ---------------------------------------


@cache
def publisher() -> Identity:
    """The identity that publishes the extension definition."""
    return Identity(
        id=PUBLISHER_ID,
        created=EXTENSION_CREATED,
        modified=EXTENSION_CREATED,
        name="intelshare project",
        description="Publisher of the intelshare STIX extension.",
        identity_class="organization",
    )


@cache
def definition() -> ExtensionDefinition:
    """The extension definition object (the same every time)."""
    return ExtensionDefinition(
        id=EXTENSION_ID,
        created_by_ref=PUBLISHER_ID,
        created=EXTENSION_CREATED,
        modified=EXTENSION_MODIFIED,
        name="intelshare",
        description=(
            "Customs and police records shared under treaties: vehicles, vessels, freight "
            "containers, documents, goods and intellectual property rights as new object "
            "types; handling code, admiralty evaluation, expiry, treaty, the lifecycle of "
            "recordations, detentions and risk profiles, and the identity details of persons "
            "and companies as properties of report, grouping and identity objects."
        ),
        schema=(
            f"JSON Schema (draft 2020-12) in {SCHEMA_FILE}, published beside this definition "
            "in docs/stix/ of the intelshare source distribution"
        ),
        version=EXTENSION_VERSION,
        extension_types=["new-sdo", "property-extension"],
    )


def _schema_property(json_type: str, description: str) -> dict[str, Any]:
    if json_type == "array":
        return {"type": "array", "items": {"type": "string"}, "description": description}
    if json_type == "timestamp":
        return {"type": "string", "format": "date-time", "description": description}
    return {"type": json_type, "description": description}


def _schema_properties(table: dict[str, tuple[str, str]]) -> dict[str, Any]:
    return {n: _schema_property(k, d) for n, (k, d) in table.items()}


def schema() -> dict[str, Any]:
    """The JSON Schema of every object type and property the extension defines."""
    defs: dict[str, Any] = {}
    for stix_type in ALL_SDO_TYPES:
        subject_list = next((k for k, v in NEW_SDO_TYPES.items() if v == stix_type), None)
        defs[stix_type] = {
            "type": "object",
            "description": (
                f"new-sdo: one of an alert's subjects.{subject_list}"
                if subject_list
                else OTHER_SDO_DESCRIPTIONS[stix_type]
            ),
            "properties": {
                "type": {"const": stix_type},
                "extensions": {"type": "object", "required": [EXTENSION_ID]},
                **_schema_properties(sdo_properties(stix_type)),
            },
            "required": ["type", "extensions"],
        }
    defs["report-properties"] = {
        "type": "object",
        "description": "property-extension on the report or grouping of a record",
        "properties": {
            "extension_type": {"const": "property-extension"},
            **_schema_properties(RECORD_PROPERTIES),
        },
        "required": ["extension_type", "record_kind"],
        "additionalProperties": False,
    }
    for identity_class in IDENTITY_EXTRA_BY_CLASS:
        defs[f"identity-{identity_class}-properties"] = {
            "type": "object",
            "description": f"property-extension on an identity of class {identity_class}",
            "properties": {
                "extension_type": {"const": "property-extension"},
                **_schema_properties(identity_properties(identity_class)),
            },
            "required": ["extension_type"],
            "additionalProperties": False,
        }
    defs[PATTERN_OBJECT] = {
        "type": "object",
        "description": (
            "Not an object of any bundle: what a risk profile's indicator pattern speaks of, a "
            "customs declaration line as the node screens it (Declaration of "
            "intelshare/v1/risk_service.proto)."
        ),
        "properties": _schema_properties(PATTERN_PROPERTIES),
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:intelshare:stix:{EXTENSION_ID}",
        "title": f"intelshare STIX 2.1 extension {EXTENSION_VERSION}",
        "$defs": defs,
    }


def published_files() -> dict[str, str]:
    """File name -> text of what docs/stix/ ships."""
    bundle = {
        "type": "bundle",
        "id": "bundle--" + EXTENSION_ID.split("--", 1)[1],
        "objects": [
            json.loads(publisher().serialize()),
            json.loads(definition().serialize()),
        ],
    }
    return {
        DEFINITION_FILE: json.dumps(bundle, indent=2, sort_keys=True) + "\n",
        SCHEMA_FILE: json.dumps(schema(), indent=2, sort_keys=True) + "\n",
    }
