"""The gateway's identity: its SVID, the bundles it trusts, TLS contexts, and peer checks.

:class:`GatewayIdentity` is the one object the listeners and upstream pools ask about TLS:

- :attr:`server_context` for the inbound listener (TLS 1.3, ALPN h2, client certificate
  required) and :meth:`client_context_for` for dialling peer gateways;
- :meth:`verify_inbound_peer` after every inbound handshake: the chain must verify against the
  bundle of the trust domain named in the peer's own SPIFFE ID (A's mandatory ``verify_peer``),
  and the ID must be the gateway ID of a peer cluster known to the current routing model, of
  that peer's trust domain. Returns a :class:`proxy.listeners.PeerIdentity`: the peer's cluster
  name and the SPIFFE ID it proved;
- :meth:`verify_outbound_peer` after every outbound handshake: the peer we dialled presented
  exactly ``endpoint.expected_identity``.

Both verifiers raise :class:`~gateway.errors.PeerRejected` (the caller closes the connection).
The routing model (known peers) is swapped by :meth:`set_model` on reload; the SVID and bundles
by :meth:`reload_files` (file rotation) or :meth:`update`. Every swap replaces one reference,
so established connections are untouched and new handshakes use the new material.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from federation.errors import FederationError
from federation.model import RoutingModel
from federation.trust import (
    BundleSet,
    SvidVerificationError,
    TlsCredentials,
    TrustBundle,
    TrustDomain,
    X509Svid,
    load_bundle_file,
    verify_peer,
)
from gateway.config import GatewayConfig
from gateway.errors import IdentityError, PeerRejected
from proxy.listeners import PeerIdentity
from proxy.routes import Endpoint

log = logging.getLogger(__name__)

ALPN = ("h2",)
_GATEWAY_PREFIX = "/isthmus/gateway/"


def _wall_clock() -> datetime:
    return datetime.now(UTC)


def load_identity_files(config: GatewayConfig) -> tuple[X509Svid, BundleSet]:
    """Read the SVID, its key and every bundle named in ``config.identity``.

    Raises :class:`IdentityError` naming the file when one is missing or malformed, when the SVID
    is not this gateway's ID, or when a bundle file holds another trust domain's bundle.
    """
    paths = config.identity
    try:
        svid = X509Svid.from_pem(
            paths.svid.read_bytes(), paths.key.read_bytes(), source=str(paths.svid)
        )
    except OSError as err:
        raise IdentityError(
            f"{err.filename}: cannot read the gateway SVID ({err.strerror}); "
            "issue one with 'isthmus svid issue'"
        ) from err
    except FederationError as err:
        raise IdentityError(f"{paths.svid}: {err}") from err
    if str(svid.spiffe_id) != config.gateway_spiffe_id:
        raise IdentityError(
            f"{paths.svid}: SVID is {svid.spiffe_id}, but this gateway is "
            f"{config.gateway_spiffe_id} (cluster/trust_domain in the gateway config)"
        )
    bundles: list[TrustBundle] = []
    for name, path in sorted(paths.bundles.items()):
        try:
            bundles.append(load_bundle_file(path, TrustDomain.parse(name)))
        except FederationError as err:
            raise IdentityError(f"identity.bundles.{name}: {err}") from err
    if not any(b.trust_domain.name == config.trust_domain for b in bundles):
        raise IdentityError(
            f"identity.bundles: no bundle for the gateway's own trust domain {config.trust_domain}"
        )
    return svid, BundleSet(bundles)


def _file_stamp(paths: list[Path]) -> tuple[float, ...]:
    stamps = []
    for path in paths:
        try:
            stamps.append(path.stat().st_mtime)
        except OSError:
            stamps.append(-1.0)
    return tuple(stamps)


class GatewayIdentity:
    """TLS material and peer verification of one gateway; see the module docstring."""

    def __init__(
        self,
        config: GatewayConfig,
        svid: X509Svid,
        bundles: BundleSet,
        *,
        clock: Callable[[], datetime] = _wall_clock,
    ) -> None:
        self._config = config
        self._credentials = TlsCredentials(svid, bundles, alpn=ALPN)
        self._file_bundles = bundles
        self._federated = BundleSet()
        self._clock = clock
        self._peers: dict[str, str] = {}
        self._stamp = _file_stamp(self._watched())

    @classmethod
    def load(
        cls, config: GatewayConfig, *, clock: Callable[[], datetime] = _wall_clock
    ) -> GatewayIdentity:
        """Load from the files in ``config.identity`` (see :func:`load_identity_files`)."""
        svid, bundles = load_identity_files(config)
        return cls(config, svid, bundles, clock=clock)

    def _watched(self) -> list[Path]:
        ident = self._config.identity
        return [ident.svid, ident.key, *ident.bundles.values()]

    @property
    def svid(self) -> X509Svid:
        return self._credentials.svid

    @property
    def bundles(self) -> BundleSet:
        return self._credentials.bundles

    @property
    def server_context(self) -> ssl.SSLContext:
        """The current inbound context (TLS 1.3, ALPN h2, client certificate required)."""
        return self._credentials.server_context

    def listener_server_context(self) -> ssl.SSLContext:
        """A server context for a listener that keeps its context for life: each handshake is
        moved (SNI callback) onto the then-current :attr:`server_context`, so rotation takes
        effect for new connections without restarting the listener."""
        return self._credentials.swapping_server_context()

    def client_context_for(self, endpoint: Endpoint) -> ssl.SSLContext:
        """The client context for dialling ``endpoint`` (a peer gateway): our SVID, ALPN h2."""
        del endpoint
        return self._credentials.client_context

    def set_model(self, model: RoutingModel) -> None:
        """Swap the set of known peers (cluster -> expected SPIFFE ID) on a routing reload."""
        self._peers = {peer.cluster: peer.spiffe_id for peer in model.peers}

    @property
    def file_bundles(self) -> BundleSet:
        """The bundles of the identity files (the own trust domain's is always from here)."""
        return self._file_bundles

    def _merged(self) -> BundleSet:
        """File bundles, with each federated peer bundle replacing a file one of its trust
        domain (it came through verified signed updates, so it is the newer); the gateway's own
        trust domain always comes from its files."""
        merged = self._file_bundles
        for td, bundle in self._federated.items():
            if td.name != self._config.trust_domain:
                merged = merged.with_bundle(bundle)
        return merged

    def update(self, *, svid: X509Svid | None = None, bundles: BundleSet | None = None) -> None:
        """Swap in a rotated SVID and/or new file bundles (new handshakes only)."""
        if bundles is not None:
            self._file_bundles = bundles
        self._credentials.update(svid=svid, bundles=self._merged() if bundles else None)

    @property
    def federated_bundles(self) -> BundleSet:
        """The peer bundles last accepted from the federation."""
        return self._federated

    def set_federated_bundles(self, bundles: BundleSet) -> None:
        """Swap in the peer bundles accepted from the federation (see :meth:`_merged`)."""
        self._federated = bundles
        self._credentials.update(bundles=self._merged())

    def reload_files(self) -> bool:
        """Re-read the identity files if any changed on disk; True if material was swapped.

        A broken file keeps the old material (logged with the file named): a half-written
        rotation must never take the gateway down."""
        stamp = _file_stamp(self._watched())
        if stamp == self._stamp:
            return False
        try:
            svid, bundles = load_identity_files(self._config)
            self.update(svid=svid, bundles=bundles)
        except (IdentityError, FederationError, ssl.SSLError) as err:
            log.error("identity reload failed, keeping the current SVID and bundles: %s", err)
            return False
        finally:
            self._stamp = stamp
        log.info("identity reloaded: %s valid until %s", svid.spiffe_id, svid.not_after)
        return True

    def _verified_id(self, ssl_object: ssl.SSLObject, who: str) -> str:
        try:
            return str(verify_peer(ssl_object, self._credentials.bundles, self._clock()))
        except SvidVerificationError as err:
            raise PeerRejected(err.reason, f"{who}: {err}") from err

    def verify_inbound_peer(self, ssl_object: ssl.SSLObject) -> PeerIdentity:
        """Admit an inbound peer gateway; return its cluster name and SPIFFE ID or raise
        :class:`PeerRejected` (reasons: A's verification codes, ``not-a-gateway``,
        ``unknown-peer``, ``wrong-trust-domain``)."""
        spiffe_id = self._verified_id(ssl_object, "inbound peer")
        _, _, path = spiffe_id.partition("://")[2].partition("/")
        path = "/" + path
        if not path.startswith(_GATEWAY_PREFIX) or "/" in path[len(_GATEWAY_PREFIX) :]:
            raise PeerRejected("not-a-gateway", f"inbound peer {spiffe_id} is not a gateway ID")
        cluster = path[len(_GATEWAY_PREFIX) :]
        expected = self._peers.get(cluster)
        if expected is None:
            raise PeerRejected(
                "unknown-peer",
                f"inbound peer {spiffe_id}: cluster {cluster!r} is not a peer in the routing model",
            )
        if expected != spiffe_id:
            raise PeerRejected(
                "wrong-trust-domain",
                f"inbound peer {spiffe_id}: peer cluster {cluster!r} must present {expected}",
            )
        return PeerIdentity(cluster=cluster, identity=spiffe_id)

    def verify_outbound_peer(self, endpoint: Endpoint, ssl_object: ssl.SSLObject) -> None:
        """Check that the peer gateway we dialled is ``endpoint.expected_identity``; raise
        :class:`PeerRejected` (``unexpected-identity`` or A's verification codes)."""
        who = f"peer {endpoint.host}:{endpoint.port}"
        spiffe_id = self._verified_id(ssl_object, who)
        if endpoint.expected_identity is None or spiffe_id != endpoint.expected_identity:
            raise PeerRejected(
                "unexpected-identity",
                f"{who} presented {spiffe_id}, expected {endpoint.expected_identity}",
            )
