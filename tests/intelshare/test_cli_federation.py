"""``intelshare federation`` / ``intelshare directory`` end to end with CliRunner."""

from __future__ import annotations

import json
import stat
from datetime import UTC, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import intelshare.cli_federation  # noqa: F401  (registers the groups on the root)
from intelshare.cli import cli
from intelshare.cli_federation import Duration
from intelshare.directory import Anchor, verify_directory
from intelshare.v1 import directory_pb2


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunnerCall:
    monkeypatch.setenv("INTELSHARE_FEDERATION_DIR", str(tmp_path / "fed"))
    monkeypatch.chdir(tmp_path)
    return CliRunnerCall()


class CliRunnerCall:
    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str, code: int = 0, stdin: str | None = None) -> Result:
        result = self.runner.invoke(cli, list(args), input=stdin)
        assert result.exit_code == code, (args, result.output, result.exception)
        return result

    def json(self, *args: str) -> object:
        return json.loads(self(*args, "--json").stdout)


def _setup(run: CliRunnerCall) -> None:
    run("federation", "init", "--federation-id", "demo-federation")
    run(
        "federation",
        "enrol",
        "nl-customs",
        "--name",
        "Netherlands Customs",
        "--country",
        "NL",
        "--kind",
        "customs",
        "--out",
        "nl",
    )
    run("federation", "request", "be-police", "--keys", "be", "--out", "be.req")
    run(
        "federation",
        "enrol",
        "be-police",
        "--name",
        "Belgian Federal Police",
        "--country",
        "BE",
        "--kind",
        "police",
        "--request",
        "be.req",
        stdin="y\n",  # the operator confirms the fingerprint the agency read out
    )


def test_round_trip(run: CliRunnerCall, tmp_path: Path) -> None:
    init = run.json("federation", "init", "--federation-id", "demo-federation")
    assert isinstance(init, dict)
    assert init["federation_id"] == "demo-federation"
    fed = tmp_path / "fed"
    assert stat.S_IMODE((fed / "root.key").stat().st_mode) == 0o600
    enrolled = run.json(
        "federation",
        "enrol",
        "nl-customs",
        "--name",
        "Netherlands Customs",
        "--country",
        "NL",
        "--kind",
        "customs",
        "--out",
        "nl",
    )
    assert isinstance(enrolled, dict)
    assert (tmp_path / "nl" / "tls.crt").is_file()
    req = run.json("federation", "request", "be-police", "--keys", "be")
    assert isinstance(req, dict)
    assert req["keys_generated"] is True
    out = run(
        "federation",
        "enrol",
        "be-police",
        "--name",
        "Belgian Federal Police",
        "--country",
        "BE",
        "--kind",
        "police",
        "--request",
        req["request"],
        "--fingerprint",
        req["fingerprint"],
    ).stdout
    assert "enrolled be-police" in out
    assert req["signing_key_id"] in out
    issued = fed / "issued" / "be-police"
    assert (issued / "tls.crt").is_file()
    assert Anchor.load(issued / "anchor.json").federation_id == "demo-federation"

    published = run.json("directory", "publish", "--expires-in", "7d")
    assert isinstance(published, dict)
    assert published["version"] == 1
    assert published["agencies"] == 2

    table = run("directory", "show").stdout
    assert "version 1" in table
    assert "signature OK" in table
    for word in ("nl-customs", "Belgian Federal Police", "BE", "police", "active"):
        assert word in table
    assert enrolled["signing_key_id"][:16] in table

    shown = run.json(
        "directory",
        "show",
        "--file",
        str(fed / "directory.pb"),
        "--anchor",
        str(fed / "anchor.json"),
    )
    assert isinstance(shown, dict)
    assert [a["agency_id"] for a in shown["agencies"]] == ["be-police", "nl-customs"]
    assert shown["agencies"][1]["signing_key"]["key_id"] == enrolled["signing_key_id"]


