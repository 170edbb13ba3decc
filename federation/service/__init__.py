"""The federation service: join, trust-bundle relay, health leases and per-cluster snapshots."""

from federation.service.errors import (
    AuthenticationError,
    ConflictError,
    FederationTlsError,
    InvalidInputError,
    JoinTokenError,
    NotFoundError,
    PermissionDeniedError,
    ServiceError,
)
from federation.service.foreign import (
    ForeignBundleError,
    ForeignBundles,
    ForeignTrustDomain,
    fetch_foreign_bundle,
)
from federation.service.join import (
    DEFAULT_TOKEN_TTL_S,
    TOKEN_PREFIX,
    JoinToken,
    JoinTokenRecord,
    check_join_token,
    create_join_token,
)
from federation.service.tls import (
    FederationTls,
    ca_fingerprint,
    ensure_federation_tls,
    pinned_client_context,
)

__all__ = [
    "DEFAULT_TOKEN_TTL_S",
    "TOKEN_PREFIX",
    "AuthenticationError",
    "ConflictError",
    "FederationTls",
    "FederationTlsError",
    "ForeignBundleError",
    "ForeignBundles",
    "ForeignTrustDomain",
    "InvalidInputError",
    "JoinToken",
    "JoinTokenError",
    "JoinTokenRecord",
    "NotFoundError",
    "PermissionDeniedError",
    "ServiceError",
    "ca_fingerprint",
    "check_join_token",
    "create_join_token",
    "ensure_federation_tls",
    "fetch_foreign_bundle",
    "pinned_client_context",
]
