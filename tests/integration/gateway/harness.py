"""A local federation for tests: N clusters in separate trust domains, each with a real
gateway (``serve_gateway`` in-process), real demo backends and a TCP echo server, on 127.0.0.1.

Ports are reserved up front (bind to 0, read, close) because every routing model must name its
peers' inbound addresses before the gateways start.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import trio

from federation.model import RetryPolicy
from gateway.config import GatewayConfig
from gateway.probes import peer_endpoints
from gateway.run import RunningGateway, serve_gateway
from isthmus.runner import ClusterSpec, ServiceSpec, write_local_federation
from isthmus.runner.demo_backend import BackendStats, serve_demo_backend


def free_ports(count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


async def serve_echo(
    port: int, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
) -> None:
    """A TCP echo server (CONNECT tunnel target)."""

    async def echo(stream: trio.SocketStream) -> None:
        try:
            async for data in stream:
                await stream.send_all(data)
        except trio.BrokenResourceError:
            pass

    listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
    task_status.started(port)
    await trio.serve_listeners(echo, listeners)


@dataclass
class Cluster:
    spec: ClusterSpec
    config_path: Path
    backend_port: int
    echo_port: int
    stats: BackendStats = field(default_factory=BackendStats)
    gateway: RunningGateway | None = None
    gateway_scope: trio.CancelScope | None = None
    stopped: trio.Event = field(default_factory=trio.Event)
    backend_scope: trio.CancelScope | None = None

    @property
    def config(self) -> GatewayConfig:
        return GatewayConfig.from_file(self.config_path)

    @property
    def outbound(self) -> str:
        return f"http://127.0.0.1:{self.spec.outbound_port}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.spec.admin_port}"


@dataclass
class Federation:
    root: Path
    clusters: dict[str, Cluster]
    nursery: trio.Nursery

    def __getitem__(self, name: str) -> Cluster:
        return self.clusters[name]

    async def start_gateway(self, name: str) -> RunningGateway:
        cluster = self.clusters[name]
        scope = trio.CancelScope()
        cluster.stopped = trio.Event()

        async def run(
            task_status: trio.TaskStatus[RunningGateway] = trio.TASK_STATUS_IGNORED,
        ) -> None:
            try:
                with scope:
                    await serve_gateway(
                        cluster.config,
                        handle_signals=False,
                        freeze_gc=False,
                        task_status=task_status,
                    )
            finally:
                cluster.stopped.set()

        cluster.gateway = await self.nursery.start(run)
        cluster.gateway_scope = scope
        return cluster.gateway

    async def wait_peers_healthy(self, timeout_s: float = 5.0) -> None:
        """Until every running gateway's last probe round found every peer gateway ready."""
        with trio.fail_after(timeout_s):
            while True:
                running = [c.gateway for c in self.clusters.values() if c.gateway is not None]
                if all(g.status.probe_rounds >= 2 for g in running) and all(
                    all(g.status.peer_health.get(ep.key) for ep in peer_endpoints(g.engine.table))
                    for g in running
                ):
                    return
                await trio.sleep(0.05)

    async def stop_gateway(self, name: str) -> None:
        """Graceful: drain (peers' probes see 503), then wait until the gateway returned."""
        cluster = self.clusters[name]
        assert cluster.gateway is not None
        cluster.gateway.stop()
        await cluster.stopped.wait()
        cluster.gateway = None

    def kill_gateway(self, name: str) -> None:
        """Abrupt death: every socket of the gateway closes at once (no drain)."""
        cluster = self.clusters[name]
        assert cluster.gateway_scope is not None
        cluster.gateway_scope.cancel()
        cluster.gateway = None

    async def start_backend(self, name: str) -> None:
        cluster = self.clusters[name]
        scope = trio.CancelScope()

        async def run(task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
            with scope:
                await serve_demo_backend(
                    name,
                    "127.0.0.1",
                    cluster.backend_port,
                    stats=cluster.stats,
                    task_status=task_status,
                )

        await self.nursery.start(run)
        cluster.backend_scope = scope

    def kill_backend(self, name: str) -> None:
        scope = self.clusters[name].backend_scope
        assert scope is not None
        scope.cancel()


PROBE_S = 0.25
CLOUDS = [("aws", "us-east-1"), ("gcp", "europe-west1"), ("azure", "westeurope")]


def default_services(
    names: Sequence[str], ports: dict[str, tuple[int, int]], retry: RetryPolicy | None = None
) -> list[ServiceSpec]:
    """``catalog.shop``: backends in every cluster but the first, which must cross; order =
    the listed clusters. ``echo.tcp``: CONNECT target in the second cluster."""
    backends: dict[str, tuple[str, ...]] = {
        name: (f"127.0.0.1:{ports[name][0]}",) for name in names[1:]
    }
    tcp: dict[str, tuple[str, ...]] = {names[1]: (f"127.0.0.1:{ports[names[1]][1]}",)}
    return [
        ServiceSpec("catalog.shop", backends, order=tuple(names[1:]), retry=retry or RetryPolicy()),
        ServiceSpec("echo.tcp", {}, order=(names[1],), tcp=tcp),
    ]


@asynccontextmanager
async def open_federation(
    root: Path,
    names: Sequence[str] = ("east", "west"),
    *,
    services: Sequence[ServiceSpec] | None = None,
    retry: RetryPolicy | None = None,
) -> AsyncIterator[Federation]:
    """Start every cluster's backend, echo server and gateway; stop them all on exit."""
    ports = free_ports(5 * len(names))
    specs, app_ports = [], {}
    for i, name in enumerate(names):
        base = ports[5 * i : 5 * i + 5]
        cloud, region = CLOUDS[i % len(CLOUDS)]
        specs.append(ClusterSpec(name, cloud, region, base[0], base[1], base[2]))
        app_ports[name] = (base[3], base[4])
    svc = list(services) if services is not None else default_services(names, app_ports, retry)
    # faster probes and file polls than the 1 s defaults: the same behaviour, sooner
    configs = write_local_federation(
        root, specs, svc, now=datetime.now(UTC), probe_interval_s=PROBE_S
    )
    async with trio.open_nursery() as nursery:
        fed = Federation(
            root,
            {
                s.name: Cluster(s, configs[s.name], app_ports[s.name][0], app_ports[s.name][1])
                for s in specs
            },
            nursery,
        )
        for name in names:
            await fed.start_backend(name)
            await nursery.start(serve_echo, app_ports[name][1])
        for name in names:
            await fed.start_gateway(name)
        await fed.wait_peers_healthy()
        try:
            yield fed
        finally:
            nursery.cancel_scope.cancel()
