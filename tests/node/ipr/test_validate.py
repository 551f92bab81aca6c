"""Validation of new recordations and detentions: good and bad GTINs, HS codes, containers, IMO."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from intelshare import errors
from intelshare.errors import (
    ContainerNumberInvalid,
    FieldInvalid,
    GtinInvalid,
    HsCodeInvalid,
    InvalidArgument,
)
from intelshare.v1 import detention_pb2 as D
from intelshare.v1 import recordation_pb2 as R
from node.ipr import validate
from tests.node.ipr import samples

NOW = samples.NOW


def refused(call: object, *args: object) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as info:
        call(*args)  # type: ignore[operator]
    return info.value


# --- recordations ------------------------------------------------------------------------


def test_a_good_recordation_passes() -> None:
    validate.validate_new_recordation(samples.recordation(), NOW)


@pytest.mark.parametrize(
    "gtin",
    ["4006381333931", "036000291452", "96385074", "00012345600012", "4006 3813 3393 1"],
)
def test_good_gtins(gtin: str) -> None:
    validate.validate_new_recordation(samples.recordation(gtins=(gtin,)), NOW)


@pytest.mark.parametrize(
    ("gtin", "why"),
    [
        ("4006381333932", "wrong check digit"),
        ("400638133393", "wrong check digit"),
        ("12345", "wrong length"),
        ("40063813339ab", "wrong format"),
        ("", "must not be empty"),
    ],
)
def test_bad_gtins(gtin: str, why: str) -> None:
    err = refused(validate.validate_new_recordation, samples.recordation(gtins=(GOOD, gtin)), NOW)
    assert type(err) is GtinInvalid
    assert err.reason == "GTIN_INVALID"
    assert list(err.violations) == ["recordation.goods[0].gtins[1]"]
    assert why in err.violations["recordation.goods[0].gtins[1]"]


GOOD = samples.GTIN_13


@pytest.mark.parametrize("code", ["64041", "6404110", "64041100", "6404.11", "abcdef", ""])
def test_recordations_name_six_digit_hs_codes(code: str) -> None:
    err = refused(
        validate.validate_new_recordation, samples.recordation(hs_codes=("640411", code)), NOW
    )
    assert type(err) is HsCodeInvalid
    assert err.reason == "HS_CODE_INVALID"
    assert list(err.violations) == ["recordation.goods[0].hs_codes[1]"]


def test_validity_at_most_one_year() -> None:
    grant = datetime(2026, 2, 1, 12, tzinfo=UTC)
    one_year = samples.recordation(grant=grant, valid_for=timedelta(days=365))
    validate.validate_new_recordation(one_year, grant + timedelta(days=1))
    longer = samples.recordation(grant=grant, valid_for=timedelta(days=365, seconds=1))
    err = refused(validate.validate_new_recordation, longer, grant + timedelta(days=1))
    assert type(err) is FieldInvalid
    assert "at most one year" in err.violations["recordation.expire_time"]
    assert "2027-02-01" in err.violations["recordation.expire_time"]


def test_leap_day_grant() -> None:
    grant = datetime(2028, 2, 29, tzinfo=UTC)
    assert validate.add_one_year(grant) == datetime(2029, 2, 28, tzinfo=UTC)


def test_validity_must_reach_the_future() -> None:
    old = samples.recordation(grant=NOW - timedelta(days=200), valid_for=timedelta(days=100))
    err = refused(validate.validate_new_recordation, old, NOW)
    assert "in the past" in err.violations["recordation.expire_time"]
    missing = samples.recordation()
    missing.ClearField("grant_time")
    missing.ClearField("expire_time")
    err = refused(validate.validate_new_recordation, missing, NOW)
    assert set(err.violations) == {"recordation.grant_time", "recordation.expire_time"}


def test_every_problem_at_once_by_proto_path() -> None:
    r = samples.recordation(gtins=("4006381333932",), hs_codes=("6404",))
    r.holder.eori = "N1"
    r.holder.country = "nl"
    r.holder.contact.Clear()
    r.rights[0].registration_number = ""
    r.rights.add(type=R.RIGHT_TYPE_COPYRIGHT, name="Sprint artwork")  # no number needed
    r.authenticity_features[0].attachment_digests.append("md5:abc")
    r.supply_chain.manufacturers.add(name="", country="ZZ")
    r.agencies.add(agency_id="de-customs")
    err = refused(validate.validate_new_recordation, r, NOW)
    assert type(err) is FieldInvalid  # a mix of reasons
    assert err.reason == "FIELD_INVALID"
    assert set(err.violations) == {
        "recordation.goods[0].gtins[0]",
        "recordation.goods[0].hs_codes[0]",
        "recordation.holder.eori",
        "recordation.holder.country",
        "recordation.holder.contact",
        "recordation.rights[0].registration_number",
        "recordation.authenticity_features[0].attachment_digests[1]",
        "recordation.supply_chain.manufacturers[1].name",
        "recordation.supply_chain.manufacturers[1].country",
        "recordation.agencies[1].agency_id",
    }
    assert "(and 9 more)" in err.message


def test_holder_needs_an_identity() -> None:
    r = samples.recordation()
    r.holder.eori = ""
    err = refused(validate.validate_new_recordation, r, NOW)
    assert "registration_number" in err.violations["recordation.holder.eori"]
    r.holder.registration_number = "KVK 12345678"
    validate.validate_new_recordation(r, NOW)


# --- detentions ----------------------------------------------------------------------------


def test_a_good_detention_passes() -> None:
    validate.validate_new_detention(samples.detention(), NOW)


@pytest.mark.parametrize("code", ["640411", "64041100", "6404110090"])
def test_detentions_take_hs_cn_and_taric_codes(code: str) -> None:
    validate.validate_new_detention(samples.detention(hs_code=code), NOW)


@pytest.mark.parametrize("code", ["64041", "6404110", "640411009", "64041100901", "HS6404"])
def test_bad_declared_hs_codes(code: str) -> None:
    err = refused(validate.validate_new_detention, samples.detention(hs_code=code), NOW)
    assert type(err) is HsCodeInvalid
    assert list(err.violations) == ["detention.goods[0].hs_code"]


@pytest.mark.parametrize("number", ["CSQU3054383", "csqu 305438 3", "MSCU-123456-6"])
def test_good_container_numbers(number: str) -> None:
    d = samples.detention()
    d.transport.container_number = number
    validate.validate_new_detention(d, NOW)


@pytest.mark.parametrize(
    ("number", "why"),
    [("CSQU3054384", "check digit"), ("CSQU305438", "length"), ("1234567890A", "format")],
)
def test_bad_container_numbers(number: str, why: str) -> None:
    d = samples.detention()
    d.transport.container_number = number
    err = refused(validate.validate_new_detention, d, NOW)
    assert type(err) is ContainerNumberInvalid
    assert err.reason == "CONTAINER_NUMBER_INVALID"
    assert why in err.violations["detention.transport.container_number"]


@pytest.mark.parametrize(
    ("imo", "ok"), [("9811000", True), ("IMO 9074729", True), ("9811001", False), ("98110", False)]
)
def test_vessel_imo(imo: str, ok: bool) -> None:
    d = samples.detention()
    d.transport.vessel_imo = imo
    if ok:
        validate.validate_new_detention(d, NOW)
    else:
        err = refused(validate.validate_new_detention, d, NOW)
        assert type(err) is FieldInvalid
        assert "IMO number" in err.violations["detention.transport.vessel_imo"]


@pytest.mark.parametrize(
    ("awb", "ok"),
    [("176-12345675", True), ("17612345675", True), ("176-12345674", False), ("17-1234567", False)],
)
def test_air_waybill(awb: str, ok: bool) -> None:
    assert validate.air_waybill_ok(awb) is ok
    d = samples.detention()
    d.transport.air_waybill = awb
    if ok:
        validate.validate_new_detention(d, NOW)
    else:
        assert (
            "detention.transport.air_waybill"
            in refused(validate.validate_new_detention, d, NOW).violations
        )


def test_bad_gtin_on_detained_goods() -> None:
    err = refused(validate.validate_new_detention, samples.detention(gtins=("4006381333932",)), NOW)
    assert type(err) is GtinInvalid
    assert list(err.violations) == ["detention.goods[0].gtins[0]"]


def test_procedures_and_recordations() -> None:
    err = refused(validate.validate_new_detention, samples.detention(recordations=()), NOW)
    assert "ex officio" in err.violations["detention.recordations"]
    ex_officio = samples.detention(procedure=D.DETENTION_PROCEDURE_EX_OFFICIO)
    err = refused(validate.validate_new_detention, ex_officio, NOW)
    assert "no recordation yet" in err.violations["detention.recordations"]
    validate.validate_new_detention(
        samples.detention(procedure=D.DETENTION_PROCEDURE_EX_OFFICIO, recordations=()), NOW
    )
    err = refused(
        validate.validate_new_detention,
        samples.detention(procedure=D.DETENTION_PROCEDURE_UNSPECIFIED),
        NOW,
    )
    assert "detention.procedure" in err.violations
    err = refused(
        validate.validate_new_detention,
        samples.detention(recordations=("recordations/a", "recordations/a", "alerts/x")),
        NOW,
    )
    assert set(err.violations) == {"detention.recordations[1]", "detention.recordations[2]"}


def test_detention_goods_quantities_values_and_parties() -> None:
    d = samples.detention()
    d.goods[0].quantity = 0
    d.goods[0].estimated_value.currency_code = "euro"
    d.parties.declarant.eori = "12"
    d.origin_country = "China"
    d.detain_time.FromDatetime(NOW + timedelta(hours=1))
    d.transport.vehicle_plate = "AB-123-C"
    err = refused(validate.validate_new_detention, d, NOW)
    assert set(err.violations) == {
        "detention.goods[0].quantity",
        "detention.goods[0].estimated_value.currency_code",
        "detention.parties.declarant.eori",
        "detention.origin_country",
        "detention.detain_time",
        "detention.transport.vehicle_country",
    }
    d = samples.detention()
    d.ClearField("goods")
    assert "detention.goods" in refused(validate.validate_new_detention, d, NOW).violations


def test_error_classes_are_in_the_hierarchy() -> None:
    classes = set(errors.all_error_classes())
    for cls in (GtinInvalid, HsCodeInvalid, ContainerNumberInvalid):
        assert cls in classes
        assert issubclass(cls, InvalidArgument)
