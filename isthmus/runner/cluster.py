"""One simulated cluster of ``isthmus up``: its federated gateway and its service replicas.

Files live under ``<root>/<cluster>/`` (CA, SVID, ``gateway.yaml``, ``routing.yaml`` and the
gateway's federation state). The routing file declares only this cluster's exports — the
replicas running here — and the federation turns every cluster's reports into routes.

:meth:`LocalCluster.serve` owns the gateway and the replicas in one nursery; it returns when
:meth:`LocalCluster.kill` stopped it (gateway drained, replicas closed). Serving again (heal)
reuses the same identity and the stored federation join, so no token is needed twice.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import trio
import yaml

from federation.trust import CertificateAuthority, X509Svid, issue_x509_svid, run_svid_rotation
from federation.trust.files import PUBLIC_MODE, write_file
from gateway.config import GatewayConfig
from gateway.run import RunningGateway, serve_gateway
from isthmus.runner.config import UpCluster, UpConfig
from isthmus.runner.demo_backend import BackendStats, serve_demo_backend
from isthmus.runner.topology import (
    ClusterSpec,
    ServiceSpec,
    routing_model_for,
    write_local_federation,
    write_routing_file,
)

log = logging.getLogger(__name__)
SVID_TTL = timedelta(hours=1)
DRAIN_S = 1.0
#: A replica leaves the routing file this long (in report intervals) before it stops, so
#: peers stop sending to it first.
RETIRE_INTERVALS = 2


@dataclass
class Replica:
    service: str
    port: int
    scope: trio.CancelScope
    stats: BackendStats = field(default_factory=BackendStats)


class LocalCluster:
    """A cluster's files, gateway and replicas; see the module docstring."""

    def __init__(self, decl: UpCluster, config: UpConfig, root: Path, offset: int) -> None:
        self.decl = decl
        self.name = decl.name
        self.spec: ClusterSpec = decl.spec(offset)
        self._config = config
        self._offset = offset
        self.directory = root / decl.name
        self.gateway_yaml = self.directory / "gateway.yaml"
        self.gateway: RunningGateway | None = None
        self.replicas: dict[str, Replica] = {}
        self._retiring: dict[str, Replica] = {}
        self.wanted: set[str] = set()
        self.killed = False
        self._scope: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None
        self._version = 1
        self._done = trio.Event()

    # -- files --------------------------------------------------------------------------------
    def write_files(self, now: datetime) -> None:
        """CA, SVID, bundle, ``gateway.yaml`` (federated mode) and an empty routing file."""
        write_local_federation(
            self.directory.parent, [self.spec], [], now=now, svid_ttl=SVID_TTL,
            drain_timeout_s=DRAIN_S, probe_interval_s=self._config.probe_interval_s,
        )  # fmt: skip
        doc = yaml.safe_load(self.gateway_yaml.read_text())
        doc["access_log"] = False
        doc["federation"] = {
            "state_dir": str(self.directory / "state"),
            "report_interval_s": self._config.report_interval_s,
            "long_poll_s": 20,
            "backoff_base_s": 0.1,
            "backoff_cap_s": 1.0,
            "capacity": self.decl.capacity,
        }
        write_file(self.gateway_yaml, yaml.safe_dump(doc).encode(), mode=PUBLIC_MODE)
        self._write_routing()

    def replica_port(self, service: str) -> int:
        names = [s.name for s in self._config.services]
        return self.decl.replica_port(names.index(service), self._offset)

    def _write_routing(self) -> None:
        services = [
            ServiceSpec(name, {self.name: (f"127.0.0.1:{self.replica_port(name)}",)})
            for name in sorted(self.replicas)
        ]
        self._version += 1
        model = routing_model_for(self.spec, [self.spec], services, version=self._version)
        write_routing_file(self.directory / "routing.yaml", model)

    # -- lifecycle ----------------------------------------------------------------------------
    async def serve(
        self,
        join_token: str | None,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Start the wanted replicas, then the gateway (joining with ``join_token`` the first
        time); ``started`` once the gateway is ready; return after :meth:`kill`."""
        self.killed = False
        self._done = trio.Event()
        try:
            async with trio.open_nursery() as nursery:
                self._scope, self._nursery = nursery.cancel_scope, nursery
                for service in sorted(self.wanted):
                    await self._start_replica(service)
                self._write_routing()
                config = GatewayConfig.from_file(self.gateway_yaml)
                self.gateway = await nursery.start(
                    partial(serve_gateway, config, join_token=join_token, handle_signals=False,
                            freeze_gc=False)
                )  # fmt: skip
                nursery.start_soon(rotate_svid, self.directory, self.gateway)
                task_status.started()
        finally:
            self.gateway, self._nursery, self._scope = None, None, None
            self.replicas.clear()
            self._retiring.clear()
            self._done.set()

    async def kill(self) -> None:
        """Drain the gateway (at most :data:`DRAIN_S` + 0.5 s), stop every replica, and wait
        until :meth:`serve` returned. A stopped cluster is left as it is."""
        self.killed = True
        if self.gateway is not None:
            self.gateway.stop()
        if self._scope is not None:
            self._scope.deadline = trio.current_time() + DRAIN_S + 0.5
            for replica in self.replicas.values():
                replica.scope.cancel()
            await self._done.wait()

    @property
    def running(self) -> bool:
        return self.gateway is not None and not self.killed

    # -- replicas -----------------------------------------------------------------------------
    async def _start_replica(self, service: str) -> None:
        assert self._nursery is not None
        port = self.replica_port(service)
        scope = trio.CancelScope()
        replica = Replica(service, port, scope)

        async def run(task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
            with scope:
                await serve_demo_backend(
                    self.name, "127.0.0.1", port, stats=replica.stats, task_status=task_status
                )

        await self._nursery.start(run)
        self.replicas[service] = replica
        log.info("%s: replica of %s on 127.0.0.1:%d", self.name, service, port)

    async def place(self, services: set[str]) -> bool:
        """Run exactly ``services`` here: start the new replicas and export them; un-export the
        retired ones and stop them :data:`RETIRE_INTERVALS` later. Returns whether anything
        changed. A killed cluster only records the wish (heal starts them)."""
        self.wanted = set(services)
        if not self.running or self._nursery is None:
            return False
        new = sorted(services - set(self.replicas))
        old = sorted(set(self.replicas) - services)
        if not new and not old:
            return False
        for service in new:
            back = self._retiring.pop(service, None)  # still serving: keep it
            if back is not None:
                self.replicas[service] = back
            else:
                await self._start_replica(service)
        for service in old:
            self._retiring[service] = self.replicas.pop(service)
        self._write_routing()
        if old:
            self._nursery.start_soon(self._retire, old)
        return True

    async def _retire(self, services: list[str]) -> None:
        await trio.sleep(RETIRE_INTERVALS * self._config.report_interval_s)
        for service in services:
            replica = self._retiring.pop(service, None)
            if replica is not None:
                replica.scope.cancel()


async def rotate_svid(directory: Path, running: RunningGateway) -> None:
    """Renew the gateway's SVID from its local CA at half-life: the new SVID is written to
    ``directory`` (so a restart uses it) and swapped into the running gateway at once (new
    connections present it). Never returns."""
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
