"""What the gateway's federation client keeps on disk, so it restarts without the federation.

``<dir>/federation.json``: the join record (federation URL, pinned CA, cluster, audience).
``<dir>/last-snapshot.json``: the last snapshot the gateway applied and ACKed, with the bundles
it had accepted then. ``<dir>/jwt.key`` (0600): the key the gateway signs JWT-SVIDs with; its
public half is a ``jwt-svid`` key of the cluster's bundle. Every write is atomic (temporary file
and rename), so a crash never leaves a torn file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import Field, ValidationError

from federation.client.errors import ClientStateError
from federation.model.api import Snapshot
from federation.model.base import FrozenModel, describe_validation_error
from federation.trust import BundleError, BundleSet, TrustBundle, TrustDomain, parse_bundle
from federation.trust.files import PRIVATE_MODE, key_from_pem, key_to_pem, write_file


class JoinRecord(FrozenModel):
    """Everything a joined gateway needs to talk to its federation again."""

    federation_url: str
    ca_pem: str
    ca_fingerprint: str
    cluster: str
    trust_domain: str
    audience: str
    max_token_ttl_s: int = Field(ge=1)
    report_interval_s: float = Field(gt=0)
    bundles: dict[str, str] = Field(default_factory=dict, description="bundles at join time")
    federation_urls: tuple[str, ...] = Field(
        default=(), description="other replicas to fail over to (same pinned CA)"
    )

    @property
    def urls(self) -> tuple[str, ...]:
        """The join URL first, then every other replica, without duplicates."""
        ordered = (self.federation_url, *self.federation_urls)
        return tuple(dict.fromkeys(url.rstrip("/") for url in ordered))


class PersistedSnapshot(FrozenModel):
    """The last good snapshot and the bundles accepted with it."""

    snapshot: Snapshot
    bundles: dict[str, str]
    saved_at: float


def bundles_from_json(docs: dict[str, str]) -> BundleSet:
    """Parse ``td -> bundle JSON``; :class:`ClientStateError` names the trust domain."""
    try:
        return BundleSet(parse_bundle(TrustDomain.parse(td), text) for td, text in docs.items())
    except (BundleError, ValueError) as err:
        raise ClientStateError(f"stored bundles: {err}") from err


def bundles_to_json(bundles: BundleSet) -> dict[str, str]:
    return {td.name: bundles[td].to_json() for td in sorted(bundles, key=lambda t: t.name)}


def key_id(key: ec.EllipticCurvePrivateKey) -> str:
    """A stable ``kid``: the first 16 hex digits of SHA-256 over the public key (SPKI DER)."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()[:16]


def registration_bundle(
    bundle: TrustBundle, jwt_key: ec.EllipticCurvePrivateKey, kid: str
) -> TrustBundle:
    """``bundle`` (the cluster's CA roots) plus the gateway's ``jwt-svid`` public key under
    ``kid``: what a gateway registers at join, so the federation can verify its JWT-SVIDs."""
    keys = dict(bundle.jwt_authorities)
    keys[kid] = jwt_key.public_key()
    return TrustBundle(
        bundle.trust_domain, bundle.x509_authorities, keys, bundle.sequence, bundle.refresh_hint_s
    )


class ClientStateDir:
    """The client's files under one directory (created 0700 on first write)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.join_path = path / "federation.json"
        self.snapshot_path = path / "last-snapshot.json"
        self.jwt_key_path = path / "jwt.key"

    def _read(self, path: Path) -> str | None:
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as err:
            raise ClientStateError(f"{path}: cannot read ({err.strerror})") from err

    def save_join(self, record: JoinRecord) -> None:
        write_file(self.join_path, record.model_dump_json(indent=2).encode(), mode=PRIVATE_MODE)

    def load_join(self) -> JoinRecord | None:
        """The join record, ``None`` if this gateway never joined."""
        text = self._read(self.join_path)
        if text is None:
            return None
        try:
            return JoinRecord.model_validate_json(text)
        except ValidationError as err:
            problems = "; ".join(describe_validation_error(err))
            raise ClientStateError(f"{self.join_path}: {problems}; join again") from err

    def save_snapshot(self, persisted: PersistedSnapshot) -> None:
        write_file(self.snapshot_path, persisted.model_dump_json().encode(), mode=PRIVATE_MODE)

    def load_snapshot(self) -> PersistedSnapshot | None:
        """The last good snapshot, ``None`` if there is none; a corrupt file raises
        :class:`ClientStateError` naming it (the caller decides whether to carry on)."""
        text = self._read(self.snapshot_path)
        if text is None:
            return None
        try:
            return PersistedSnapshot.model_validate_json(text)
        except ValidationError as err:
            problems = "; ".join(describe_validation_error(err)[:3])
            raise ClientStateError(f"{self.snapshot_path}: {problems}") from err

    def load_or_create_jwt_key(self) -> tuple[ec.EllipticCurvePrivateKey, str]:
        """The gateway's JWT-SVID signing key (P-256, created 0600 once) and its ``kid``."""
        text = self._read(self.jwt_key_path)
        if text is None:
            key = ec.generate_private_key(ec.SECP256R1())
            write_file(self.jwt_key_path, key_to_pem(key), mode=PRIVATE_MODE)
            return key, key_id(key)
        try:
            loaded = key_from_pem(text.encode())
        except ValueError as err:
            raise ClientStateError(f"{self.jwt_key_path}: not a PEM private key") from err
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise ClientStateError(f"{self.jwt_key_path}: expected an EC P-256 key")
        return loaded, key_id(loaded)
