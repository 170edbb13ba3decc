"""``serve_gateway``: one gateway (worker) process as a trio nursery.

It owns, in one nursery tree: the upstream pools (D2), the forwarding engine (D), the inbound
mTLS listener and the outbound listener (D), the admin API (hypercorn), the peer prober and
maintenance ticker, and the routing/identity file watcher. Start-up order: identity and the
first routing table are loaded (errors abort start-up, naming the file), then the pools,
engine, listeners and admin start, then ``proxy.tune_gc()``, then ``task_status.started`` with a
:class:`RunningGateway` handle.

Shutdown: :meth:`RunningGateway.stop` (or SIGTERM/SIGINT when ``handle_signals``) drains —
``/readyz`` turns 503, the listeners stop accepting and drain (GOAWAY / ``connection: close``,
in-flight requests finish within ``limits.drain_timeout_s``) — then everything else is
cancelled and :func:`serve_gateway` returns. Cancelling the caller's scope stops at once.
"""

from __future__ import annotations

import logging
import os
import signal
import ssl
import threading
from dataclasses import dataclass, field
from functools import partial

import trio

from federation.client import FederationLink
from federation.model import RoutingModel
from federation.model.api import Snapshot
from federation.trust import BundleSet
from gateway.admin import AdminApp, bind_admin_socket, serve_admin
from gateway.config import GatewayConfig
from gateway.drills import DelayedInbound, GatewayDrills
from gateway.errors import PeerRejected
from gateway.federated import (
    FederationSession,
    federation_wanted,
    prepare_federation,
    run_federation_link,
)
from gateway.identity import GatewayIdentity
from gateway.load import ServiceLoadTracker
from gateway.metrics import GatewayMetrics
from gateway.observe import GatewayObserver
from gateway.probes import live_view, run_maintenance
from gateway.reload import RoutingWatcher, check_model
from gateway.status import GatewayStatus
from gateway.translate import translate_model
from gateway.workers import stop_when_orphaned
from proxy import tune_gc
from proxy.engine import ForwardingEngine
from proxy.listeners import DrainSignal, ListenerLimits, PeerIdentity, serve_listener
from proxy.routes import Endpoint, RoutingTable
from proxy.upstream import PoolSettings, UpstreamPools, open_upstream_pools

log = logging.getLogger(__name__)


@dataclass
class RunningGateway:
    """Handle on a started gateway (tests and ``isthmus up`` use it)."""

    config: GatewayConfig
    status: GatewayStatus
    metrics: GatewayMetrics
    identity: GatewayIdentity
    engine: ForwardingEngine
    watcher: RoutingWatcher
    inbound_port: int
    outbound_port: int
    admin_port: int
    _stop: trio.Event = field(default_factory=trio.Event, repr=False)
    #: Load of the services served by this cluster's own backends (federation reports).
    load: ServiceLoadTracker = field(default_factory=ServiceLoadTracker)
    #: Outbound traffic by ``"<destination cluster>/<service>"`` (federation reports).
    links: ServiceLoadTracker = field(default_factory=ServiceLoadTracker)
    #: The federation link of a federated gateway (``None`` in file mode).
    federation: FederationLink | None = None
    #: Chaos drills in force (``isthmus drill``): partitions and an inbound delay.
    drills: GatewayDrills = field(default_factory=GatewayDrills)

    def stop(self) -> None:
        """Begin a graceful drain; :func:`serve_gateway` returns when it is done."""
        self._stop.set()

    def apply_snapshot(self, snapshot: Snapshot, bundles: BundleSet) -> None:
        """Install a federation snapshot (``federation.client.SnapshotApplier``): its routing
        model (checked like a file reload: this cluster, this trust domain, version not lower)
        and the verified bundles (new handshakes only). Raises
        :class:`~gateway.errors.GatewayConfigError` to refuse it; nothing changes then."""
        check_model(self.config, snapshot.routing, None)
        before = self.identity.federated_bundles
        self.identity.set_federated_bundles(bundles)
        try:
            self.watcher.adopt(snapshot.routing)
        except Exception:
            self.identity.set_federated_bundles(before)
            raise


def listener_limits(config: GatewayConfig) -> ListenerLimits:
    """The proxy's listener limits from ``config.limits``."""
    lim = config.limits
    return ListenerLimits(
        max_connections=lim.max_connections,
        max_concurrent_streams=lim.max_concurrent_streams,
        max_header_list_size=lim.max_header_list_size,
        header_read_timeout_s=lim.header_read_timeout_s,
        idle_timeout_s=lim.idle_timeout_s,
        request_timeout_s=lim.request_timeout_s,
        drain_timeout_s=lim.drain_timeout_s,
        tunnel_idle_timeout_s=lim.tunnel_idle_timeout_s,
    )


