"""The recordation kind's export: a ``grouping`` of the holder, its rights and goods.

A recordation is no threat report: it is the context officers need to
recognise fakes. STIX's ``grouping`` ("content related to a shared context,
with no conclusion") holds: the rights holder as an ``identity``
(organization; EORI, registration number, country and whether it is a
representative in our extension; the contact point as
``contact_information``), each right as an ``intelshare-ip-right``, each
line of goods as ``intelshare-goods``, and the genuine supply chain's
manufacturers, importers and distributors as ``identity`` objects with
that role. Validity, extensions, authenticity features and usual routes
are properties of the grouping. The grantor's internal notes and the
officers named in the history are never exported.
"""

from __future__ import annotations

from stix2.base import _STIXBase

from intelshare.interop import vocab
from intelshare.interop.stix import (
    ExportContext,
    Frame,
    RecordObjects,
    frame,
    identity_object,
    new_sdo,
    record_object,
    stix_time,
    time_or_none,
)
from intelshare.v1 import recordation_pb2

R = recordation_pb2


def rights_objects(fr: Frame, rights: list[R.IntellectualPropertyRight]) -> list[_STIXBase]:
    """``intelshare-ip-right`` objects (also used by detention reports)."""
    return [
        new_sdo(
            fr,
            "intelshare-ip-right",
            f"rights/{n}",
            {
                "right_type": vocab.enum_label(R.RightType.DESCRIPTOR, right.type),
                "name": right.name,
                "registration_number": right.registration_number,
                "office": right.office,
                "expire_time": time_or_none(right, "expire_time"),
            },
        )
        for n, right in enumerate(rights)
    ]


def _holder(fr: Frame, holder: R.RightsHolder) -> _STIXBase:
    c = holder.contact
    contact = "; ".join(x for x in (holder.address, c.name, c.email, c.telephone) if x)
    return identity_object(
        fr,
        "holder",
        identity_class="organization",
        name=holder.name or f"rights holder of {fr.name} (name not shared)",
        roles=[
            "representative of the rights holder" if holder.is_representative else "rights holder"
        ],
        contact=contact,
        extra={
            "eori": holder.eori,
            "registration_number": holder.registration_number,
            "country": holder.country,
            "is_representative": holder.is_representative,
        },
    )


def _supply_chain(fr: Frame, chain: R.GenuineSupplyChain) -> list[_STIXBase]:
    out: list[_STIXBase] = []
    for role in ("manufacturers", "importers", "distributors"):
        for n, party in enumerate(getattr(chain, role)):
            out.append(
                identity_object(
                    fr,
                    f"supply_chain/{role}/{n}",
                    identity_class="organization",
                    name=party.name or f"{role[:-1]} {n + 1} of {fr.name} (name not shared)",
                    roles=[f"authorised {role[:-1]}"],
                    contact=party.address,
                    extra={"country": party.country, "eori": party.eori},
                )
            )
    return out


def _route(route: R.SupplyRoute) -> str:
    path = " > ".join(
        x for x in (route.origin_country, *route.transit_countries, route.destination_country) if x
    )
    return f"{path}: {route.description}" if route.description else path


def recordation_objects(rec: R.Recordation, ctx: ExportContext) -> RecordObjects:
    """The STIX objects of one recordation as the exporting officer reads it."""
    received = rec.direction == R.RECORDATION_DIRECTION_RECEIVED
    # A received copy names the treaty it came under in its entry for us.
    treaty = next((a.treaty_id for a in rec.agencies if a.agency_id == ctx.holder_agency), "")
    fr = frame(
        ctx,
        name=rec.name,
        issuer=rec.origin_agency or ctx.holder_agency,
        create_time=rec.create_time,
        update_time=rec.update_time if rec.HasField("update_time") else None,
        tlp=vocab.TLPS.get(rec.tlp),
        received=received,
        treaty=treaty,
        revoked=rec.state == R.RECORDATION_STATE_WITHDRAWN,
    )
    own: list[_STIXBase] = []
    if rec.HasField("holder"):
        own.append(_holder(fr, rec.holder))
    own += rights_objects(fr, list(rec.rights))
    own += [
        new_sdo(
            fr,
            "intelshare-goods",
            f"goods/{n}",
            {
                "description": g.description,
                "hs_codes": list(g.hs_codes),
                "gtins": list(g.gtins),
                "right_names": list(g.right_names),
            },
        )
        for n, g in enumerate(rec.goods)
    ]
    own += _supply_chain(fr, rec.supply_chain)
    rights = ", ".join(r.name for r in rec.rights if r.name)
    holder = rec.holder.name
    return record_object(
        fr,
        own,
        title=f"recordation {rec.name.removeprefix('recordations/')}"
        + (f": {rights}" if rights else "")
        + (f" ({holder})" if holder else ""),
        description=f"Application for customs action granted by {fr.issuer}"
        + (f" to {holder}" if holder else "")
        + (f", covering {rights}" if rights else "")
        + ".",
        properties={
            "record_kind": "recordation",
            "state": vocab.enum_label(R.RecordationState.DESCRIPTOR, rec.state),
            "direction": vocab.enum_label(R.RecordationDirection.DESCRIPTOR, rec.direction),
            "origin_agency": rec.origin_agency,
            "holder_agency": ctx.holder_agency,
            "treaty_id": treaty if received else "",
            "handling": vocab.HANDLINGS.get(rec.handling),
            "revision": rec.revision,
            "grant_time": time_or_none(rec, "grant_time"),
            "expire_time": time_or_none(rec, "expire_time"),
            "valid_for": [f"{a.agency_id}@{a.treaty_id}" for a in rec.agencies],
            "validity_extensions": [
                f"{stix_time(x.previous_expire_time)} -> {stix_time(x.expire_time)}"
                + (f": {x.reason}" if x.reason else "")
                for x in rec.extensions
            ],
            "authenticity_features": [
                f.description for f in rec.authenticity_features if f.description
            ],
            "usual_routes": [x for r in rec.supply_chain.usual_routes if (x := _route(r))],
        },
    )
