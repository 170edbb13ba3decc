"""The interim ``isthmus up``: two local clusters, each with its own CA, gateway and demo
backend, all in this process, on loopback.

``east`` (pretending to run in AWS us-east-1) runs ``checkout.shop``; ``west`` (GCP
europe-west1) runs ``catalog.shop``. Each cluster's apps reach the other's service through the
two gateways over mTLS, so ``curl -x http://127.0.0.1:15001 http://catalog.shop.global/``
crosses from east to west. Files (CAs, SVIDs, bundles, gateway and routing configs) are
regenerated under ``<home>/local`` on every start. A later issue grows this into the full
embedded federation.
"""

from __future__ import annotations

import logging
import random
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import trio

from federation.trust import CertificateAuthority, X509Svid, issue_x509_svid, run_svid_rotation
from gateway.config import GatewayConfig
from gateway.run import RunningGateway, serve_gateway
from isthmus.errors import IsthmusError
from isthmus.runner.demo_backend import serve_demo_backend
from isthmus.runner.topology import ClusterSpec, ServiceSpec, write_local_federation

log = logging.getLogger(__name__)
STOP_GRACE_S = 5.0
SVID_TTL = timedelta(hours=1)
DRAIN_S = 1.0


@dataclass(frozen=True)
class LocalCluster:
    spec: ClusterSpec
    backend_port: int
    service: str


def default_clusters(offset: int = 0) -> list[LocalCluster]:
    """East on the design's default ports, west 10000 above; ``offset`` shifts everything."""

    def spec(name: str, cloud: str, region: str, base: int) -> ClusterSpec:
        return ClusterSpec(
            name, cloud, region, 15443 + base + offset, 15001 + base + offset, 15000 + base + offset
        )

    return [
        LocalCluster(spec("east", "aws", "us-east-1", 0), 18080 + offset, "checkout.shop"),
        LocalCluster(spec("west", "gcp", "europe-west1", 10000), 28080 + offset, "catalog.shop"),
    ]


class PortInUse(IsthmusError):
    """A port ``isthmus up`` needs is taken; the message names it and the way out."""


def cluster_ports(clusters: list[LocalCluster]) -> list[int]:
    """Every TCP port the local clusters listen on."""
    return [
        port
        for c in clusters
        for port in (c.spec.inbound_port, c.spec.outbound_port, c.spec.admin_port, c.backend_port)
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


def write_example(home: Path, clusters: list[LocalCluster]) -> dict[str, Path]:
    """Generate every file under ``home/local``; returns cluster -> gateway.yaml."""
    services = [
        ServiceSpec(c.service, {c.spec.name: (f"127.0.0.1:{c.backend_port}",)}) for c in clusters
    ]
    return write_local_federation(
        home / "local",
        [c.spec for c in clusters],
        services,
        now=datetime.now(UTC),
        svid_ttl=SVID_TTL,
        drain_timeout_s=DRAIN_S,
    )


def banner(home: Path, clusters: list[LocalCluster]) -> str:
    """What ``isthmus up`` prints once everything is ready."""
    lines = [f"isthmus up: {len(clusters)} local clusters running (files in {home / 'local'})", ""]
    for c in clusters:
        s = c.spec
        lines.append(
            f"  {s.name:<5} {s.cloud}/{s.region:<13} runs {c.service:<14} "
            f"outbound 127.0.0.1:{s.outbound_port}  inbound 127.0.0.1:{s.inbound_port}  "
            f"admin http://127.0.0.1:{s.admin_port}"
        )
    east, west = clusters[0], clusters[1]
    lines += [
        "",
        "Try it (an app in one cluster calling a service that runs in the other):",
        f"  curl -x http://127.0.0.1:{east.spec.outbound_port} http://{west.service}.global/",
        f"  curl -x http://127.0.0.1:{west.spec.outbound_port} http://{east.service}.global/",
        f"  curl http://127.0.0.1:{east.spec.admin_port}/metrics",
        "",
        "Ctrl-C stops everything.",
    ]
    return "\n".join(lines)


async def rotate_svid(directory: Path, running: RunningGateway) -> None:
    """Renew the gateway's SVID from its local CA at half-life (A's rotation task): the new
    SVID is written to ``directory`` (so a restart uses it) and swapped into the running
    gateway at once (new connections present it). Never returns."""
    ca = CertificateAuthority.load(directory / "ca")
    spiffe_id = running.identity.svid.spiffe_id

    async def issue() -> X509Svid:
        return issue_x509_svid(ca, spiffe_id, now=datetime.now(UTC), ttl=SVID_TTL)

    def install(svid: X509Svid) -> None:
        svid.save(directory)
        running.identity.update(svid=svid)
        log.info("rotated %s, valid until %s", svid.spiffe_id, svid.not_after.isoformat())

    await run_svid_rotation(
        running.identity.svid,
        issue,
        install,
        rng=random.Random(),  # noqa: S311 - jitter, not crypto
    )


async def run_up(
    home: Path,
    *,
    offset: int = 0,
    on_ready: Callable[[str], None] = print,
    task_status: trio.TaskStatus[list[RunningGateway]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Generate, start, print the banner, run until SIGINT/SIGTERM (main thread only) or
    cancellation; on a signal, drain the gateways (cut after :data:`STOP_GRACE_S`), stop the
    backends and return."""
    clusters = default_clusters(offset)
    check_ports_free(cluster_ports(clusters))
    configs = write_example(home, clusters)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as backends:
            for c in clusters:
                await backends.start(
                    partial(serve_demo_backend, c.spec.name, "127.0.0.1", c.backend_port)
                )
            async with trio.open_nursery() as gateway_nursery:
                gateways: list[RunningGateway] = []
                for c in clusters:
                    config = GatewayConfig.from_file(configs[c.spec.name])
                    gateways.append(
                        await gateway_nursery.start(
                            partial(serve_gateway, config, handle_signals=False)
                        )
                    )
                for c, running in zip(clusters, gateways, strict=True):
                    backends.start_soon(rotate_svid, home / "local" / c.spec.name, running)
                on_ready(banner(home, clusters))
                task_status.started(gateways)
                async for signum in signals:
                    log.info("%s: stopping", signal.Signals(signum).name)
                    break
                for running in gateways:
                    running.stop()
                gateway_nursery.cancel_scope.deadline = trio.current_time() + STOP_GRACE_S
            backends.cancel_scope.cancel()
