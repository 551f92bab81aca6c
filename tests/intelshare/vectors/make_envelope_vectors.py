"""Write envelope_v1.json, the known-answer vectors of the envelope format.

Run by hand, never by the tests: ``.venv/bin/python
tests/intelshare/vectors/make_envelope_vectors.py``. The tests read the
committed file and must keep opening every vector and reproducing every
recorded value; regenerate only when the format changes on purpose (and
then bump the header version).

Agency keys, message ids and times are derived from fixed seeds, so the
header bytes, header digests and key ids come out the same on every run.
The content key, the AES-GCM nonce and the HPKE ephemeral key are random by
design (the HPKE API offers no way to fix the ephemeral key), so envelope
bytes, digests over them and signatures change each time the file is
regenerated; within one file they are all consistent, which is what the
tests check.
"""

from __future__ import annotations

import hashlib
import json
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from intelshare.envelope import HeaderFields, lookup_recipient_keys, seal  # noqa: E402
from intelshare.hazmat import envelope_primitives as prim  # noqa: E402
from intelshare.ids import key_id  # noqa: E402
from intelshare.keys import raw_public  # noqa: E402
from intelshare.v1 import envelope_pb2  # noqa: E402

OUT = Path(__file__).with_name("envelope_v1.json")
SEED = b"intelshare envelope vectors v1"
NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
AGENCIES = ["fr-douane", "de-zoll", "nl-fiod", "it-gdf", "es-aduanas"]


def _seed(*parts: str) -> bytes:
    return hashlib.sha256(SEED + b"|" + "|".join(parts).encode()).digest()


def _message_id(name: str, at: datetime) -> str:
    ms = int(at.timestamp() * 1000)
    rand = int.from_bytes(_seed("message-id", name)[:10], "big")
    value = (ms << 80) | (0x7 << 76) | (((rand >> 62) & 0xFFF) << 64) | (0x2 << 62)
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


class _Directory:
    def __init__(self) -> None:
        self.signing = {
            a: ed25519.Ed25519PrivateKey.from_private_bytes(_seed(a, "signing")) for a in AGENCIES
        }
        self.encryption = {
            a: x25519.X25519PrivateKey.from_private_bytes(_seed(a, "encryption")) for a in AGENCIES
        }

    def signing_key_id(self, agency: str) -> str:
        return key_id(raw_public(self.signing[agency].public_key()))

    def signing_key(self, agency_id: str, key_id_: str, at: datetime) -> ed25519.Ed25519PublicKey:
        return self.signing[agency_id].public_key()

    def encryption_key(self, agency_id: str) -> tuple[str, x25519.X25519PublicKey]:
        public = self.encryption[agency_id].public_key()
        return key_id(raw_public(public)), public


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _fields_json(fields: HeaderFields) -> dict[str, Any]:
    return {
        "sender": fields.sender,
        "recipients": list(fields.recipients),
        "treaty_id": fields.treaty_id,
        "treaty_version": fields.treaty_version,
        "kind": envelope_pb2.MessageKind.Name(fields.kind),
        "handling": envelope_pb2.HandlingCode.Name(fields.handling),
        "tlp": envelope_pb2.Tlp.Name(fields.tlp),
        "categories": list(fields.categories),
        "expire_time": _iso(fields.expire_time),
        "reference_id": fields.reference_id,
        "case_id": fields.case_id,
        "message_id": fields.message_id,
        "create_time": _iso(fields.create_time),
    }


def _vector(
    directory: _Directory, name: str, comment: str, fields: HeaderFields, payload: bytes
) -> dict[str, Any]:
    env = seal(
        fields,
        payload,
        signing_key=directory.signing[fields.sender],
        signing_key_id=directory.signing_key_id(fields.sender),
        recipient_keys=lookup_recipient_keys(directory, fields.recipients),
    )
    data = env.SerializeToString()
    digest = prim.header_digest(env.header_bytes)
    first = env.key_blocks[0]
    content_key = prim.hpke_unwrap(
        first.wrapped_key,
        directory.encryption[first.agency_id],
        header_digest_value=digest,
        recipient=first.agency_id,
    )
    blocks = [prim.KeyBlockParts(b.agency_id, b.key_id, b.wrapped_key) for b in env.key_blocks]
    return {
        "name": name,
        "comment": comment,
        "now": _iso(NOW),
        "fields": _fields_json(fields),
        "payload": payload.hex(),
        "content_key": content_key.hex(),
        "content_key_commitment": prim.key_commitment(content_key).hex(),
        "header_bytes": env.header_bytes.hex(),
        "header_digest": digest.hex(),
        "key_blocks": [
            {
                "agency_id": b.agency_id,
                "key_id": b.key_id,
                "wrapped_key": b.wrapped_key.hex(),
                "hpke_info": prim.wrap_info(digest, b.agency_id).hex(),
            }
            for b in env.key_blocks
        ],
        "ciphertext": env.ciphertext.hex(),
        "envelope_digest": prim.envelope_digest(env.header_bytes, blocks, env.ciphertext).hex(),
        "signing_key_id": env.signing_key_id,
        "signature": env.signature.hex(),
        "envelope": data.hex(),
        "envelope_sha256": hashlib.sha256(data).hexdigest(),
    }


