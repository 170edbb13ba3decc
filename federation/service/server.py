"""``serve_federation``: the federation API on hypercorn's trio worker, over TLS 1.3 and HTTP/2.

The server owns the store (opened from the config), the snapshot publisher task and the
hypercorn server, all in one nursery. Readiness: ``await nursery.start(serve_federation, ...)``
returns a :class:`RunningFederation` once the socket is bound and the first snapshots are built.
"""

from __future__ import annotations

import gc
import os
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import hypercorn.trio
import trio
from hypercorn.config import Config as HypercornConfig
from pydantic import Field

from federation.model.base import FrozenModel, load_model_file
from federation.model.placement import ServicePolicy
from federation.service.app import DEFAULT_MAX_BODY_BYTES, build_app
from federation.service.auth import (
    CallerAuthenticator,
    JwtVerifier,
    ensure_admin_token,
    verify_gateway_jwt,
)
from federation.service.core import FederationService, ServiceSettings
from federation.service.foreign import ForeignBundles, ForeignTrustDomain
from federation.service.hypercorn_compat import (
    install_direct_body,
    install_h2_closed_stream_fix,
    install_h2_direct_send,
    install_read_loop_without_timeout,
)
from federation.service.leases import DEFAULT_MISSED_INTERVALS
from federation.service.maintenance import Retention
from federation.service.metrics import FederationMetrics
from federation.service.publisher import SnapshotPublisher
from federation.service.stream_inbound import InboundSink
from federation.service.tls import DEFAULT_HOSTS, ensure_federation_tls
from federation.store import Store, open_store, sqlite_url_for_state_dir

DEFAULT_PORT = 8443
#: The cyclic collector's thresholds in a serving process (Python's default: 700, 10, 10).
SERVING_GC_THRESHOLDS = (50_000, 20, 10)


def tune_gc_for_serving() -> None:
    """Make full collections of the cyclic garbage collector rare in this process (call once,
    at the start of a process that serves; it is process-wide).

    With 1,000 gateways connected the federation holds ~500k tracked objects (per connection:
    TLS, h2, hypercorn and trio state), and with the default thresholds objects that merely
    live through one report (in flight during a young collection) were promoted until a full
    collection ran: 63 pauses of 0.1-1 s (21.5 s in all) in a 3.5-minute run at 1,000 gateways,
    each freezing the event loop, so no report was read and leases lapsed. Young collections
    every 50,000 allocations instead of 700 let such objects die by reference counting first:
    18 pauses (5.4 s) in the same run. Cyclic garbage waits a little longer to be freed."""
    gc.set_threshold(*SERVING_GC_THRESHOLDS)


def default_state_dir() -> Path:
    """``$ISTHMUS_HOME/federation``, else ``~/.isthmus/federation``."""
    home = os.environ.get("ISTHMUS_HOME")
    return (Path(home) if home else Path.home() / ".isthmus") / "federation"


class FederationConfig(FrozenModel):
    """``federation.yaml``: where the federation listens and keeps its state."""

    listen_host: str = "127.0.0.1"
    listen_port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    public_url: str | None = Field(
        default=None, description="URL put in join tokens; default https://<host>:<port>"
    )
    tls_hosts: tuple[str, ...] = Field(default=DEFAULT_HOSTS, min_length=1)
    replica_urls: tuple[str, ...] = Field(
        default=(), max_length=16, description="every replica's URL, given to gateways"
    )
    state_dir: Path | None = Field(default=None, description="default $ISTHMUS_HOME/federation")
    store_url: str | None = Field(default=None, description="default sqlite in the state dir")
    report_interval_s: float = Field(default=1.0, gt=0, le=3600)
    missed_intervals: int = Field(default=DEFAULT_MISSED_INTERVALS, ge=1, le=100)
    long_poll_s: float = Field(default=30.0, gt=0, le=300)
    audience: str = Field(default="isthmus-federation", min_length=1)
    max_token_ttl_s: int = Field(default=300, ge=10, le=86400)
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1024, le=64 * 1024 * 1024)
    debounce_s: float = Field(default=0.005, ge=0, le=10)
    placement_debounce_s: float = Field(
        default=0.05, ge=0, le=10, description="window that coalesces changes into one plan"
    )
    event_retention_s: float = Field(
        default=7 * 86400.0, gt=0, description="timeline events older than this are pruned"
    )
    token_retention_s: float = Field(
        default=86400.0, gt=0, description="join tokens used or expired longer ago are pruned"
    )
    services: tuple[ServicePolicy, ...] = Field(
        default=(), description="services declared (upserted) at start; see docs/placement.md"
    )
    foreign_trust_domains: tuple[ForeignTrustDomain, ...] = Field(
        default=(),
        max_length=64,
        description="SPIFFE bundle endpoints (SPIRE https_web) served as extra trust domains; "
        "never relayed to gateways, see docs/federation.md",
    )

    @classmethod
    def from_file(cls, path: Path) -> FederationConfig:
        """Load and validate a YAML file; errors name the file and fields."""
        return load_model_file(cls, path)

    @property
    def resolved_state_dir(self) -> Path:
        return self.state_dir if self.state_dir is not None else default_state_dir()

    @property
    def resolved_store_url(self) -> str:
        return self.store_url or sqlite_url_for_state_dir(self.resolved_state_dir)

    def url_for_port(self, port: int) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.listen_host}]" if ":" in self.listen_host else self.listen_host
        return f"https://{host}:{port}"


