"""intelshare's STIX 2.1 extension: new object types and extra properties.

One ``extension-definition`` with a fixed id, published as
``docs/stix/intelshare-extension-definition.json`` with its JSON Schema
beside it (``python -m intelshare.interop.publish docs/stix`` writes
both; a test checks the shipped files are current). It declares:

``new-sdo``
    ``intelshare-vehicle``, ``intelshare-vessel``, ``intelshare-container``,
    ``intelshare-document``: subjects STIX has no type for. (STIX 2.1's
    ``infrastructure`` is cyber infrastructure, ``location`` is a place, an
    ``artifact`` or ``file`` is bytes: a lorry, a ship, an ISO 6346 box or a
    passport are none of these, and forcing them in would mislead every
    tool that reads the type.) Their properties are the subject messages'
    fields in ``alert.proto``, read from the descriptors, so a field added
    there is exported without code changes; ``Document.type`` becomes
    ``document_type`` because ``type`` is STIX's own.

``property-extension``
    On a ``report`` (the record): kind, urgency, handling code, admiralty
    evaluation, categories, expiry, state, direction, origin, treaty and
    revision. On an ``identity`` of a person or company: the fields STIX
    ``identity`` has no property for (date of birth, nationality, passport
    and identity card numbers; country, registration and VAT numbers).

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
EXTENSION_VERSION: Final = "1.0.0"
EXTENSION_CREATED: Final = "2026-12-01T00:00:00.000Z"
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

#: Properties the extension adds to the ``report`` of an alert.
REPORT_PROPERTIES: Final[dict[str, tuple[str, str]]] = {
    # name: (JSON type, meaning)
    "record_kind": ("string", "the intelshare record kind, e.g. alert"),
    "alert_kind": ("string", "what the alert is about, e.g. counterfeit_goods"),
    "urgency": ("string", "low, normal, high or critical"),
    "handling": ("string", "handling code H0-H3"),
    "source_reliability": ("string", "admiralty source reliability A, B, C or X"),
    "information_credibility": ("integer", "information credibility 1-4"),
    "categories": ("array", "data categories, e.g. counterfeit_goods"),
    "expire_time": ("timestamp", "when the alert stops being active"),
    "state": ("string", "active, revoked or expired"),
    "direction": ("string", "issued or received, seen from the holding agency"),
    "origin_agency": ("string", "agency that issued the record"),
    "holder_agency": ("string", "agency whose node exported the record"),
    "treaty_id": ("string", "treaty the record was shared or received under"),
    "treaty_version": ("integer", "version of that treaty (received records)"),
    "revision": ("integer", "1 when issued, increased by every update"),
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
    if json_type == "timestamp":
        return p.TimestampProperty(precision="second")
    return p.StringProperty()


def _property_extension_properties() -> dict[str, str]:
    props = {name: kind for name, (kind, _) in REPORT_PROPERTIES.items()}
    for subject_list in IDENTITY_CLASSES:
        for name, fd in identity_extension_fields(subject_list).items():
            props[name] = _json_type(fd)
    return props


# --- registration with the stix2 library ----------------------------------------------


def _register() -> dict[str, type[Any]]:
    # One extension id is used both as "new-sdo" (on our object types) and as
    # "property-extension" (on reports and identities), which the STIX spec
    # allows; the stix2 library wants one class per id, so extension_type is
    # an ordinary property of that class instead of a fixed class attribute.
    ext_props: list[tuple[str, p.Property]] = [
        ("extension_type", p.EnumProperty(["new-sdo", "property-extension"], required=True))
    ]
    ext_props += [(n, _stix_property(k)) for n, k in _property_extension_properties().items()]
    CustomExtension(EXTENSION_ID, ext_props)(type("IntelshareExtension", (), {}))
    classes: dict[str, type[Any]] = {}
    for subject_list, stix_type in NEW_SDO_TYPES.items():
        sdo_props: list[tuple[str, p.Property]] = [
            (name, _stix_property(_json_type(fd)))
            for name, fd in new_sdo_fields(subject_list).items()
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
        modified=EXTENSION_CREATED,
        name="intelshare",
        description=(
            "Customs and police records shared under treaties: vehicles, vessels, freight "
            "containers and documents as new object types; handling code, admiralty "
            "evaluation, expiry, treaty and the identity details of persons and companies "
            "as properties of report and identity objects."
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


def schema() -> dict[str, Any]:
    """The JSON Schema of every object type and property the extension defines."""

    def field_description(fd: FieldDescriptor) -> str:
        owner = fd.containing_type.name if fd.containing_type else "?"
        return f"{owner}.{fd.name} of intelshare/v1/alert.proto"

    defs: dict[str, Any] = {}
    for subject_list, stix_type in NEW_SDO_TYPES.items():
        defs[stix_type] = {
            "type": "object",
            "description": f"new-sdo: one of an alert's subjects.{subject_list}",
            "properties": {
                "type": {"const": stix_type},
                "extensions": {"type": "object", "required": [EXTENSION_ID]},
                **{
                    name: _schema_property(_json_type(fd), field_description(fd))
                    for name, fd in new_sdo_fields(subject_list).items()
                },
            },
            "required": ["type", "extensions"],
        }
    defs["report-properties"] = {
        "type": "object",
        "description": "property-extension on the report of a record",
        "properties": {
            "extension_type": {"const": "property-extension"},
            **{n: _schema_property(k, d) for n, (k, d) in REPORT_PROPERTIES.items()},
        },
        "required": ["extension_type", "record_kind"],
        "additionalProperties": False,
    }
    for subject_list, identity_class in IDENTITY_CLASSES.items():
        defs[f"identity-{identity_class}-properties"] = {
            "type": "object",
            "description": f"property-extension on the identity of one of subjects.{subject_list}",
            "properties": {
                "extension_type": {"const": "property-extension"},
                **{
                    name: _schema_property(_json_type(fd), field_description(fd))
                    for name, fd in identity_extension_fields(subject_list).items()
                },
            },
            "required": ["extension_type"],
            "additionalProperties": False,
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