def test_status_changes_and_rotation(run: CliRunnerCall, tmp_path: Path) -> None:
    _setup(run)
    assert "active -> suspended" in run("federation", "suspend", "be-police").stdout
    run("federation", "reactivate", "be-police")
    run("federation", "revoke", "be-police", stdin="n\n", code=1)  # asks, and "no" aborts
    run("federation", "revoke", "be-police", "--yes")
    err = run("federation", "reactivate", "be-police", code=2).stderr
    assert "revocation is final" in err
    run("federation", "rotate", "nl-customs", "--out", "nl2")
    run("federation", "request", "nl-customs", "--keys", "nl3", "--out", "nl3.req")
    run("federation", "rotate", "nl-customs", "--request", "nl3.req", code=1)  # not confirmed
    run("federation", "rotate", "nl-customs", "--request", "nl3.req", stdin="y\n")
    run("directory", "publish")
    shown = run.json("directory", "show")
    assert isinstance(shown, dict)
    by_id = {a["agency_id"]: a for a in shown["agencies"]}
    assert by_id["be-police"]["status"] == "revoked"
    assert len(by_id["nl-customs"]["previous_keys"]) == 4  # two rotations, two keys each
    listed = run("federation", "list").stdout
    assert "revoked" in listed
    assert "last published version 1" in listed


def _enrol_request(
    run: CliRunnerCall, *extra: str, code: int = 0, stdin: str | None = None
) -> Result:
    return run(
        "federation",
        "enrol",
        "be-police",
        "--name",
        "Belgian Federal Police",
        "--country",
        "BE",
        "--kind",
        "police",
        "--request",
        "be.req",
        *extra,
        code=code,
        stdin=stdin,
    )


def _enrolled(run: CliRunnerCall) -> set[str]:
    listed = run.json("federation", "list")
    assert isinstance(listed, dict)
    return set(listed["agencies"])


def test_enrolment_shows_the_requests_fingerprint_and_asks(run: CliRunnerCall) -> None:
    """The operator sees the fingerprint the agency saw and must say it is the same."""
    run("federation", "init")
    made = run("federation", "request", "be-police", "--keys", "be", "--out", "be.req").stdout
    (fingerprint,) = [
        line.split(None, 1)[1] for line in made.splitlines() if line.startswith("fingerprint")
    ]
    assert len(fingerprint.replace(" ", "")) == 32

    # "no", or no answer at all, enrols nothing
    for answer in ("n\n", ""):
        refused = _enrol_request(run, code=1, stdin=answer)
        assert f"fingerprint  {fingerprint}" in refused.stderr
        assert "Is this the fingerprint the agency read to you?" in refused.stderr
        assert "be-police was not enrolled" in refused.stderr
        assert "--fingerprint" in refused.stderr
        assert _enrolled(run) == set()

    done = _enrol_request(run, stdin="y\n")
    assert f"fingerprint  {fingerprint}" in done.stderr
    assert "enrolled be-police" in done.stdout
    assert _enrolled(run) == {"be-police"}


def test_enrolment_compares_a_given_fingerprint(run: CliRunnerCall) -> None:
    run("federation", "init")
    req = run.json("federation", "request", "be-police", "--keys", "be", "--out", "be.req")
    assert isinstance(req, dict)
    good = req["fingerprint"]
    wrong = ("0000" + good.replace(" ", "")[4:])[:32]

    err = _enrol_request(run, "--fingerprint", wrong, code=2).stderr
    assert f"the request's fingerprint is {good}" in err
    assert "be-police was not enrolled" in err
    assert "[INVALID_ARGUMENT]" in err
    assert _enrolled(run) == set()

    # Read over the phone, it may come back grouped differently or in capitals;
    # no question is asked when it was given.
    spoken = "-".join(good.upper().split())
    enrolled = run.json(
        "federation",
        "enrol",
        "be-police",
        "--name",
        "Belgian Federal Police",
        "--country",
        "BE",
        "--kind",
        "police",
        "--request",
        "be.req",
        "--fingerprint",
        spoken,
    )
    assert isinstance(enrolled, dict)
    assert enrolled["signing_key_id"] == req["signing_key_id"]
    assert _enrolled(run) == {"be-police"}


def test_a_request_for_another_agency_is_refused_before_asking(run: CliRunnerCall) -> None:
    run("federation", "init")
    run("federation", "request", "nl-customs", "--keys", "nl", "--out", "be.req")
    err = _enrol_request(run, stdin="y\n", code=2).stderr
    assert "the request is for 'nl-customs', not for 'be-police'" in err
    assert "fingerprint" not in err
    err = run(
        "federation",
        "enrol",
        "de-customs",
        "--name",
        "German Customs",
        "--country",
        "DE",
        "--kind",
        "customs",
        "--out",
        "de",
        "--fingerprint",
        "abcd",
        code=2,
    ).stderr
    assert "--fingerprint is for an enrolment request" in err
    assert _enrolled(run) == set()


