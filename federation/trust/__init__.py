"""Identity and trust: SPIFFE IDs, per-trust-domain CAs, X.509-SVIDs, SPIFFE trust bundles,
verification, mTLS contexts and rotation. See docs/trust.md."""

from federation.trust.bundle import (
    BundleSet,
    TrustBundle,
    load_bundle_file,
    parse_bundle,
    trust_domain_of_ca,
)
from federation.trust.ca import CertificateAuthority
from federation.trust.errors import (
    BundleError,
    BundleUpdateError,
    CertificateAuthorityError,
    JwtSvidError,
    SpiffeIdError,
    SvidError,
    SvidVerificationError,
)
from federation.trust.jwt import mint_jwt_svid, verify_jwt_svid
from federation.trust.rotation import renewal_due, run_svid_rotation
from federation.trust.signed_bundle import accept_bundle_update, sign_bundle_update
from federation.trust.spiffeid import SpiffeId, TrustDomain, gateway_id, workload_id
from federation.trust.svid import DEFAULT_SVID_TTL, X509Svid, issue_x509_svid
from federation.trust.tls import (
    TlsCredentials,
    client_context,
    peer_chain,
    server_context,
    sni_swapper,
    ssl_object_of,
    verify_peer,
)
from federation.trust.verify import verify_x509_svid

__all__ = [
    "DEFAULT_SVID_TTL",
    "BundleError",
    "BundleSet",
    "BundleUpdateError",
    "CertificateAuthority",
    "CertificateAuthorityError",
    "JwtSvidError",
    "SpiffeId",
    "SpiffeIdError",
    "SvidError",
    "SvidVerificationError",
    "TlsCredentials",
    "TrustBundle",
    "TrustDomain",
    "X509Svid",
    "accept_bundle_update",
    "client_context",
    "gateway_id",
    "issue_x509_svid",
    "load_bundle_file",
    "mint_jwt_svid",
    "parse_bundle",
    "peer_chain",
    "renewal_due",
    "run_svid_rotation",
    "server_context",
    "sign_bundle_update",
    "sni_swapper",
    "ssl_object_of",
    "trust_domain_of_ca",
    "verify_jwt_svid",
    "verify_peer",
    "verify_x509_svid",
    "workload_id",
]
