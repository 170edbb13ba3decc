"""Small file helpers shared by the CA and SVID stores: private files are born 0600.

A private key must never exist on disk with looser permissions, not even for an instant, so
files are written to a temporary file created with mode 0600 in the target directory and then
renamed over the destination (atomic on POSIX).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644

SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def write_file(path: Path, data: bytes, *, mode: int) -> None:
    """Atomically replace ``path`` with ``data``; the file has ``mode`` from its creation."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def key_to_pem(key: SigningKey) -> bytes:
    """PKCS#8 PEM, unencrypted: callers write it only through :func:`write_file` with 0600."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def key_from_pem(data: bytes) -> SigningKey:
    """Load an EC or RSA private key; raise ``ValueError`` for anything else."""
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError(f"unsupported private key type {type(key).__name__}")
    return key


def certs_to_pem(certs: list[x509.Certificate] | tuple[x509.Certificate, ...]) -> bytes:
    return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certs)


def certs_from_pem(data: bytes) -> list[x509.Certificate]:
    """All certificates of a PEM file in file order; ``ValueError`` if there are none."""
    return x509.load_pem_x509_certificates(data)