def table_endpoints(table: RoutingTable) -> list[Endpoint]:
    """Every distinct endpoint of a table (by key), in table order."""
    seen: dict[str, Endpoint] = {}
    for route in table.routes.values():
        for group in route.priorities:
            for endpoint in group.endpoints:
                seen.setdefault(endpoint.key, endpoint)
    return list(seen.values())


class _Applier:
    """Applies an accepted routing model: identity peers, engine table, pools, status."""

    def __init__(
        self,
        identity: GatewayIdentity,
        status: GatewayStatus,
        metrics: GatewayMetrics,
    ) -> None:
        self.identity = identity
        self.status = status
        self.metrics = metrics
        self.engine: ForwardingEngine | None = None
        self.pools: UpstreamPools | None = None

    def __call__(self, model: RoutingModel) -> None:
        table = translate_model(model)
        self.identity.set_model(model)
        if self.engine is not None:
            self.engine.swap_table(table)
        if self.pools is not None:
            self.pools.retain(table_endpoints(table))
        self.status.table = table
        self.status.last_reload_error = None
        self.status.reloads += 1
        self.metrics.table_version.set(model.version)
        self.metrics.reloads.labels("ok").inc()


def _rejected(status: GatewayStatus, metrics: GatewayMetrics, err: Exception) -> None:
    status.last_reload_error = str(err)
    metrics.reloads.labels("rejected").inc()


def _inbound_verifier(identity: GatewayIdentity, drills: GatewayDrills) -> partial[PeerIdentity]:
    return partial(_verify_inbound, identity, drills)


def _verify_inbound(
    identity: GatewayIdentity, drills: GatewayDrills, ssl_object: ssl.SSLObject
) -> PeerIdentity:
    try:
        peer = identity.verify_inbound_peer(ssl_object)
        drills.check_inbound(peer.cluster)
        return peer
    except PeerRejected as err:
        log.warning("inbound peer rejected (%s): %s", err.reason, err)
        raise


async def _watch_signals(stop: trio.Event, task_status: trio.TaskStatus[None]) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        task_status.started()
        async for signum in signals:
            if stop.is_set():
                raise KeyboardInterrupt  # a second signal: stop now, no drain
            log.info("%s: draining", signal.Signals(signum).name)
            stop.set()


