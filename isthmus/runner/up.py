"""``isthmus up``: the whole federation on one machine, in this process, on loopback.

One trio nursery owns everything: the federation service (SQLite in ``<home>/up/federation``),
one :class:`~isthmus.runner.cluster.LocalCluster` per configured cluster (its own CA and trust
domain, a gateway that joins the federation with a real single-use token, replicas of the
services placed there), the placement follower, the traffic generator and the local control
endpoint ``isthmus drill`` talks to. Files under ``<home>/up`` are regenerated on every start.

Ready means: every gateway is up and every (cluster, service) flow of the traffic generator
got an answer. A second ``isthmus up`` on the same state directory stops at the lock file
(:class:`~isthmus.runner.lock.UpAlreadyRunning`); a taken port stops it before anything starts
(:class:`PortInUse`). SIGINT/SIGTERM (main thread only) drain the gateways and stop everything.
"""

from __future__ import annotations

import logging
import shutil
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import trio

from federation.service.auth import dashboard_ticket
from federation.service.server import FederationConfig, RunningFederation, serve_federation
from isthmus.errors import IsthmusError
from isthmus.runner.cluster import DRAIN_S, LocalCluster, rotate_svid
from isthmus.runner.config import DEFAULT_CONFIG, UpConfig
from isthmus.runner.control import new_control_token, serve_control
from isthmus.runner.federation_admin import FederationAdmin
from isthmus.runner.local import LocalFederation
from isthmus.runner.lock import UpLock, hold_up_lock
from isthmus.runner.topology import ClusterSpec

log = logging.getLogger(__name__)
DASHBOARD_TICKET_TTL_S = 12 * 3600
__all__ = ["NotReady", "PortInUse", "UpReady", "check_ports_free", "rotate_svid", "run_up"]
READY_TIMEOUT_S = 45.0


class PortInUse(IsthmusError):
    """A port ``isthmus up`` needs is taken; the message names it and the way out."""


class NotReady(IsthmusError):
    """The federation did not become ready in time; the message says what was missing."""


@dataclass(frozen=True)
class ClusterPorts:
    """A default cluster's listener ports (kept for callers that only need the ports)."""

    spec: ClusterSpec
    replica_ports: tuple[int, ...]


def default_config() -> UpConfig:
    return UpConfig.from_file(DEFAULT_CONFIG)


def default_clusters(offset: int = 0) -> list[ClusterPorts]:
    """The bundled example's clusters, every port shifted by ``offset``."""
    config = default_config()
    return [
        ClusterPorts(
            c.spec(offset), tuple(c.replica_port(i, offset) for i in range(len(config.services)))
        )
        for c in config.clusters
    ]


def cluster_ports(clusters: list[ClusterPorts]) -> list[int]:
    """Every TCP port the clusters listen on."""
    return [
        port
        for c in clusters
        for port in (c.spec.inbound_port, c.spec.outbound_port, c.spec.admin_port, *c.replica_ports)
    ]


def check_ports_free(ports: list[int]) -> None:
    """Raise :class:`PortInUse` for the first port on 127.0.0.1 that cannot be bound."""
    for port in ports:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError as err:
                raise PortInUse(
                    f"port {port} on 127.0.0.1 is in use ({err.strerror}); stop what uses it "
                    "or run 'isthmus up --port-offset N' to shift every port by N"
                ) from err


@dataclass
class UpReady:
    """What ``isthmus up`` hands its caller (and prints) once ready."""

    local: LocalFederation
    federation: RunningFederation
    control_url: str
    control_token: str
    dashboard_url: str
    started_in_s: float


def _fresh(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True, mode=0o700)


async def _start_federation(
    nursery: trio.Nursery, config: UpConfig, root: Path, offset: int
) -> RunningFederation:
    fed_config = FederationConfig(
        listen_port=config.federation_port + offset,
        state_dir=root / "federation",
        report_interval_s=config.report_interval_s,
        missed_intervals=config.missed_intervals,
        long_poll_s=20,
    )
    running: RunningFederation = await nursery.start(serve_federation, fed_config)
    return running


async def _start_clusters(
    nursery: trio.Nursery,
    config: UpConfig,
    clusters: dict[str, LocalCluster],
    fed: RunningFederation,
    progress: Callable[[str], None],
) -> None:
    now = datetime.now(UTC)
    placement = {s.name: set(s.clusters) for s in config.services}
    for cluster in clusters.values():
        cluster.write_files(now)
        cluster.wanted = {svc for svc, where in placement.items() if cluster.name in where}
        token = await fed.service.create_join_token(cluster.name)
        await nursery.start(cluster.serve, token)
        spec = cluster.spec
        progress(
            f"cluster {cluster.name} ({cluster.decl.cloud}/{cluster.decl.region}) joined: gateway "
            f"outbound :{spec.outbound_port} inbound :{spec.inbound_port} admin :{spec.admin_port}"
            f", replicas {', '.join(sorted(cluster.wanted)) or 'none'}"
        )


async def _wait_traffic(local: LocalFederation, timeout_s: float) -> None:
    """Until every flow has an answer; raise :class:`NotReady` naming the silent ones."""
    with trio.move_on_after(timeout_s):
        while True:
            flows = local.traffic.flows.values()
            if flows and all(f.ok > 0 for f in flows):
                return
            await trio.sleep(0.05)
    silent = [
        f"{f.source}->{f.service} ({list(f.errors)[-1:]})"
        for f in local.traffic.flows.values()
        if not f.ok
    ]
    raise NotReady(f"no answer after {timeout_s:.0f}s for: {', '.join(silent)}")


