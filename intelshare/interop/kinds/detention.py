"""The detention and detention-report kinds' export: a ``report`` of what was detained.

Both are observations of goods (``report_types: observed-data``): each
line of goods is an ``intelshare-goods``; the transport becomes the
alert's subject types (the container with its seal and bill of lading,
the vessel, the road vehicle) and documents for an air waybill or a
tracking number; consignor, consignee and declarant are ``identity``
objects of class ``unknown`` (they may be natural or legal persons) with
their role, present only where the officer may read them (a rights holder
sees parties only once disclosed; a report carries them only where the
treaty allows). A report's rights are ``intelshare-ip-right`` objects.

A detention never leaves the detaining node, so it is marked TLP:AMBER+STRICT
(the agency's own organisation); officers' names, the moves' history,
internal notes and sample requests are not exported.
"""

from __future__ import annotations

from stix2.base import _STIXBase

from intelshare.interop import vocab
from intelshare.interop.kinds.alert import subject_objects
from intelshare.interop.kinds.recordation import rights_objects
from intelshare.interop.stix import (
    ExportContext,
    Frame,
    RecordObjects,
    frame,
    identity_object,
    new_sdo,
    record_object,
    time_or_none,
)
from intelshare.v1 import alert_pb2, detention_pb2

D = detention_pb2
#: What a detention is marked with: it stays with the detaining agency.
DETENTION_TLP = "AMBER_STRICT"


def _money(v: D.MonetaryValue) -> str:
    if not v.currency_code or not (v.units or v.nanos):
        return ""
    cents = round((v.units * 1_000_000_000 + v.nanos) / 10_000_000)
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d} {v.currency_code}"


def _goods(fr: Frame, goods: list[D.DetainedGoods]) -> list[_STIXBase]:
    return [
        new_sdo(
            fr,
            "intelshare-goods",
            f"goods/{n}",
            {
                "description": g.description,
                "hs_codes": [g.hs_code] if g.hs_code else [],
                "gtins": list(g.gtins),
                "brand": g.brand,
                "quantity": g.quantity,
                "unit": vocab.enum_label(D.QuantityUnit.DESCRIPTOR, g.unit),
                "estimated_value": _money(g.estimated_value),
                "category": vocab.enum_label(D.GoodsCategory.DESCRIPTOR, g.category),
                "image_digests": list(g.image_digests),
            },
        )
        for n, g in enumerate(goods)
    ]


def _transport_subjects(t: D.DetentionTransport) -> alert_pb2.Subjects:
    s = alert_pb2.Subjects()
    if t.container_number or t.seal_number:
        s.containers.add(
            number=t.container_number, seal_number=t.seal_number, bill_of_lading=t.bill_of_lading
        )
    elif t.bill_of_lading:
        s.documents.add(type="bill_of_lading", number=t.bill_of_lading)
    if t.vessel_name or t.vessel_imo:
        s.vessels.add(name=t.vessel_name, imo_number=t.vessel_imo)
    if t.vehicle_plate:
        s.vehicles.add(plate=t.vehicle_plate, registration_country=t.vehicle_country)
    if t.air_waybill:
        s.documents.add(type="air_waybill", number=t.air_waybill)
    if t.tracking_number:
        s.documents.add(type="tracking_number", number=t.tracking_number)
    return s


def _parties(fr: Frame, parties: D.DetentionParties) -> list[_STIXBase]:
    out: list[_STIXBase] = []
    for role in ("consignor", "consignee", "declarant"):
        if not parties.HasField(role):
            continue
        p: D.DetentionParty = getattr(parties, role)
        if not (p.name or p.eori or p.registration_number or p.address):
            continue
        out.append(
            identity_object(
                fr,
                f"parties/{role}",
                identity_class="unknown",
                name=p.name or f"{role} of {fr.name} (name not shared)",
                roles=[role],
                contact=p.address,
                extra={
                    "country": p.country,
                    "eori": p.eori,
                    "registration_number": p.registration_number,
                },
            )
        )
    return out


def _observed(
    fr: Frame,
    goods: list[D.DetainedGoods],
    transport: D.DetentionTransport,
    parties: D.DetentionParties,
) -> list[_STIXBase]:
    return [
        *_goods(fr, goods),
        *subject_objects(fr, _transport_subjects(transport)),
        *_parties(fr, parties),
    ]