class _Tls13Config(HypercornConfig):
    """hypercorn allows TLS 1.2; the federation speaks TLS 1.3 only."""

    def create_ssl_context(self) -> ssl.SSLContext | None:
        context: ssl.SSLContext | None = super().create_ssl_context()
        if context is not None:
            context.minimum_version = ssl.TLSVersion.TLSv1_3
        return context


def hypercorn_config(config: FederationConfig, cert: Path, key: Path) -> HypercornConfig:
    """TLS, ALPN h2 + http/1.1, and limits fit for long-lived HTTP/2 gateways."""
    hc = _Tls13Config()
    hc.bind = [f"{config.listen_host}:{config.listen_port}"]
    hc.certfile, hc.keyfile = str(cert), str(key)
    hc.alpn_protocols = ["h2", "http/1.1"]
    # Default 1,000 would close each gateway's HTTP/2 connection every ~1,000 reports.
    hc.keep_alive_max_requests = 10**9
    hc.keep_alive_timeout = config.long_poll_s + 30
    hc.graceful_timeout = 2.0
    hc.accesslog = None
    return hc


@dataclass(frozen=True)
class RunningFederation:
    """Handed to ``nursery.start`` callers once the API accepts connections."""

    url: str
    ca_fingerprint: str
    ca_pem: bytes
    admin_token: str
    state_dir: Path
    service: FederationService


def _port_of(bind: str) -> int:
    return int(bind.rsplit(":", 1)[1])


async def serve_federation(
    config: FederationConfig,
    *,
    verify_jwt: JwtVerifier = verify_gateway_jwt,
    clock: Callable[[], float] = time.time,
    store: Store | None = None,
    task_status: trio.TaskStatus[RunningFederation] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled. Opens (and closes) the store unless one is passed in (borrowed)."""
    if store is None:
        async with open_store(config.resolved_store_url) as owned:
            await _serve(config, owned, verify_jwt, clock, task_status)
    else:
        await _serve(config, store, verify_jwt, clock, task_status)


async def _serve(
    config: FederationConfig,
    store: Store,
    verify_jwt: JwtVerifier,
    clock: Callable[[], float],
    task_status: trio.TaskStatus[RunningFederation],
) -> None:
    install_h2_closed_stream_fix()
    install_h2_direct_send()  # a stream's message goes out from its writer, no send-task hop
    install_read_loop_without_timeout()  # no cancel scope per read of every connection
    install_direct_body()  # a stream's up messages read in the read task, no channel hop
    state_dir = config.resolved_state_dir
    tls = ensure_federation_tls(state_dir / "tls", hosts=config.tls_hosts)
    admin_token = ensure_admin_token(state_dir)
    metrics = FederationMetrics()
    publisher = SnapshotPublisher(
        store,
        clock=clock,
        interval_s=config.report_interval_s,
        missed_intervals=config.missed_intervals,
        debounce_s=config.debounce_s,
        metrics=metrics,
        placement_debounce_s=config.placement_debounce_s,
        retention=Retention(config.event_retention_s, config.token_retention_s),
    )
    for policy in config.services:  # declared in federation.yaml: (re)declare at every start
        await store.put_service(policy.name, policy.model_dump_json(), clock())
    settings = ServiceSettings(
        federation_url=config.url_for_port(config.listen_port),
        ca_fingerprint=tls.fingerprint,
        audience=config.audience,
        report_interval_s=config.report_interval_s,
        missed_intervals=config.missed_intervals,
        max_token_ttl_s=config.max_token_ttl_s,
        long_poll_s=config.long_poll_s,
        replica_urls=config.replica_urls,
    )
    service = FederationService(store, publisher, settings, clock=clock, metrics=metrics)
    foreign = ForeignBundles(config.foreign_trust_domains, clock=clock)
    service.foreign = foreign
    auth = CallerAuthenticator(
        store,
        audience=config.audience,
        admin_token=admin_token,
        verify=verify_jwt,
        clock=clock,
        max_token_ttl_s=config.max_token_ttl_s,
    )
    ca_pem = tls.ca_path.read_bytes()
    inbound = InboundSink(service)  # stores every snapshot stream's reports and ACKs
    app = build_app(
        service, auth, ca_pem=ca_pem, max_body_bytes=config.max_body_bytes, stream_inbound=inbound
    )
    hc = hypercorn_config(config, tls.cert_path, tls.key_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(auth.follow_changes)  # a changed bundle forgets verified tokens
        await nursery.start(publisher.run)
        await nursery.start(inbound.run)
        nursery.start_soon(foreign.run)
        serve = partial(hypercorn.trio.serve, app, hc, mode="asgi")  # type: ignore[arg-type]
        binds = await nursery.start(serve)
        url = config.url_for_port(_port_of(binds[0]))
        service.settings = replace(settings, federation_url=url)
        task_status.started(
            RunningFederation(url, tls.fingerprint, ca_pem, admin_token, state_dir, service)
        )