async def serve_gateway(
    config: GatewayConfig,
    *,
    admin_port_offset: int = 0,
    reuse_port: bool = False,
    handle_signals: bool | None = None,
    freeze_gc: bool = True,
    join_token: str | None = None,
    task_status: trio.TaskStatus[RunningGateway] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run one gateway until stopped (see the module docstring).

    ``admin_port_offset`` is added to the admin port (a supervised worker *k* uses 1 + k);
    ``reuse_port`` sets ``SO_REUSEPORT`` on the inbound and outbound sockets (N workers);
    ``handle_signals`` (default: when on the main thread) drains on SIGTERM/SIGINT and reloads
    on SIGHUP. Raises :class:`~gateway.errors.GatewayError` subclasses for bad identity or
    routing files at start-up.

    Federated mode (``join_token``, ``config.join_token``, a ``federation:`` section, or an
    earlier join in the state directory; :mod:`gateway.federated`): the join (or loading the
    stored credentials) happens before any listener starts — a refused token raises
    :class:`~gateway.errors.FederationJoinError` — and the federation link runs in the
    gateway's nursery; ``started`` comes after the persisted snapshot (if any) is applied.
    """
    on_main = threading.current_thread() is threading.main_thread()
    signals = on_main if handle_signals is None else handle_signals
    identity = GatewayIdentity.load(config)
    status = GatewayStatus(cluster=config.cluster)
    metrics = GatewayMetrics()
    applier = _Applier(identity, status, metrics)
    watcher = RoutingWatcher(
        config,
        applier,
        handle_sighup=signals,
        on_rejected=partial(_rejected, status, metrics),
    )
    watcher.load_initial()
    session: FederationSession | None = None
    if federation_wanted(config, join_token):
        watcher.federated = True
        session = await prepare_federation(config, identity, join_token)
    load, links = ServiceLoadTracker(), ServiceLoadTracker()
    settings = PoolSettings(peer_connections=config.peer_connections)
    drills = GatewayDrills()
    async with open_upstream_pools(
        client_context_for=identity.client_context_for,
        verify_peer=drills.outbound_verifier(identity.verify_outbound_peer),
        settings=settings,
    ) as pools:
        assert status.table is not None
        engine = ForwardingEngine(
            status.table,
            upstream=pools,
            observer=GatewayObserver(
                metrics,
                access_log=config.access_log,
                probe_authority=settings.probe_authority.decode(),
                load=load,
                links=links,
                own_cluster=config.cluster,
            ),
            probe_authority=settings.probe_authority,
        )
        applier.engine, applier.pools = engine, pools
        drills.on_change = lambda: pools.retain(
            [ep for ep in table_endpoints(engine.table) if drills.reachable(ep)]
        )
        await _serve(
            config,
            identity=identity,
            status=status,
            metrics=metrics,
            engine=engine,
            pools=pools,
            watcher=watcher,
            admin_port_offset=admin_port_offset,
            reuse_port=reuse_port,
            signals=signals,
            freeze_gc=freeze_gc,
            load=(load, links),
            session=session,
            drills=drills,
            task_status=task_status,
        )


async def _start_listeners(
    nursery: trio.Nursery,
    config: GatewayConfig,
    *,
    engine: ForwardingEngine,
    identity: GatewayIdentity,
    drain: DrainSignal,
    reuse_port: bool,
    drills: GatewayDrills,
) -> tuple[int, int]:
    """Start the inbound (mTLS, h2, SPIFFE-checked) and outbound listeners; their bound ports."""
    listen = config.listeners
    limits = listener_limits(config)
    inbound: int = await nursery.start(
        partial(
            serve_listener,
            DelayedInbound(engine, drills),
            kind="inbound",
            host=listen.bind,
            port=listen.inbound_port,
            ssl_context=identity.listener_server_context(),
            verify_peer=_inbound_verifier(identity, drills),
            validate_inbound_headers=False,  # authenticated leg: skip h2's header validation
            limits=limits,
            drain=drain,
            reuse_port=reuse_port,
        )
    )
    outbound: int = await nursery.start(
        partial(
            serve_listener,
            engine,
            kind="outbound",
            host=listen.outbound_bind or listen.bind,
            port=listen.outbound_port,
            limits=limits,
            drain=drain,
            reuse_port=reuse_port,
        )
    )
    return inbound, outbound


async def _serve(
    config: GatewayConfig,
    *,
    identity: GatewayIdentity,
    status: GatewayStatus,
    metrics: GatewayMetrics,
    engine: ForwardingEngine,
    pools: UpstreamPools,
    watcher: RoutingWatcher,
    admin_port_offset: int,
    reuse_port: bool,
    signals: bool,
    freeze_gc: bool,
    load: tuple[ServiceLoadTracker, ServiceLoadTracker],
    session: FederationSession | None,
    drills: GatewayDrills,
    task_status: trio.TaskStatus[RunningGateway],
) -> None:
    listen = config.listeners
    drain = DrainSignal()
    admin_stop = trio.Event()
    admin_host = listen.admin_bind or listen.bind
    admin_sock = bind_admin_socket(
        admin_host, listen.admin_port + admin_port_offset if listen.admin_port else 0
    )
    async with trio.open_nursery() as services:
        stop = trio.Event()
        if signals:
            await services.start(_watch_signals, stop)
        if reuse_port:  # a supervised worker: drain if the supervisor disappears
            services.start_soon(stop_when_orphaned, os.getppid(), stop.set)
        admin = AdminApp(
            status, metrics.registry, live=lambda: live_view(engine, trio.current_time())
        )
        await services.start(serve_admin, admin, admin_sock, admin_stop)
        await services.start(partial(watcher.watch, on_tick=identity.reload_files))
        await services.start(
            partial(
                run_maintenance,
                config,
                engine=engine,
                pools=pools,
                status=status,
                metrics=metrics,
                identity=identity,
            )
        )
        async with trio.open_nursery() as listeners:
            ports = await _start_listeners(
                listeners,
                config,
                engine=engine,
                identity=identity,
                drain=drain,
                reuse_port=reuse_port,
                drills=drills,
            )
            running = RunningGateway(
                config, status, metrics, identity, engine, watcher,
                *ports, admin_sock.getsockname()[1], stop, *load,
            )  # fmt: skip
            running.drills = drills
            if session is not None:  # ready only once the persisted snapshot (if any) is active
                running.federation = await services.start(run_federation_link, session, running)
            status.listeners_up = True
            log.info(
                "gateway %s ready: inbound %s:%d, outbound %s:%d, admin %s:%d",
                config.cluster, listen.bind, ports[0], listen.outbound_bind or listen.bind,
                ports[1], admin_host, running.admin_port,
            )  # fmt: skip
            if freeze_gc:
                tune_gc()
            task_status.started(running)
            await stop.wait()
            status.draining = True
            engine.ready = False  # peers' probes now get 503 and move traffic away
            drain.drain()
        admin_stop.set()
        services.cancel_scope.cancel()
    log.info("gateway %s stopped", config.cluster)
