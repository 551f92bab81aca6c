"""``intelshare receipt verify`` on receipts from a real gateway (SQLite and PostgreSQL).

A receipt is only worth something if every part of it is checked: these
tests take genuine receipts from a running gateway and show that each kind of
forgery (another leaf, a bent proof, a bad or foreign signature, a genuine
proof of another entry, the wrong envelope, the wrong trust root) is refused
with exit status 2 and a reason a person can act on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from intelshare.audit.heads import head_signing_input
from intelshare.cli import _load_plugins, cli
from intelshare.cli_receipt import read_receipt, write_receipt
from intelshare.v1 import envelope_pb2, receipt_pb2

# The gateway fixtures (a federation on disk and a gateway per test, on each database).
from tests.gateway.conftest import GatewayEnv, gw, local_fed, make_gateway  # noqa: F401

_load_plugins()


@dataclass
class Accepted:
    gw: GatewayEnv
    dir: Path
    receipts: list[receipt_pb2.Receipt]
    envelopes: list[envelope_pb2.Envelope]

    def write(self, name: str, receipt: receipt_pb2.Receipt) -> Path:
        path = self.dir / name
        write_receipt(path, receipt)
        return path

    def envelope_file(self, i: int) -> Path:
        path = self.dir / f"envelope{i}.pb"
        path.write_bytes(self.envelopes[i].SerializeToString())
        return path

    def verify(self, receipt_file: Path, *extra: str | Path) -> Result:
        return CliRunner().invoke(
            cli,
            [
                "receipt",
                "verify",
                str(receipt_file),
                "--directory",
                str(self.gw.fed.directory_file),
                "--anchor",
                str(self.gw.fed.anchor_file),
                *(str(e) for e in extra),
            ],
        )


@pytest.fixture
def accepted(gw: GatewayEnv, tmp_path: Path) -> Accepted:  # noqa: F811
    envs = [
        gw.seal("nl-customs", ["be-police", "de-customs"], payload=b"first"),
        gw.seal("nl-customs", ["be-police"], payload=b"second"),
        gw.seal("nl-customs", ["de-customs"], payload=b"third"),
    ]
    with gw.client("nl-customs") as nl:
        receipts = [nl.submit(e).receipt for e in envs]
    out = tmp_path / "evidence"
    out.mkdir()
    return Accepted(gw, out, receipts, envs)


def copy(receipt: receipt_pb2.Receipt) -> receipt_pb2.Receipt:
    other = receipt_pb2.Receipt()
    other.CopyFrom(receipt)
    return other


def refused(result: Result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    for needle in needles:
        assert needle in result.output, result.output


# --- genuine receipts ---------------------------------------------------------------


def test_genuine_receipt_verifies_with_its_envelope(accepted: Accepted) -> None:
    for i, receipt in enumerate(accepted.receipts):
        path = accepted.write(f"r{i}.receipt", receipt)
        result = accepted.verify(path, "--envelope", accepted.envelope_file(i))
        assert result.exit_code == 0, result.output
        assert "receipt OK" in result.output
        assert receipt.message_id in result.output
        assert receipt.envelope_sha256.hex() in result.output
        assert "matches the receipt" in result.output
        assert "nl-customs" in result.output


def test_json_output_and_without_envelope(accepted: Accepted) -> None:
    receipt = accepted.receipts[0]
    result = accepted.verify(accepted.write("r.receipt", receipt), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["verified"] is True
    assert data["message_id"] == receipt.message_id
    assert data["log_index"] == receipt.log_index
    assert data["tree_size"] == receipt.tree_head.tree_size
    assert data["recipients"] == ["be-police", "de-customs"]
    assert data["treaty"] == "counterfeit-medicines-taskforce@1"
    assert data["envelope_checked"] is False


def test_receipt_file_round_trips(accepted: Accepted) -> None:
    path = accepted.write("r.receipt", accepted.receipts[1])
    assert read_receipt(path.read_bytes()) == accepted.receipts[1]


# --- forgeries ----------------------------------------------------------------------


def test_tampered_leaf_refused(accepted: Accepted) -> None:
    forged = copy(accepted.receipts[0])
    forged.leaf = forged.leaf.replace(b"be-police", b"fr-customs")
    result = accepted.verify(accepted.write("r.receipt", forged))
    refused(result, "inclusion proof does not verify", "AUDIT_LOG_INVALID")


def test_genuine_proof_of_another_message_refused(accepted: Accepted) -> None:
    # Everything from receipt 1 (verifies on its own), claiming receipt 0's message.
    forged = copy(accepted.receipts[1])
    forged.message_id = accepted.receipts[0].message_id
    forged.envelope_sha256 = accepted.receipts[0].envelope_sha256
    result = accepted.verify(accepted.write("r.receipt", forged))
    refused(result, "the audit leaf names message")


def test_genuine_proof_of_a_non_acceptance_entry_refused(accepted: Accepted) -> None:
    # A real, signed inclusion proof, but of the treaty publication at index 0.
    audit = accepted.gw.running.state.audit
    head = audit.sign_head()
    forged = copy(accepted.receipts[0])
    forged.log_index = 0
    forged.leaf = audit.leaf(0)
    forged.tree_head.CopyFrom(head)
    del forged.inclusion_proof[:]
    forged.inclusion_proof.extend(audit.inclusion_proof(0, head.tree_size))
    result = accepted.verify(accepted.write("r.receipt", forged))
    refused(result, "'treaty_published' entry, not 'accepted'")


def test_tampered_proof_refused(accepted: Accepted) -> None:
    receipt = accepted.receipts[1]
    assert len(receipt.inclusion_proof) >= 1
    flipped = copy(receipt)
    first = bytearray(flipped.inclusion_proof[0])
    first[0] ^= 1
    flipped.inclusion_proof[0] = bytes(first)
    refused(accepted.verify(accepted.write("a.receipt", flipped)), "inclusion proof")
    short = copy(receipt)
    del short.inclusion_proof[-1]
    refused(accepted.verify(accepted.write("b.receipt", short)), "inclusion proof")
    moved = copy(receipt)
    moved.log_index -= 1
    refused(accepted.verify(accepted.write("c.receipt", moved)), "inclusion proof")
    beyond = copy(receipt)
    beyond.log_index = beyond.tree_head.tree_size
    refused(accepted.verify(accepted.write("d.receipt", beyond)), "outside the signed tree")


def test_tampered_signature_or_head_refused(accepted: Accepted) -> None:
    bad_sig = copy(accepted.receipts[0])
    sig = bytearray(bad_sig.tree_head.signature)
    sig[10] ^= 0x40
    bad_sig.tree_head.signature = bytes(sig)
    refused(accepted.verify(accepted.write("a.receipt", bad_sig)), "does not verify")
    # A root and size chosen to fit a forged proof no longer match the signature.
    bad_root = copy(accepted.receipts[0])
    bad_root.tree_head.root_hash = bytes(32)
    refused(accepted.verify(accepted.write("b.receipt", bad_root)), "does not verify")


def test_head_signed_by_another_member_refused(accepted: Accepted) -> None:
    """An agency cannot issue receipts in the gateway's name with its own key."""
    keys = accepted.gw.fed.agencies["nl-customs"].keys
    forged = copy(accepted.receipts[0])
    head = forged.tree_head
    head.key_id = keys.signing_key_id
    head.signature = keys.signing.sign(
        head_signing_input(head.log_id, head.tree_size, head.root_hash, head.timestamp)
    )
    refused(
        accepted.verify(accepted.write("r.receipt", forged)),
        f"gateway key {keys.signing_key_id!r} is not valid for 'gateway'",
    )
    # Naming the agency as the gateway does not help: the head is of the gateway's log.
    result = accepted.verify(accepted.write("r.receipt", forged), "--gateway-id", "nl-customs")
    refused(result, "the tree head is of log 'gateway', not of the gateway 'nl-customs'")