def _deadline(x: D.DetentionDeadline) -> str:
    kind = vocab.enum_label(D.DeadlineKind.DESCRIPTOR, x.kind) or "deadline"
    state = vocab.enum_label(D.DeadlineState.DESCRIPTOR, x.state) or "unknown"
    return f"{kind}: last day {x.last_day} ({x.time_zone or 'UTC'}), {state}"


def _brands(goods: list[D.DetainedGoods]) -> str:
    return ", ".join(sorted({g.brand for g in goods if g.brand}))


def detention_objects(det: D.Detention, ctx: ExportContext) -> RecordObjects:
    """The STIX objects of one detention as the exporting officer (or holder) reads it."""
    agency = det.detaining_agency or ctx.holder_agency
    fr = frame(
        ctx,
        name=det.name,
        issuer=agency,
        create_time=det.create_time,
        update_time=det.update_time if det.HasField("update_time") else None,
        tlp=DETENTION_TLP,
        received=False,
    )
    detention_id = det.name.removeprefix("detentions/")
    brands = _brands(list(det.goods))
    return record_object(
        fr,
        _observed(fr, list(det.goods), det.transport, det.parties),
        title=f"detention {detention_id}" + (f": {brands}" if brands else ""),
        description=f"Goods detained by {agency}"
        + (f" at customs office {det.customs_office}" if det.customs_office else "")
        + " on suspicion of infringing intellectual property rights.",
        report_types=["observed-data"],
        properties={
            "record_kind": "detention",
            "state": vocab.enum_label(D.DetentionState.DESCRIPTOR, det.state),
            "direction": "issued",
            "origin_agency": agency,
            "holder_agency": ctx.holder_agency,
            "revision": det.revision,
            "procedure": vocab.enum_label(D.DetentionProcedure.DESCRIPTOR, det.procedure),
            "perishable": det.perishable,
            "customs_office": det.customs_office,
            "detain_time": time_or_none(det, "detain_time"),
            "notify_time": time_or_none(det, "notify_time"),
            "deadlines": [_deadline(x) for x in det.deadlines],
            "transport_mode": vocab.enum_label(D.TransportMode.DESCRIPTOR, det.transport.mode),
            "origin_country": det.origin_country,
            "destination_country": det.destination_country,
            "recordations": list(det.recordations),
            "suggested_recordations": list(det.suggested_recordations),
            "parties_disclosed": det.parties_disclosed,
        },
    )


def detention_report_objects(rep: D.DetentionReport, ctx: ExportContext) -> RecordObjects:
    """The STIX objects of one detention report, sent or received."""
    agency = rep.reporting_agency or ctx.holder_agency
    received = agency != ctx.holder_agency
    fr = frame(
        ctx,
        name=rep.name,
        issuer=agency,
        create_time=rep.create_time,
        update_time=None,  # a report is never changed: a new state is a new report
        tlp=vocab.TLPS.get(rep.tlp),
        received=received,
        treaty=rep.treaty_id,
    )
    own = _observed(fr, list(rep.goods), rep.transport, rep.parties)
    own += rights_objects(fr, list(rep.rights))
    brands = _brands(list(rep.goods))
    return record_object(
        fr,
        own,
        title=f"detention report {rep.name.removeprefix('detentionReports/')} from {agency}"
        + (f": {brands}" if brands else ""),
        description=rep.summary,
        report_types=["observed-data"],
        properties={
            "record_kind": "detention_report",
            "state": vocab.enum_label(D.DetentionState.DESCRIPTOR, rep.state),
            "direction": "received" if received else "issued",
            "origin_agency": agency,
            "holder_agency": ctx.holder_agency,
            "treaty_id": rep.treaty_id if received else "",
            "handling": vocab.HANDLINGS.get(rep.handling),
            "detention": rep.detention,
            "procedure": vocab.enum_label(D.DetentionProcedure.DESCRIPTOR, rep.procedure),
            "detain_time": time_or_none(rep, "detain_time"),
            "transport_mode": vocab.enum_label(D.TransportMode.DESCRIPTOR, rep.transport.mode),
            "origin_country": rep.origin_country,
            "destination_country": rep.destination_country,
            "recordations": [f"{r.agency_id}:{r.recordation}" for r in rep.recordations],
            "linked_recordations": list(rep.linked_recordations),
        },
    )
