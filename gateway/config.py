"""The gateway's own configuration file (``gateway.yaml``), validated once at start-up.

It says who the gateway is (cluster, trust domain, locality), where it listens, where its
identity and the routing model live, and how hard it protects itself (limits). Relative paths
are resolved against the directory of the config file, so a config directory can be moved as a
whole. Unknown keys are rejected with the file and field named.

The routing model itself lives in a separate file (``routing_file``) because it changes at run
time (reload on SIGHUP or file change) and, later, comes from the federation instead.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError, field_validator, model_validator

from federation.model import FrozenModel, Locality
from federation.model.api import Cost
from federation.model.base import describe_validation_error
from federation.model.routing import check_address, check_cluster_name
from federation.service.foreign import ForeignTrustDomain
from gateway.errors import GatewayConfigError

DEFAULT_INBOUND_PORT = 15443
DEFAULT_OUTBOUND_PORT = 15001
DEFAULT_ADMIN_PORT = 15000


class ListenerSettings(FrozenModel):
    """Where the three listeners bind. ``bind`` defaults to loopback for development; set it to
    ``0.0.0.0`` (or a private address) in a real cluster. Port 0 picks a free port (tests)."""

    bind: str = "127.0.0.1"
    inbound_port: int = Field(default=DEFAULT_INBOUND_PORT, ge=0, le=65535)
    outbound_port: int = Field(default=DEFAULT_OUTBOUND_PORT, ge=0, le=65535)
    admin_port: int = Field(default=DEFAULT_ADMIN_PORT, ge=0, le=65535)
    outbound_bind: str | None = Field(
        default=None,
        description="bind address of the outbound listener for local apps; defaults to 'bind'",
    )
    admin_bind: str | None = Field(
        default=None,
        description="bind address of the admin API; defaults to 'bind' (keep it private)",
    )


class IdentityPaths(FrozenModel):
    """The gateway's X.509-SVID, its key (0600) and one SPIFFE bundle file per trust domain it
    trusts (its own included)."""

    svid: Path = Path("svid.pem")
    key: Path = Path("svid.key")
    bundles: dict[str, Path] = Field(
        default_factory=dict, description="trust domain -> bundle.json (SPIFFE trust bundle)"
    )


class LimitSettings(FrozenModel):
    """Per-listener protection; see docs/gateway.md for what each one defends against."""

    max_connections: int = Field(default=10_000, ge=1)
    max_concurrent_streams: int = Field(default=256, ge=1, le=2**31 - 1)
    max_header_list_size: int = Field(default=65_536, ge=1024)
    header_read_timeout_s: float = Field(default=10.0, gt=0)
    idle_timeout_s: float = Field(default=300.0, gt=0)
    request_timeout_s: float = Field(default=60.0, gt=0)
    drain_timeout_s: float = Field(default=15.0, ge=0)
    tunnel_idle_timeout_s: float = Field(
        default=3600.0, gt=0, description="close a CONNECT tunnel silent for this long"
    )


class FederationSettings(FrozenModel):
    """How the gateway joins and follows its federation (``federation:`` in gateway.yaml).

    Present (or a join token given) = federated mode: the routing file then declares only what
    this cluster exports (its local services and endpoints); peers and remote routes come from
    the federation's snapshots. See docs/gateway.md, "Joining a federation".
    """

    state_dir: Path | None = Field(
        default=None,
        description="credentials and the last good snapshot; default "
        "$ISTHMUS_HOME/gateways/<cluster> (else ~/.isthmus/gateways/<cluster>)",
    )
    advertise_addresses: tuple[str, ...] = Field(
        default=(),
        max_length=16,
        description="host:port peers dial to reach the inbound listener; default bind:port",
    )
    capacity: int = Field(default=0, ge=0, le=10**9, description="requests/s this cluster takes")
    cost: Cost = Cost()
    labels: dict[str, str] = Field(default_factory=dict)
    report_interval_s: float | None = Field(
        default=None, gt=0, le=3600, description="default: what the federation says at join"
    )
    long_poll_s: float = Field(default=30.0, gt=0, le=300)
    backoff_base_s: float = Field(default=0.5, gt=0, le=60)
    backoff_cap_s: float = Field(default=30.0, gt=0, le=3600)
    foreign_trust_domains: tuple[ForeignTrustDomain, ...] = Field(
        default=(),
        max_length=32,
        description="foreign (e.g. SPIRE) trust domains this gateway fetches itself from their "
        "https_web bundle endpoints; the federation can neither add nor replace them",
    )

    @field_validator("advertise_addresses")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_address(item) for item in value)

    @field_validator("foreign_trust_domains")
    @classmethod
    def _distinct(cls, value: tuple[ForeignTrustDomain, ...]) -> tuple[ForeignTrustDomain, ...]:
        names = [item.trust_domain for item in value]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"trust domain {name!r} is listed more than once")
        return value


class GatewayConfig(FrozenModel):
    """Everything ``isthmus gateway run`` needs; see docs/gateway.md for the reference."""

    cluster: str
    trust_domain: str
    locality: Locality
    listeners: ListenerSettings = ListenerSettings()
    identity: IdentityPaths = IdentityPaths()
    routing_file: Path = Path("routing.yaml")
    limits: LimitSettings = LimitSettings()
    peer_connections: int = Field(
        default=1, ge=1, le=16, description="long-lived HTTP/2 connections per peer gateway"
    )
    workers: int = Field(default=1, ge=1, le=256)
    reload_poll_s: float = Field(default=1.0, gt=0, description="routing-file mtime poll period")
    probe_interval_s: float = Field(default=1.0, gt=0, description="peer /readyz probe period")
    access_log: bool = True
    join_token: str | None = Field(
        default=None, description="single-use join token (or pass --join); ignored once joined"
    )
    federation: FederationSettings | None = None

    _cluster = field_validator("cluster")(check_cluster_name)

    @model_validator(mode="after")
    def _foreign_is_not_own(self) -> GatewayConfig:
        foreign = self.federation.foreign_trust_domains if self.federation is not None else ()
        if any(f.trust_domain == self.trust_domain for f in foreign):
            raise ValueError(
                f"federation.foreign_trust_domains: {self.trust_domain!r} is this gateway's own "
                "trust domain; list only other (e.g. SPIRE) trust domains"
            )
        return self

    @property
    def gateway_spiffe_id(self) -> str:
        """The SPIFFE ID this gateway's SVID must carry."""
        return f"spiffe://{self.trust_domain}/isthmus/gateway/{self.cluster}"

    def resolved(self, base: Path) -> GatewayConfig:
        """A copy whose relative paths are made absolute against ``base``."""

        def fix(path: Path) -> Path:
            return path if path.is_absolute() else (base / path)

        identity = IdentityPaths(
            svid=fix(self.identity.svid),
            key=fix(self.identity.key),
            bundles={td: fix(p) for td, p in self.identity.bundles.items()},
        )
        update: dict[str, object] = {
            "identity": identity,
            "routing_file": fix(self.routing_file),
        }
        fed = self.federation
        if fed is not None:
            foreign = tuple(
                f if f.ca_file is None else f.model_copy(update={"ca_file": fix(f.ca_file)})
                for f in fed.foreign_trust_domains
            )
            state_dir = None if fed.state_dir is None else fix(fed.state_dir)
            fixed = {"state_dir": state_dir, "foreign_trust_domains": foreign}
            update["federation"] = fed.model_copy(update=fixed)
        return self.model_copy(update=update)

    @classmethod
    def from_file(cls, path: Path) -> GatewayConfig:
        """Load and validate ``path`` (YAML). Raises :class:`GatewayConfigError` naming the file
        and each offending field; relative paths are resolved against the file's directory."""
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as err:
            raise GatewayConfigError(str(path), [f"cannot read: {err.strerror}"]) from err
        except yaml.YAMLError as err:
            raise GatewayConfigError(str(path), [f"not valid YAML: {err}"]) from err
        return cls.from_mapping(data or {}, source=str(path)).resolved(path.parent.resolve())

    @classmethod
    def from_mapping(cls, data: object, *, source: str = "<config>") -> GatewayConfig:
        """Validate an already-parsed document; errors name ``source`` and the fields."""
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise GatewayConfigError(source, describe_validation_error(err)) from err