def test_wrong_envelope_refused(accepted: Accepted) -> None:
    path = accepted.write("r.receipt", accepted.receipts[0])
    result = accepted.verify(path, "--envelope", accepted.envelope_file(1))
    refused(result, "ENVELOPE_INVALID", "SHA-256")
    result = accepted.verify(path, "--envelope", accepted.envelope_file(1), "--json")
    assert result.exit_code == 2
    data = json.loads(result.output)
    assert data == {"verified": False, "reason": "ENVELOPE_INVALID", "error": data["error"]}


def test_not_a_receipt_refused(accepted: Accepted) -> None:
    garbage = accepted.dir / "garbage.receipt"
    garbage.write_bytes(b"\xff\xff\xff not protobuf")
    refused(accepted.verify(garbage), "not a receipt", "MALFORMED")
    empty = accepted.dir / "empty.receipt"
    empty.write_bytes(b"")
    refused(accepted.verify(empty), "missing or malformed message_id")


def test_directory_of_another_federation_refused(accepted: Accepted, tmp_path: Path) -> None:
    from intelshare import devfed
    from tests.gateway.conftest import AGENCIES

    other = devfed.build(tmp_path / "other", AGENCIES[:1], federation_id="other-fed")
    path = accepted.write("r.receipt", accepted.receipts[0])
    result = CliRunner().invoke(
        cli,
        [
            "receipt",
            "verify",
            str(path),
            "--directory",
            str(accepted.gw.fed.directory_file),
            "--anchor",
            str(other.anchor_file),
        ],
    )
    refused(result, "DIRECTORY_INVALID")
    # The other federation's own gateway key does not sign this gateway's receipts.
    result = CliRunner().invoke(
        cli,
        [
            "receipt",
            "verify",
            str(path),
            "--directory",
            str(other.directory_file),
            "--anchor",
            str(other.anchor_file),
        ],
    )
    refused(result, "is not valid for 'gateway'")


def test_receipt_is_checked_at_its_signing_time(accepted: Accepted) -> None:
    """The key lookup uses the head's timestamp: a head dated before the
    gateway's key existed is refused even though the signature is genuine."""
    from google.protobuf.timestamp_pb2 import Timestamp

    gwkeys = accepted.gw.fed.gateway_identity.keys
    forged = copy(accepted.receipts[0])
    head = forged.tree_head
    head.timestamp.CopyFrom(Timestamp(seconds=int(datetime(2001, 1, 1, tzinfo=UTC).timestamp())))
    head.signature = gwkeys.signing.sign(
        head_signing_input(head.log_id, head.tree_size, head.root_hash, head.timestamp)
    )
    refused(accepted.verify(accepted.write("r.receipt", forged)), "not valid for 'gateway'")