def test_server_certificate(run: CliRunnerCall, tmp_path: Path) -> None:
    _setup(run)
    data = run.json("federation", "server-cert", "--out", "gw", "--host", "localhost")
    assert isinstance(data, dict)
    assert data["hosts"] == ["localhost"]
    assert stat.S_IMODE((tmp_path / "gw" / "tls.key").stat().st_mode) == 0o600
    err = run("federation", "server-cert", "gw2", "--out", "gw2", "--host", "nl-customs", code=2)
    assert "agency id" in err.stderr


def test_bad_directories_exit_2_with_a_reason(run: CliRunnerCall, tmp_path: Path) -> None:
    _setup(run)
    run("directory", "publish", "--expires-in", "1d")
    fed = tmp_path / "fed"
    good = (fed / "directory.pb").read_bytes()

    signed = directory_pb2.SignedDirectory.FromString(good)
    flipped = bytearray(signed.directory_bytes)
    flipped[5] ^= 1
    (tmp_path / "flipped.pb").write_bytes(
        directory_pb2.SignedDirectory(
            directory_bytes=bytes(flipped), signature=signed.signature
        ).SerializeToString()
    )
    err = run("directory", "show", "--file", "flipped.pb", code=2).stderr
    assert "must not be used" in err
    assert "altered or signed by another federation" in err

    unsigned = directory_pb2.SignedDirectory(directory_bytes=signed.directory_bytes)
    (tmp_path / "unsigned.pb").write_bytes(unsigned.SerializeToString())
    assert "not signed" in run("directory", "show", "--file", "unsigned.pb", code=2).stderr

    (tmp_path / "junk.pb").write_bytes(b"xx")
    assert "DIRECTORY_INVALID" in run("directory", "show", "--file", "junk.pb", code=2).stderr

    run("directory", "publish")
    err = run("directory", "show", "--min-version", "3", code=2).stderr
    assert "downgrade" in err

    other = tmp_path / "other"
    run("federation", "init", "--dir", str(other), "--federation-id", "other-federation")
    err = run("directory", "show", "--anchor", str(other / "anchor.json"), code=2).stderr
    assert "another federation" in err

    err = run("directory", "show", "--file", "missing.pb", code=2).stderr
    assert "directory publish" in err

    # The original file is still good: the refusals above were about the copies.
    issued = directory_pb2.Directory.FromString(signed.directory_bytes).issue_time
    trusted = verify_directory(
        good, Anchor.load(fed / "anchor.json"), now=issued.ToDatetime(tzinfo=UTC)
    )
    assert trusted.version == 1


def test_operator_errors_exit_2(run: CliRunnerCall) -> None:
    err = run(
        "federation",
        "enrol",
        "nl-customs",
        "--name",
        "x",
        "--country",
        "NL",
        "--kind",
        "customs",
        "--out",
        "nl",
        code=2,
    ).stderr
    assert "federation init" in err
    run("federation", "init")
    assert "refusing to overwrite" in run("federation", "init", code=2).stderr
    run(
        "federation",
        "enrol",
        "nl-customs",
        "--name",
        "x",
        "--country",
        "NL",
        "--kind",
        "army",
        "--out",
        "nl",
        code=2,
    )
    err = run(
        "federation",
        "enrol",
        "nl-customs",
        "--name",
        "x",
        "--country",
        "NL",
        "--kind",
        "customs",
        code=2,
    ).stderr
    assert "exactly one" in err
    err = run(
        "federation",
        "enrol",
        "nl-customs",
        "--name",
        "x",
        "--country",
        "NL",
        "--kind",
        "customs",
        "--request",
        "nope.json",
        code=2,
    ).stderr
    assert "cannot read enrolment request" in err
    assert "not enrolled" in run("federation", "suspend", "xx-none", code=2).stderr
    run("directory", "publish", "--expires-in", "soon", code=2)
    assert "366 days" in run("directory", "publish", "--expires-in", "400d", code=2).stderr


def test_duration_parsing() -> None:
    d = Duration()
    assert d.convert("30d", None, None) == timedelta(days=30)
    assert d.convert("12h", None, None) == timedelta(hours=12)
    assert d.convert("2w", None, None) == timedelta(weeks=2)
    assert d.convert(timedelta(minutes=3), None, None) == timedelta(minutes=3)
