from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from intelshare.errors import KeyFileError
from intelshare.keys import (
    AgencyKeys,
    load_encryption_key,
    load_signing_key,
    load_tls_key,
    write_private_key,
)


def test_keys_round_trip_with_mode_0600(tmp_path: Path) -> None:
    keys = AgencyKeys.generate()
    keys.save(tmp_path / "k")
    for name in ("signing.key", "encryption.key", "tls.key"):
        mode = stat.S_IMODE((tmp_path / "k" / name).stat().st_mode)
        assert mode == 0o600, (name, oct(mode))
    again = AgencyKeys.load(tmp_path / "k")
    assert again.signing_key_id == keys.signing_key_id
    assert again.encryption_key_id == keys.encryption_key_id
    assert again.tls.public_key().public_numbers() == keys.tls.public_key().public_numbers()


def test_mode_is_0600_even_with_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        write_private_key(tmp_path / "s.key", ed25519.Ed25519PrivateKey.generate())
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "s.key").stat().st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o666])
def test_loose_permissions_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "s.key"
    write_private_key(path, ed25519.Ed25519PrivateKey.generate())
    path.chmod(mode)
    with pytest.raises(KeyFileError, match="must be 0600"):
        load_signing_key(path)


def test_wrong_key_type_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.key"
    write_private_key(path, ed25519.Ed25519PrivateKey.generate())
    with pytest.raises(KeyFileError, match="expected X25519PrivateKey"):
        load_encryption_key(path)
    with pytest.raises(KeyFileError, match="expected EllipticCurvePrivateKey"):
        load_tls_key(path)


def test_wrong_curve_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.key"
    write_private_key(path, ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(KeyFileError, match="expected P-256"):
        load_tls_key(path)


def test_missing_and_garbage_files_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="does not exist"):
        load_signing_key(tmp_path / "nope.key")
    junk = tmp_path / "junk.key"
    junk.write_bytes(b"not a key")
    junk.chmod(0o600)
    with pytest.raises(KeyFileError, match="not a PEM private key"):
        load_signing_key(junk)
