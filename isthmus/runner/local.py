"""The running local federation of ``isthmus up``: clusters, placement follower, traffic, drills.

:class:`LocalFederation` is created by :func:`isthmus.runner.up.run_up` once the federation
service is up; it owns nothing itself — every task runs in the nursery it is given (the
runner's). Drills (:meth:`kill_cluster`, :meth:`partition`, :meth:`slow`, :meth:`heal`) return
a one-line description of what they did and post it to the federation's timeline.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import Any

import trio

from isthmus.errors import IsthmusError
from isthmus.runner.cluster import LocalCluster
from isthmus.runner.config import UpConfig
from isthmus.runner.federation_admin import FederationAdmin
from isthmus.runner.traffic import TrafficGenerator, run_flow

log = logging.getLogger(__name__)


def _is_running(cluster: LocalCluster) -> bool:
    return cluster.running


class DrillError(IsthmusError):
    """A drill that cannot run (unknown cluster, cluster already down, ...)."""


class LocalFederation:
    """See the module docstring. ``clusters`` by name, in config order."""

    def __init__(
        self,
        config: UpConfig,
        clusters: dict[str, LocalCluster],
        admin: FederationAdmin,
        nursery: trio.Nursery,
    ) -> None:
        self.config = config
        self.clusters = clusters
        self.admin = admin
        self.traffic = TrafficGenerator()
        self.placement_source = "static"
        self.drill_log: list[dict[str, Any]] = []
        #: Which clusters answered each flow before "ready" (the banner names them).
        self.first_answers: dict[tuple[str, str], set[str]] = {}
        self._nursery = nursery
        self._lock = trio.Lock()
        self._partitions: set[frozenset[str]] = set()
        self._slow: dict[str, float] = {}

    # -- placement -----------------------------------------------------------------------------
    def static_placement(self) -> dict[str, set[str]]:
        return {s.name: set(s.clusters) for s in self.config.services}

    async def apply_placement(self, placement: dict[str, set[str]]) -> None:
        """Make every cluster run exactly the replicas ``placement`` gives it (services we do
        not run are ignored)."""
        known = {s.name for s in self.config.services}
        # A service placed nowhere (unschedulable) keeps the replicas it has: retiring the last
        # ones would turn a placement problem into an outage.
        current = {
            svc: {c.name for c in self.clusters.values() if svc in c.wanted} for svc in known
        }
        placement = {svc: placement.get(svc) or current[svc] for svc in known}
        for cluster in self.clusters.values():
            here = {svc for svc, where in placement.items() if cluster.name in where}
            if await cluster.place(here):
                log.info("placement: %s runs %s", cluster.name, sorted(here) or "nothing")

    async def follow_placement(self) -> None:
        """Every report interval: the federation's placement when it has one, else the static
        one from the config. Never returns."""
        while True:
            placement = await self.admin.placement()
            source = "federation" if placement else "static"
            if source != self.placement_source:
                log.info("placement now from the %s", source)
                self.placement_source = source
            try:
                async with self._lock:
                    await self.apply_placement(placement or self.static_placement())
            except OSError as err:  # a replica port still held: try again next interval
                log.warning("placement not applied yet: %s", err)
            await trio.sleep(self.config.report_interval_s)

    # -- traffic -------------------------------------------------------------------------------
    def start_traffic(self) -> None:
        """One flow per (cluster, service) in the runner's nursery."""
        settings = self.config.traffic
        for cluster in self.clusters.values():
            for service in self.config.services:
                self._nursery.start_soon(
                    partial(
                        run_flow,
                        self.traffic,
                        (cluster.name, service.name),
                        cluster.spec.outbound_port,
                        rate_per_s=settings.rate_per_s,
                        timeout_s=settings.timeout_s,
                        source_up=partial(_is_running, cluster),
                    )
                )

    # -- drills --------------------------------------------------------------------------------
    def _cluster(self, name: str) -> LocalCluster:
        cluster = self.clusters.get(name)
        if cluster is None:
            known = ", ".join(self.clusters)
            raise DrillError(f"no cluster {name!r} in this federation (clusters: {known})")
        return cluster

    async def _record(
        self, kind: str, subject: str, message: str, **detail: str | int | float | bool
    ) -> str:
        entry = {"at": time.time(), "kind": kind, "subject": subject, "message": message}
        self.drill_log.append({**entry, **detail})
        log.warning("drill: %s", message)
        await self.admin.post_event(kind, subject, message, **detail)
        return message

    async def kill_cluster(self, name: str) -> str:
        """Stop the cluster's gateway (drained) and replicas; its lease then expires."""
        cluster = self._cluster(name)
        async with self._lock:
            if not cluster.running:
                raise DrillError(
                    f"cluster {name} is already down; 'isthmus drill heal' restarts it"
                )
            await cluster.kill()
        lease = self.config.report_interval_s * self.config.missed_intervals
        return await self._record(
            "kill-cluster",
            name,
            f"killed cluster {name}: gateway and {len(cluster.wanted)} replica(s) stopped; its "
            f"lease expires within ~{lease:.1f}s and traffic moves to the other clusters",
        )

    def _gateway_drills(self, name: str) -> Any:
        cluster = self._cluster(name)
        if cluster.gateway is None:
            raise DrillError(f"cluster {name} is down; 'isthmus drill heal' restarts it first")
        return cluster.gateway.drills

    async def partition(self, a: str, b: str) -> str:
        """A's and B's gateways refuse each other (both ways); each reports the link down."""
        if a == b:
            raise DrillError("partition needs two different clusters")
        drills_a, drills_b = self._gateway_drills(a), self._gateway_drills(b)
        drills_a.partition(b)
        drills_b.partition(a)
        self._partitions.add(frozenset((a, b)))
        return await self._record(
            "partition",
            f"{a},{b}",
            f"partitioned {a} <-> {b}: their gateways refuse each other's mTLS connections; "
            "traffic between them goes through the other clusters' replicas",
        )

    async def slow(self, name: str, delay_s: float) -> str:
        """Every request ``name``'s gateway serves from peers waits ``delay_s`` first."""
        self._gateway_drills(name).slow(delay_s)
        self._slow[name] = delay_s
        return await self._record(
            "slow",
            name,
            f"slowed cluster {name}: +{delay_s * 1000:.0f} ms on every request its gateway serves",
            delay_ms=round(delay_s * 1000),
        )

    async def heal(self) -> str:
        """Undo every drill: restart killed clusters (same identity and state), lift
        partitions and delays."""
        restarted: list[str] = []
        async with self._lock:
            for cluster in self.clusters.values():
                if not cluster.running:
                    await self._nursery.start(cluster.serve, None)
                    restarted.append(cluster.name)
                elif cluster.gateway is not None:
                    cluster.gateway.drills.heal()
        lifted = len(self._partitions) + len(self._slow)
        self._partitions.clear()
        self._slow.clear()
        what = f"restarted {', '.join(restarted)}" if restarted else "no cluster was down"
        return await self._record(
            "heal", ",".join(restarted), f"healed: {what}; {lifted} partition/slow drill(s) lifted"
        )

    def describe(self) -> dict[str, Any]:
        """The state the control endpoint serves (``isthmus drill status``, tests)."""
        return {
            "placement_source": self.placement_source,
            "clusters": {
                c.name: {
                    "running": c.running,
                    "replicas": sorted(c.replicas),
                    "outbound": c.spec.outbound_port,
                    "admin": c.spec.admin_port,
                    "drills": c.gateway.drills.describe() if c.gateway is not None else None,
                }
                for c in self.clusters.values()
            },
            "partitions": sorted(sorted(p) for p in self._partitions),
            "slow": self._slow,
            "traffic": self.traffic.describe(),
            "drills": self.drill_log,
        }