def _resigned(directory: _Directory, env: envelope_pb2.Envelope) -> envelope_pb2.Envelope:
    blocks = [prim.KeyBlockParts(b.agency_id, b.key_id, b.wrapped_key) for b in env.key_blocks]
    header = envelope_pb2.Header.FromString(env.header_bytes)
    env.signature = prim.sign_digest(
        directory.signing[header.sender],
        prim.envelope_digest(env.header_bytes, blocks, env.ciphertext),
    )
    return env


def _invalid_vectors(directory: _Directory, valid: dict[str, Any]) -> list[dict[str, Any]]:
    """Envelopes a correct implementation must refuse, each for one named reason."""
    base = envelope_pb2.Envelope.FromString(bytes.fromhex(valid["envelope"]))
    reader = valid["key_blocks"][0]["agency_id"]
    out: list[dict[str, Any]] = []

    flipped = envelope_pb2.Envelope()
    flipped.CopyFrom(base)
    flipped.header_bytes = base.header_bytes[:-1] + bytes([base.header_bytes[-1] ^ 1])
    out.append(
        {
            "name": "header-bit-flipped",
            "reader": reader,
            "audit_detail_contains": "signature does not verify",
            "envelope": flipped.SerializeToString().hex(),
        }
    )

    resealed = envelope_pb2.Envelope()
    resealed.CopyFrom(base)
    resealed.ciphertext = base.ciphertext[:-1] + bytes([base.ciphertext[-1] ^ 1])
    out.append(
        {
            "name": "ciphertext-changed-and-re-signed-by-sender",
            "reader": reader,
            "audit_detail_contains": "does not decrypt",
            "envelope": _resigned(directory, resealed).SerializeToString().hex(),
        }
    )

    split = envelope_pb2.Envelope()
    split.CopyFrom(base)
    header = envelope_pb2.Header.FromString(base.header_bytes)
    other_key = prim.new_content_key()
    block = split.key_blocks[0]
    block.wrapped_key = prim.hpke_wrap(
        other_key,
        directory.encryption[block.agency_id].public_key(),
        header_digest_value=prim.header_digest(split.header_bytes),
        recipient=block.agency_id,
    )
    assert header.content_key_commitment != prim.key_commitment(other_key)
    out.append(
        {
            "name": "key-block-wraps-an-uncommitted-key",
            "reader": reader,
            "audit_detail_contains": "key commitment",
            "envelope": _resigned(directory, split).SerializeToString().hex(),
        }
    )

    outsider = next(a for a in AGENCIES if a not in valid["fields"]["recipients"])
    out.append(
        {
            "name": "reader-not-among-recipients",
            "reader": outsider,
            "audit_detail_contains": "not among the recipients",
            "envelope": valid["envelope"],
        }
    )
    return out


