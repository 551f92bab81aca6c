"""Declaration files: good rows read, bad ones named by line and column, the rest still read."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from intelshare.errors import InvalidArgument
from node.targeting import declarations as D
from node.targeting.declarations import Declaration, Parsed, ReadError

HEADER = (
    "reference,hs_code,origin_country,dispatch_country,loading_port,discharge_port,"
    "transport_mode,consignor_eori,consignor_vat,consignor_name,consignee_eori,consignee_vat,"
    "consignee_name,containers,gtins,vessel_imo,vehicle_plate,vehicle_country,identifiers,"
    "value,net_mass_kg,quantity"
)
FULL_ROW = (
    'MRN-1,3004.90.00,in,IN,IN NSA,NLRTM,1,NL004495445,,"Acme Trading B.V.",,DE136695976,'
    'Globex GmbH,"csqu 305438-3; MSKU9070323;CSQU3054383",036000291452,IMO 9074729,ab-123-c,nl,'
    '"passport:DEU:c01x00t47",1250.50,500,12'
)
FULL = Declaration(
    reference="MRN-1",
    hs_code="30049000",
    origin_country="IN",
    dispatch_country="IN",
    loading_port="INNSA",
    discharge_port="NLRTM",
    transport_mode="sea",
    consignor=("eori:NL004495445", "company:acme trading"),
    consignee=("vat:DE136695976", "company:globex"),
    containers=("CSQU3054383", "MSKU9070323"),
    gtins=("00036000291452",),
    vessel_imo="9074729",
    vehicle="plate:NL:AB123C",
    identifiers=("passport:DE:C01X00T47",),
    value=1250.5,
    net_mass_kg=500.0,
    quantity=12.0,
)


def _csv(text: str, **kwargs: int) -> list[Parsed | ReadError]:
    return list(D.read_csv(io.BytesIO(text.encode()), **kwargs))


def _jsonl(text: str | bytes, **kwargs: int) -> list[Parsed | ReadError]:
    data = text.encode() if isinstance(text, str) else text
    return list(D.read_jsonl(io.BytesIO(data), **kwargs))


def test_a_full_csv_row_is_read_in_canonical_form() -> None:
    assert _csv(f"{HEADER}\n{FULL_ROW}\n") == [Parsed(2, FULL)]
    assert FULL.value_per_kg == pytest.approx(2.501)
    assert FULL.identifier_keys() == [
        ("container", "iso6346:CSQU3054383"),
        ("container", "iso6346:MSKU9070323"),
        ("vessel", "imo:9074729"),
        ("vehicle", "plate:NL:AB123C"),
        ("consignor", "eori:NL004495445"),
        ("consignor", "company:acme trading"),
        ("consignee", "vat:DE136695976"),
        ("consignee", "company:globex"),
        ("gtin", "gtin:00036000291452"),
        ("hs_code", "hs:300490"),  # looked up among recordations' subheadings
        ("identifier", "passport:DE:C01X00T47"),
    ]


def test_the_same_declaration_from_json_lines() -> None:
    row = {
        "reference": "MRN-1",
        "hs_code": "30049000",
        "origin_country": "IN",
        "dispatch_country": "IN",
        "loading_port": "INNSA",
        "discharge_port": "NLRTM",
        "transport_mode": "sea",
        "consignor_eori": "NL004495445",
        "consignor_name": "ACME TRADING",
        "consignee_vat": "DE136695976",
        "consignee_name": "Globex",
        "containers": ["CSQU3054383", "MSKU 907032-3"],
        "gtins": "036000291452",
        "vessel_imo": "9074729",
        "vehicle_plate": "AB 123 C",
        "vehicle_country": "NL",
        "identifiers": ["passport:DE:C01X00T47"],
        "value": 1250.5,
        "net_mass_kg": "500",
        "quantity": 12,
    }
    assert _jsonl("\n" + json.dumps(row) + "\n\n") == [Parsed(2, FULL)]


def test_only_reference_and_hs_code_are_required() -> None:
    assert _csv("hs_code,reference\n847130,R-9\n") == [
        Parsed(2, Declaration(reference="R-9", hs_code="847130"))
    ]


def test_bad_csv_rows_are_named_and_the_rest_is_read() -> None:
    text = "\n".join(
        [
            "reference,hs_code,origin_country,containers,value,net_mass_kg,transport_mode",
            "R1,30049000,IN,CSQU3054383,100,50,sea",
            "R2,3004,IN,,,,",  # HS code too short
            "R3,30049000,QQ,CSQU3054384,12.5.1,-1,boat",  # five bad columns
            "R4,30049000,IN",  # too few fields
            "",  # blank lines are skipped, but counted
            'R5,30049000,"IN',  # open quote
            "R6,30049000,DE,,,,4",
            ",30049000,DE,,,,",  # no reference
        ]
    )
    got = _csv(text + "\n")
    assert [item for item in got if isinstance(item, Parsed)] == [
        Parsed(
            2,
            Declaration(
                "R1",
                "30049000",
                origin_country="IN",
                containers=("CSQU3054383",),
                value=100.0,
                net_mass_kg=50.0,
                transport_mode="sea",
            ),
        ),
        Parsed(7 + 1, Declaration("R6", "30049000", origin_country="DE", transport_mode="air")),
    ]
    errors = [(e.line, e.column) for e in got if isinstance(e, ReadError)]
    assert errors == [
        (3, "hs_code"),
        (4, "origin_country"),
        (4, "transport_mode"),
        (4, "containers"),
        (4, "value"),
        (4, "net_mass_kg"),
        (5, ""),
        (7, ""),
        (9, "reference"),
    ]
    by_place = {(e.line, e.column): e.message for e in got if isinstance(e, ReadError)}
    assert "6 to 10 digits" in by_place[(3, "hs_code")]
    assert "wrong check digit" in by_place[(4, "containers")]
    assert "value 1" in by_place[(4, "containers")]
    assert "not a number" in by_place[(4, "value")]
    assert "at least 0" in by_place[(4, "net_mass_kg")]
    assert "has 3 fields, the header has 7" in by_place[(5, "")]
    assert "not a CSV record" in by_place[(7, "")]
    assert by_place[(9, "reference")] == "is required"
    assert str(ReadError(4, "value", "x")) == "line 4, column value: x"


def test_header_problems() -> None:
    # an unknown column is reported once and ignored; the rows are still read
    got = _csv("reference,hs_code,orign_country\nR1,300490,IN\n")
    assert got == [
        ReadError(1, "orign_country", "unknown column: ignored (columns: docs/screening.md)"),
        Parsed(2, Declaration("R1", "300490")),
    ]
    # a missing required column stops the file: no row could be screened
    missing = _csv("reference,origin_country\nR1,IN\nR2,DE\n")
    assert missing == [ReadError(1, "hs_code", "missing column: every row needs it")]
    repeated = _csv("reference,hs_code,hs_code\nR1,300490,300490\n")
    assert repeated == [ReadError(1, "hs_code", "repeated column")]
    assert _csv("") == [ReadError(1, "", "the file is empty: a CSV file starts with a header row")]
    # a byte-order mark before the header is not part of the first column's name
    with_bom = list(D.read_csv(io.BytesIO(b"\xef\xbb\xbfreference,hs_code\r\nR1,300490\r\n")))
    assert with_bom == [Parsed(2, Declaration("R1", "300490"))]


def test_vehicle_needs_its_country() -> None:
    got = _csv(
        "reference,hs_code,vehicle_plate,vehicle_country\nR1,300490,AB123,\nR2,300490,AB123,XX\n"
    )
    assert got == [
        ReadError(2, "vehicle_country", "is required with vehicle_plate"),
        ReadError(3, "vehicle_country", "'XX' is not an ISO 3166-1 alpha-2 country code"),
    ]


def test_bad_json_lines() -> None:
    lines = [
        '{"reference": "R1", "hs_code": "300490"}',
        '{"reference": "R2", "hs_code": 300490}',  # a number loses leading zeros: refused
        '["R3", "300490"]',
        '{"reference": "R4", "hs_code": "300490", "reference": "R4b"}',
        '{"reference": "R5", "hs_code": "300490"',
        '{"reference": "R6", "hs_code": "300490", "colour": "red"}',
        '{"reference": "R7", "hs_code": "300490", "containers": {"a": 1}}',
        '{"reference": "R8", "hs_code": "300490", "gtins": ["036000291452", 96385074]}',
        '{"reference": "R9", "hs_code": "300490", "value": NaN}',
        '{"reference": "R10", "hs_code": "300490", "quantity": true}',
        '{"reference": "R11", "hs_code": "300490", "identifiers": ["CSQU3054383"]}',
        '{"reference": "R12", "hs_code": "300490", "value": 1e400}',
    ]
    got = _jsonl("\n".join(lines))
    assert got[0] == Parsed(1, Declaration("R1", "300490"))
    errors = {(e.line, e.column): e.message for e in got[1:] if isinstance(e, ReadError)}
    assert len(got) == 1 + len(errors)
    assert errors[(2, "hs_code")] == "must be a string, not int"
    assert errors[(3, "")] == "not a JSON object but a list"
    assert "key 'reference' repeated" in errors[(4, "")]
    assert "not a JSON object" in errors[(5, "")]
    assert errors[(6, "colour")] == "unknown field (fields: docs/screening.md)"
    assert "must be a list or a ';'-separated string" in errors[(7, "containers")]
    assert errors[(8, "gtins")] == "value 2 must be a string, not int"
    assert "finite" in errors[(9, "value")]
    assert "not a number" in errors[(10, "quantity")]
    assert "not an identifier key" in errors[(11, "identifiers")]
    assert "finite" in errors[(12, "value")]


def test_lists_are_bounded() -> None:
    many = ";".join(["CSQU3054383"] * (D.MAX_CONTAINERS + 1))
    got = _csv(f"reference,hs_code,containers\nR1,300490,{many}\n")
    assert got == [ReadError(2, "containers", f"lists more than {D.MAX_CONTAINERS} values")]


def test_an_oversized_line_is_refused_and_the_next_one_read() -> None:
    big = "R0,300490," + "x" * 5000
    text = f"reference,hs_code,consignor_name\n{big}\nR1,300490,Acme\n"
    got = _csv(text, max_line_bytes=1024)
    assert got == [
        ReadError(2, "", "longer than 1024 bytes: not read"),
        Parsed(3, Declaration("R1", "300490", consignor=("company:acme",))),
    ]
    # a line of exactly the limit is read; a longer one (line break included) is not
    row = '{"reference": "R1", "hs_code": "300490"}\n'
    assert _jsonl(row, max_line_bytes=len(row)) == [Parsed(1, Declaration("R1", "300490"))]
    assert _jsonl(row + row, max_line_bytes=len(row) - 1) == [
        ReadError(1, "", f"longer than {len(row) - 1} bytes: not read"),
        ReadError(2, "", f"longer than {len(row) - 1} bytes: not read"),
    ]
    # an oversized header: nothing can be read
    assert _csv("reference," * 200 + "\nR1\n", max_line_bytes=100) == [
        ReadError(1, "", "longer than 100 bytes: not read")
    ]


def test_invalid_utf8_is_named_by_line() -> None:
    got = _jsonl(b'{"reference": "R1", "hs_code": "300490"}\n{"reference": "\xff"}\n')
    assert got[1] == ReadError(2, "", "not UTF-8 (byte 16)")


def test_formats_by_file_name(tmp_path: Path) -> None:
    assert D.file_format("a.CSV") == "csv"
    assert D.file_format(tmp_path / "b.jsonl") == "jsonl"
    assert D.file_format("c.ndjson") == "jsonl"
    with pytest.raises(InvalidArgument, match=r"unknown declarations format '\.xlsx'"):
        D.file_format("d.xlsx")
    path = tmp_path / "decl.jsonl"
    path.write_text('{"reference": "R1", "hs_code": "300490"}\n')
    with path.open("rb") as stream:
        assert list(D.read_declarations(stream, D.file_format(path))) == [
            Parsed(1, Declaration("R1", "300490"))
        ]


def test_every_column_is_documented() -> None:
    doc = (Path(__file__).resolve().parents[3] / "docs" / "screening.md").read_text()
    for column in D.COLUMNS:
        assert f"`{column}`" in doc, column