def banner(ready: UpReady) -> str:
    """What ``isthmus up`` prints once everything is ready."""
    local = ready.local
    first = next(iter(local.clusters.values()))
    remote = next(
        (s.name for s in local.config.services if first.name not in s.clusters),
        local.config.services[0].name if local.config.services else "",
    )
    answered = ", ".join(sorted(local.first_answers.get((first.name, remote), ()))) or "?"
    lines = [
        f"isthmus up: {len(local.clusters)} clusters ready in {ready.started_in_s:.1f}s",
        f"  dashboard   {ready.dashboard_url}",
        f"  federation  {ready.federation.url}",
        f"  admin token {ready.federation.state_dir / 'admin.token'}",
        "",
        f"Cross clouds: an app in {first.name} ({first.decl.cloud}) calls {remote}, which runs "
        f"only elsewhere (answered by {answered}):",
        f"  curl -x http://127.0.0.1:{first.spec.outbound_port} http://{remote}.global/",
        "",
        "Break it on purpose (in another terminal):",
        f"  isthmus drill kill-cluster {list(local.clusters)[min(1, len(local.clusters) - 1)]}",
        "  isthmus drill heal",
        "",
        "Ctrl-C stops everything.",
    ]
    return "\n".join(lines)


async def _watch_signals(
    stop: trio.Event,
    startup: trio.CancelScope,
    everything: trio.CancelScope,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """First SIGINT/SIGTERM: set ``stop`` (and abandon a start-up still in progress); a second
    one: cancel ``everything`` at once, no drain."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for signum in signals:
            if stop.is_set():
                everything.cancel()
                return
            log.info("%s: stopping", signal.Signals(signum).name)
            stop.set()
            startup.cancel()


async def run_up(
    home: Path,
    *,
    config: UpConfig | None = None,
    offset: int = 0,
    progress: Callable[[str], None] = print,
    on_ready: Callable[[str], None] = print,
    handle_signals: bool = True,
    task_status: trio.TaskStatus[UpReady] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Start everything (see the module docstring), print the banner, run until a signal (when
    ``handle_signals``) or cancellation, then drain the gateways and stop. A signal during
    start-up stops at once and returns. Raises :class:`UpAlreadyRunning`, :class:`PortInUse`
    or :class:`NotReady`."""
    config = config or default_config()
    with hold_up_lock(home) as lock:
        check_ports_free(config.ports(offset))
        ready: UpReady | None = None
        async with trio.open_nursery() as nursery:
            stop, startup = trio.Event(), trio.CancelScope()
            if handle_signals:
                await nursery.start(_watch_signals, stop, startup, nursery.cancel_scope)
            with startup:
                ready = await _start(
                    nursery, home, config=config, offset=offset, lock=lock, progress=progress
                )
            if ready is None:  # interrupted while starting
                nursery.cancel_scope.cancel()
                return
            on_ready(banner(ready))
            task_status.started(ready)
            await stop.wait()
            for cluster in ready.local.clusters.values():
                if cluster.gateway is not None:
                    cluster.gateway.stop()
            nursery.cancel_scope.deadline = trio.current_time() + DRAIN_S + 0.5
        if ready is not None:
            with trio.CancelScope(shield=True):
                await ready.local.admin.aclose()


async def _start(
    nursery: trio.Nursery,
    home: Path,
    *,
    config: UpConfig,
    offset: int,
    lock: UpLock,
    progress: Callable[[str], None],
) -> UpReady:
    started = time.perf_counter()
    root = home / "up"
    _fresh(root)
    fed = await _start_federation(nursery, config, root, offset)
    progress(f"federation service ready at {fed.url} (SQLite in {fed.state_dir})")
    admin = FederationAdmin(fed.url, fed.ca_pem, fed.admin_token)
    declared = [s.name for s in config.services if await admin.declare_service(s.name, s.policy)]
    if declared:
        progress(f"services declared to the placement engine: {', '.join(declared)}")
    clusters = {c.name: LocalCluster(c, config, root, offset) for c in config.clusters}
    await _start_clusters(nursery, config, clusters, fed, progress)
    local = LocalFederation(config, clusters, admin, nursery)
    token = new_control_token()
    control_url = await nursery.start(serve_control, local, token)
    # a view-only login ticket for the next 12 hours, not the admin token itself
    expires = int(time.time()) + DASHBOARD_TICKET_TTL_S
    dashboard = f"{fed.url}/ui/login?ticket={dashboard_ticket(fed.admin_token, expires)}"
    nursery.start_soon(local.follow_placement)
    local.start_traffic()
    progress(f"traffic generator: {config.traffic.rate_per_s:g} req/s per cluster per service")
    await _wait_traffic(local, READY_TIMEOUT_S)
    answered = {key: set(flow.answered_by) for key, flow in local.traffic.flows.items()}
    local.traffic.reset()
    local.first_answers = answered
    ready = UpReady(local, fed, control_url, token, dashboard, time.perf_counter() - started)
    lock.publish(
        {
            "state": "ready",
            "control_url": control_url,
            "control_token": token,
            "federation_url": fed.url,
            "federation_state_dir": str(fed.state_dir),
            "dashboard_url": dashboard,
            "home": str(home),
        }
    )
    return ready