def build() -> dict[str, Any]:
    directory = _Directory()
    t0 = datetime(2025, 6, 1, 10, 0, 0, 123456, tzinfo=UTC)
    cases = [
        (
            "alert-one-recipient",
            "An alert to one partner with every optional header field set.",
            HeaderFields(
                sender="fr-douane",
                recipients=("de-zoll",),
                treaty_id="treaty-customs-fr-de",
                treaty_version=2,
                kind=envelope_pb2.MESSAGE_KIND_ALERT,
                handling=envelope_pb2.HANDLING_CODE_H2,
                tlp=envelope_pb2.TLP_AMBER_STRICT,
                categories=("narcotics", "counterfeit_goods"),
                expire_time=t0 + timedelta(days=30),
                reference_id="",
                case_id="",
                message_id=_message_id("alert-one-recipient", t0),
                create_time=t0,
            ),
            b'{"container":"MSCU1234567","substance":"cocaine","kg":120}',
        ),
        (
            "case-entry-three-recipients",
            "A case entry to three task-force members (given unsorted to seal): the header "
            "lists them sorted and the key blocks follow that order.",
            HeaderFields(
                sender="de-zoll",
                recipients=("nl-fiod", "fr-douane", "it-gdf"),
                treaty_id="treaty-jtf-2025",
                treaty_version=1,
                kind=envelope_pb2.MESSAGE_KIND_CASE_ENTRY,
                handling=envelope_pb2.HANDLING_CODE_H0,
                tlp=envelope_pb2.TLP_RED,
                categories=("firearms",),
                reference_id=_message_id("case-root", t0 - timedelta(days=3)),
                case_id="case-2025-0042",
                message_id=_message_id("case-entry-three-recipients", t0 + timedelta(seconds=1)),
                create_time=t0 + timedelta(seconds=1),
            ),
            "Eintrag: Waffenlieferung über Rotterdam, Fahrzeug gesichtet.".encode(),
        ),
        (
            "acknowledgement-empty-payload",
            "An empty payload: the ciphertext is nonce and tag only.",
            HeaderFields(
                sender="nl-fiod",
                recipients=("fr-douane",),
                treaty_id="treaty-customs-fr-nl",
                treaty_version=7,
                kind=envelope_pb2.MESSAGE_KIND_ACKNOWLEDGEMENT,
                handling=envelope_pb2.HANDLING_CODE_UNSPECIFIED,
                tlp=envelope_pb2.TLP_UNSPECIFIED,
                reference_id=_message_id("alert-one-recipient", t0),
                message_id=_message_id("acknowledgement-empty-payload", t0 + timedelta(minutes=5)),
                create_time=t0 + timedelta(minutes=5),
            ),
            b"",
        ),
        (
            "binary-payload-two-recipients",
            "4 KiB of every byte value, to two recipients.",
            HeaderFields(
                sender="it-gdf",
                recipients=("es-aduanas", "fr-douane"),
                treaty_id="treaty-customs-med",
                treaty_version=4294967295,
                kind=envelope_pb2.MESSAGE_KIND_HIT_REPORT,
                handling=envelope_pb2.HANDLING_CODE_H3,
                tlp=envelope_pb2.TLP_GREEN,
                categories=("stolen_vehicle", "trade_secrets", "wanted_person"),
                expire_time=t0 + timedelta(hours=1),
                message_id=_message_id("binary-payload-two-recipients", t0 + timedelta(minutes=9)),
                create_time=t0 + timedelta(minutes=9),
            ),
            bytes(range(256)) * 16,
        ),
    ]
    vectors = [_vector(directory, *case) for case in cases]
    return {
        "format": "intelshare envelope, header version 1",
        "generator": "tests/intelshare/vectors/make_envelope_vectors.py",
        "suite": {
            "content": "AES-256-GCM, 12-byte random nonce prefixed, header_bytes as AAD",
            "key_wrap": "HPKE base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM, "
            "single shot, empty AAD, info = framed(label, header_digest, recipient)",
            "signature": "Ed25519 over envelope_digest",
            "framing": "each field as 8-byte big-endian length then bytes; key block count as "
            "8-byte big-endian integer",
        },
        "labels": {
            "content_key_commitment": prim.LABEL_CONTENT_KEY_COMMITMENT.decode(),
            "header_digest": prim.LABEL_HEADER_DIGEST.decode(),
            "key_wrap": prim.LABEL_KEY_WRAP.decode(),
            "envelope_digest": prim.LABEL_ENVELOPE_DIGEST.decode(),
        },
        "agencies": [
            {
                "id": a,
                "signing_private": _seed(a, "signing").hex(),
                "signing_public": raw_public(directory.signing[a].public_key()).hex(),
                "signing_key_id": directory.signing_key_id(a),
                "encryption_private": _seed(a, "encryption").hex(),
                "encryption_public": raw_public(directory.encryption[a].public_key()).hex(),
                "encryption_key_id": directory.encryption_key(a)[0],
            }
            for a in AGENCIES
        ],
        "vectors": vectors,
        "invalid_vectors": _invalid_vectors(directory, vectors[1]),
    }


def main() -> None:
    OUT.write_text(json.dumps(build(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
