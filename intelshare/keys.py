"""An agency's private keys and how they are kept on disk.

An agency holds three private keys: Ed25519 to sign envelopes, treaties and
audit tree heads; X25519 to receive content keys (HPKE); ECDSA P-256 for its
TLS leaf certificate (grpcio cannot handshake with Ed25519 leaves). Private
key files are PKCS#8 PEM, written with mode 0600 from the moment they exist
(the file is created with that mode, never chmod-ed afterwards), and loading
refuses a file that others can read or that holds the wrong type of key: a
key that leaked through a permissive mode is a key to rotate, not to use.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519

from intelshare.errors import KeyFileError
from intelshare.ids import key_id

PRIVATE_MODE = 0o600

SIGNING_KEY_FILE = "signing.key"
ENCRYPTION_KEY_FILE = "encryption.key"
TLS_KEY_FILE = "tls.key"


def raw_public(
    key: ed25519.Ed25519PublicKey | x25519.X25519PublicKey,
) -> bytes:
    """The 32 raw bytes of an Ed25519 or X25519 public key."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def write_private_key(
    path: Path,
    key: ed25519.Ed25519PrivateKey | x25519.X25519PrivateKey | ec.EllipticCurvePrivateKey,
) -> None:
    """Write ``key`` as unencrypted PKCS#8 PEM with mode 0600, atomically."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_secret_file(path, pem)


def write_secret_file(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 and ``data``, replacing it atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_MODE)
    try:
        os.fchmod(fd, PRIVATE_MODE)  # umask cannot widen it, but be explicit
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _read_private(path: Path, expected: type[Any], what: str) -> Any:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise KeyFileError(f"{what} key file {path} does not exist") from None
    if not stat.S_ISREG(st.st_mode):
        raise KeyFileError(f"{what} key file {path} is not a regular file")
    if st.st_mode & 0o077:
        raise KeyFileError(
            f"{what} key file {path} has mode {stat.S_IMODE(st.st_mode):04o}; "
            f"private keys must be 0600 (run: chmod 600 {path}, then rotate the key)"
        )
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{what} key file {path} is not a PEM private key") from exc
    if not isinstance(key, expected):
        raise KeyFileError(
            f"{what} key file {path} holds a {type(key).__name__}, expected {expected.__name__}"
        )
    if isinstance(key, ec.EllipticCurvePrivateKey) and not isinstance(key.curve, ec.SECP256R1):
        raise KeyFileError(f"{what} key file {path} is on {key.curve.name}, expected P-256")
    return key


def load_signing_key(path: Path) -> ed25519.Ed25519PrivateKey:
    """Load an Ed25519 private key, refusing loose permissions or another type."""
    return cast(
        ed25519.Ed25519PrivateKey, _read_private(path, ed25519.Ed25519PrivateKey, "signing")
    )


def load_encryption_key(path: Path) -> x25519.X25519PrivateKey:
    """Load an X25519 private key, refusing loose permissions or another type."""
    return cast(x25519.X25519PrivateKey, _read_private(path, x25519.X25519PrivateKey, "encryption"))


def load_tls_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """Load an ECDSA P-256 private key, refusing loose permissions or another type."""
    return cast(ec.EllipticCurvePrivateKey, _read_private(path, ec.EllipticCurvePrivateKey, "TLS"))


@dataclass(frozen=True)
class AgencyKeys:
    """The three private keys of one agency, with the ids the directory uses."""

    signing: ed25519.Ed25519PrivateKey
    encryption: x25519.X25519PrivateKey
    tls: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls) -> AgencyKeys:
        return cls(
            signing=ed25519.Ed25519PrivateKey.generate(),
            encryption=x25519.X25519PrivateKey.generate(),
            tls=ec.generate_private_key(ec.SECP256R1()),
        )

    @property
    def signing_key_id(self) -> str:
        return key_id(raw_public(self.signing.public_key()))

    @property
    def encryption_key_id(self) -> str:
        return key_id(raw_public(self.encryption.public_key()))

    def save(self, directory: Path) -> None:
        """Write the three keys into ``directory`` (created 0700 if missing)."""
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_private_key(directory / SIGNING_KEY_FILE, self.signing)
        write_private_key(directory / ENCRYPTION_KEY_FILE, self.encryption)
        write_private_key(directory / TLS_KEY_FILE, self.tls)

    @classmethod
    def load(cls, directory: Path) -> AgencyKeys:
        return cls(
            signing=load_signing_key(directory / SIGNING_KEY_FILE),
            encryption=load_encryption_key(directory / ENCRYPTION_KEY_FILE),
            tls=load_tls_key(directory / TLS_KEY_FILE),
        )
