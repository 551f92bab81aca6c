"""``intelshare treaty draft/sign/show`` through click's runner, as an operator uses them."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import intelshare.cli_treaty  # noqa: F401 - registers the `treaty` group
from intelshare.cli import cli
from intelshare.keys import AgencyKeys
from intelshare.treaty import SignedTreatyDoc, in_force, treaties_from_yaml, verify_signatures
from tests.intelshare.test_treaty import DATA, DictKeys

#: A treaty valid for long enough that "now" is inside its window whenever the tests run.
LONG_TREATY = """\
id: long-running-test-treaty
version: 3
title: A treaty for the command-line tests
parties: [nl-customs, be-police]
valid: {from: 2020-01-01, until: 2099-12-31}
kinds: [alert, hit_report]
categories: [narcotics]
max_handling: {code: H1, tlp: AMBER}
fields:
  alert: [kind, description, subjects.persons.name]
retention_days: 30
purpose: Testing
onward_sharing: forbidden
"""


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, AgencyKeys]:
    out = {}
    for agency in ("nl-customs", "de-customs", "be-police"):
        out[agency] = AgencyKeys.generate()
        out[agency].save(tmp_path / "keys" / agency)
    return out


def lookup(keys: dict[str, AgencyKeys]) -> DictKeys:
    return DictKeys({a: k.signing for a, k in keys.items()})


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- draft ---------------------------------------------------------------------------


def test_draft_writes_an_unsigned_treaty(tmp_path: Path) -> None:
    source = write(tmp_path, "long.yaml", LONG_TREATY)
    result = run("treaty", "draft", source)
    assert result.exit_code == 0, result.output
    out = tmp_path / "long.treaty"
    doc = SignedTreatyDoc.from_bytes(out.read_bytes())
    assert doc.signatures == ()
    assert doc.treaty.id == "long-running-test-treaty"
    assert doc.treaty.version == 3
    assert "Treaty long-running-test-treaty v3" in result.output
    assert "be-police, nl-customs" in result.output
    assert "alert: description, kind, subjects.persons.name" in result.output
    assert "hit_report: (no fields permitted)" in result.output
    assert "intelshare treaty sign" in result.output


def test_draft_from_the_demo_file_needs_an_id(tmp_path: Path) -> None:
    demo = write(tmp_path, "treaties.yaml", DATA.read_text())
    result = run("treaty", "draft", demo)
    assert result.exit_code == 2
    assert "holds 2 treaties" in result.stderr
    assert "choose one with --id" in result.stderr
    assert not (tmp_path / "treaties.treaty").exists()

    result = run("treaty", "draft", demo, "--id", "counterfeit-medicines-taskforce", "--json")
    # default output next to the source, named after the treaty id; --json for scripts
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    written = Path(data["file"])
    assert written == tmp_path / "counterfeit-medicines-taskforce.treaty"
    assert data["unsigned_parties"] == ["be-police", "de-customs", "nl-customs"]
    assert data["treaty"]["max_handling"] == {"code": "H1", "tlp": "AMBER"}
    doc = SignedTreatyDoc.from_bytes(written.read_bytes())
    assert doc.treaty.id == "counterfeit-medicines-taskforce"

    result = run("treaty", "draft", demo, "--id", "no-such-treaty", "--out", tmp_path / "y")
    assert result.exit_code == 2
    assert "no treaty with id 'no-such-treaty'" in result.stderr


def test_draft_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    source = write(tmp_path, "long.yaml", LONG_TREATY)
    out = tmp_path / "long.treaty"
    out.write_bytes(b"signed work of weeks")
    result = run("treaty", "draft", source)
    assert result.exit_code == 2
    assert "exists" in result.stderr
    assert out.read_bytes() == b"signed work of weeks"
    assert run("treaty", "draft", source, "--force").exit_code == 0
    SignedTreatyDoc.from_bytes(out.read_bytes())


@pytest.mark.parametrize(
    ("old", "new", "field", "words"),
    [
        ("until: 2099-12-31", "until: 2019-12-31", "valid.until", "is before valid.from"),
        ("categories:", "categorie:", "categorie", "unknown key"),
        ("code: H1", "code: H7", "max_handling.code", "H0, H1, H2, H3"),
        ("[alert, hit_report]", "[alert, acknowledgement]", "kinds[1]", "control kind"),
        ("parties: [nl-customs, be-police]", "parties: []", "parties", "must not be empty"),
        ("forbidden", "sometimes", "onward_sharing", "forbidden, with_originator_consent"),
    ],
)
def test_bad_yaml_names_the_field(
    tmp_path: Path, old: str, new: str, field: str, words: str
) -> None:
    assert old in LONG_TREATY
    source = write(tmp_path, "bad.yaml", LONG_TREATY.replace(old, new))
    result = run("treaty", "draft", source)
    assert result.exit_code == 2
    assert f"  {field}: " in result.stderr  # one line per problem ...
    assert words in result.stderr
    assert "[INVALID_ARGUMENT]" in result.stderr  # ... and the one-line error
    assert result.stdout == ""
    assert not (tmp_path / "bad.treaty").exists()


def test_unparseable_yaml_and_missing_file(tmp_path: Path) -> None:
    source = write(tmp_path, "broken.yaml", "id: [unclosed\n")
    result = run("treaty", "draft", source)
    assert result.exit_code == 2
    assert "not valid YAML" in result.stderr
    result = run("treaty", "draft", tmp_path / "missing.yaml")
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


# --- sign and show -------------------------------------------------------------------


def test_draft_sign_show_round_trip(tmp_path: Path, keys: dict[str, AgencyKeys]) -> None:
    source = write(tmp_path, "long.yaml", LONG_TREATY)
    assert run("treaty", "draft", source).exit_code == 0
    file = tmp_path / "long.treaty"

    first = run(
        "treaty", "sign", file, "--agency", "nl-customs", "--key-dir", tmp_path / "keys/nl-customs"
    )
    assert first.exit_code == 0, first.output
    kid = keys["nl-customs"].signing_key_id
    assert f"nl-customs signed treaty long-running-test-treaty v3 with key {kid}" in first.output
    assert "still to sign: be-police" in first.output
    doc = SignedTreatyDoc.from_bytes(file.read_bytes())
    assert verify_signatures(doc, lookup(keys)) == {"nl-customs"}
    assert not in_force(doc, lookup(keys), datetime.now(UTC))

    shown = run("treaty", "show", file)
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert any(line.startswith("nl-customs") and " yes " in line for line in lines)
    assert any(line.split() == ["be-police", "no"] for line in lines)
    assert "In force: unknown" in shown.output

    second = run(
        "treaty",
        "sign",
        file,
        "--agency",
        "be-police",
        "--key-dir",
        tmp_path / "keys/be-police",
        "--json",
    )
    assert second.exit_code == 0, second.output
    data = json.loads(second.stdout)
    assert data["signed_by"] == ["be-police", "nl-customs"]
    assert data["unsigned_parties"] == []
    doc = SignedTreatyDoc.from_bytes(file.read_bytes())
    assert verify_signatures(doc, lookup(keys)) == {"nl-customs", "be-police"}
    assert in_force(doc, lookup(keys), datetime.now(UTC))

    # signing again replaces the agency's signature rather than adding one
    again = run(
        "treaty", "sign", file, "--agency", "be-police", "--key-dir", tmp_path / "keys/be-police"
    )
    assert again.exit_code == 0
    doc = SignedTreatyDoc.from_bytes(file.read_bytes())
    assert [s.agency_id for s in doc.signatures] == ["nl-customs", "be-police"]

    shown = run("treaty", "show", file, "--json")
    assert shown.exit_code == 0
    info = json.loads(shown.stdout)
    assert info["signed_by"] == ["be-police", "nl-customs"]
    assert info["in_force"] is None  # not checked without the directory
    assert info["valid_now"] is True
    assert {s["agency_id"]: s["key_id"] for s in info["signatures"]} == {
        "nl-customs": keys["nl-customs"].signing_key_id,
        "be-police": keys["be-police"].signing_key_id,
    }
    assert info["document_sha256"] == data["document_sha256"]


def test_sign_refuses_a_non_party_and_leaves_the_file(
    tmp_path: Path, keys: dict[str, AgencyKeys]
) -> None:
    source = write(tmp_path, "long.yaml", LONG_TREATY)
    assert run("treaty", "draft", source).exit_code == 0
    file = tmp_path / "long.treaty"
    before = file.read_bytes()
    result = run(
        "treaty", "sign", file, "--agency", "de-customs", "--key-dir", tmp_path / "keys/de-customs"
    )
    assert result.exit_code == 2
    assert "de-customs is not a party" in result.stderr
    assert "[NOT_A_PARTY]" in result.stderr
    assert file.read_bytes() == before


def test_sign_refuses_a_bad_key_file(tmp_path: Path, keys: dict[str, AgencyKeys]) -> None:
    source = write(tmp_path, "long.yaml", LONG_TREATY)
    assert run("treaty", "draft", source).exit_code == 0
    file = tmp_path / "long.treaty"
    before = file.read_bytes()
    key_file = tmp_path / "keys/nl-customs/signing.key"
    os.chmod(key_file, 0o644)
    result = run("treaty", "sign", file, "--agency", "nl-customs", "--key-dir", key_file.parent)
    assert result.exit_code == 2
    assert "[KEY_FILE_INVALID]" in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run("treaty", "sign", file, "--agency", "nl-customs", "--key-dir", empty)
    assert result.exit_code == 2
    assert "does not exist" in result.stderr
    assert file.read_bytes() == before


def test_show_refuses_a_file_that_is_not_a_treaty(tmp_path: Path) -> None:
    junk = tmp_path / "junk.treaty"
    junk.write_bytes(b"\xff\xff\xff\xff")
    result = run("treaty", "show", junk)
    assert result.exit_code == 2
    assert "junk.treaty" in result.stderr
    assert "[MALFORMED]" in result.stderr


def test_show_needs_directory_and_anchor_together(tmp_path: Path) -> None:
    source = write(tmp_path, "long.yaml", LONG_TREATY)
    assert run("treaty", "draft", source).exit_code == 0
    result = run("treaty", "show", tmp_path / "long.treaty", "--directory", source)
    assert result.exit_code == 2
    assert "--directory and --anchor go together" in result.stderr


# --- show against the federation directory ----------------------------------------------


def test_show_verifies_against_the_directory(tmp_path: Path) -> None:
    federation = pytest.importorskip("intelshare.federation")
    now = datetime.now(UTC)
    fed = federation.init(tmp_path / "fed", "demo-federation", now=now - timedelta(days=1))
    for agency, country, kind in (("nl-customs", "NL", "customs"), ("be-police", "BE", "police")):
        fed.enrol(
            agency,
            display_name=agency,
            country=country,
            kind=kind,
            out_dir=tmp_path / "agencies" / agency,
            now=now - timedelta(hours=1),
        )
    fed.publish_directory(timedelta(days=1), now=now - timedelta(minutes=1))
    directory, anchor = fed.directory_file, fed.anchor_file

    source = write(tmp_path, "long.yaml", LONG_TREATY)
    assert run("treaty", "draft", source).exit_code == 0
    file = tmp_path / "long.treaty"
    nl_keys = tmp_path / "agencies/nl-customs"
    assert (
        run("treaty", "sign", file, "--agency", "nl-customs", "--key-dir", nl_keys).exit_code == 0
    )

    partly = run("treaty", "show", file, "--directory", directory, "--anchor", anchor, "--json")
    assert partly.exit_code == 0, partly.output
    info = json.loads(partly.stdout)
    assert info["verified_by"] == ["nl-customs"]
    assert info["in_force"] is False
    assert info["signatures"][0]["verified"] is True

    be_keys = tmp_path / "agencies/be-police"
    assert run("treaty", "sign", file, "--agency", "be-police", "--key-dir", be_keys).exit_code == 0
    shown = run("treaty", "show", file, "--directory", directory, "--anchor", anchor)
    assert shown.exit_code == 0, shown.output
    assert "verifies" in shown.output
    assert "In force now: yes" in shown.output
    rows = [line.split() for line in shown.output.splitlines()]
    assert rows[[r[:1] for r in rows].index(["be-police"])][:2] == ["be-police", "yes"]
    assert all(r[-1] == "yes" for r in rows if r[:1] in (["be-police"], ["nl-customs"]))

    # a key the directory does not vouch for: a signature made with another key
    stranger = AgencyKeys.generate()
    stranger.save(tmp_path / "stranger")
    assert (
        run(
            "treaty", "sign", file, "--agency", "be-police", "--key-dir", tmp_path / "stranger"
        ).exit_code
        == 0
    )
    shown = run("treaty", "show", file, "--directory", directory, "--anchor", anchor, "--json")
    info = json.loads(shown.stdout)
    assert info["verified_by"] == ["nl-customs"]
    assert info["in_force"] is False

    # a directory signed by another federation's root is refused outright
    other = federation.init(tmp_path / "other", "demo-federation")
    result = run("treaty", "show", file, "--directory", directory, "--anchor", other.anchor_file)
    assert result.exit_code == 2
    assert "[DIRECTORY_INVALID]" in result.stderr


# --- example -------------------------------------------------------------------------


def test_example_is_a_treaty_valid_from_today_that_draft_accepts(tmp_path: Path) -> None:
    result = run("treaty", "example")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# A treaty in the format")
    (treaty,) = treaties_from_yaml(result.stdout)
    today = datetime.now(UTC).date()
    assert treaty.id == "customs-demo"
    assert treaty.parties == ("de-customs", "nl-customs")
    assert treaty.valid_from == today
    assert treaty.valid_until == today + timedelta(days=364)
    assert set(treaty.kinds) == {"alert", "alert_update", "hit_report"}
    assert "subjects.containers" in treaty.fields["alert"]

    source = write(tmp_path, "treaty.yaml", result.stdout)
    drafted = run("treaty", "draft", source, "--out", tmp_path / "t.treaty")
    assert drafted.exit_code == 0, drafted.output
    assert SignedTreatyDoc.from_bytes((tmp_path / "t.treaty").read_bytes()).treaty == treaty


def test_example_takes_parties_id_and_length() -> None:
    result = run(
        "treaty",
        "example",
        "--id",
        "nl-be",
        "--party",
        "nl-customs",
        "--party",
        "be-police",
        "--days",
        "30",
    )
    assert result.exit_code == 0, result.output
    (treaty,) = treaties_from_yaml(result.stdout)
    assert (treaty.id, treaty.parties) == ("nl-be", ("be-police", "nl-customs"))
    assert (treaty.valid_until - treaty.valid_from).days == 29
    bad = run("treaty", "example", "--id", "Not An Id")
    assert bad.exit_code == 2
    assert "id: 'Not An Id' is not an id" in bad.stderr


def test_show_says_updates_carry_the_alert_fields(tmp_path: Path) -> None:
    """An alert update is filtered by the alert's fields; it has no list of its own."""
    source = write(tmp_path, "treaty.yaml", run("treaty", "example").stdout)
    assert run("treaty", "draft", source).exit_code == 0
    shown = run("treaty", "show", tmp_path / "treaty.treaty")
    assert shown.exit_code == 0, shown.output
    assert "alert_update: the alert fields (an update carries the alert again)" in shown.output
    assert "(no fields permitted)" not in shown.output
