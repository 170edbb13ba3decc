"""CPU cost of the federation's snapshot build at N clusters, measured in this process.

The publisher's rebuild runs ``plan_and_encode`` (every cluster's routing as parts and its
digest, and the stored form of the changed ones), stores them and serves each as a
:class:`~federation.service.served.ServedSnapshot` whose bytes are built when a watcher asks.
This probe runs ``plan_and_encode`` and then what a stream push asks of every served snapshot
(its routing bytes at a version, "stamp" below) on the shape of data the simulated fleet
produces (own trust domain and CA root, one exported service with one endpoint, every cluster
healthy), for a first build in which every snapshot is new. Pure core only: no store, no
HTTP, no event loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench._convergence_gateways import SERVICE, Identity
from federation.model.api import EndpointHealth, ServiceHealth
from federation.model.routing import Locality
from federation.service.leases import Reachability
from federation.service.placement_routes import PlannedTraffic
from federation.service.served import ServedSnapshot
from federation.service.snapshot_bytes import SnapshotEncoder
from federation.service.snapshot_plan import RebuildInput, SnapshotPlanner, plan_and_encode
from federation.service.snapshots import MemberView


@dataclass(frozen=True)
class BuildCost:
    clusters: int
    plan_ms_per_cluster: float
    stamp_ms_per_cluster: float
    snapshot_bytes: int

    @property
    def full_rebuild_s(self) -> float:
        """CPU seconds for one rebuild in which every cluster's snapshot changes."""
        return self.clusters * (self.plan_ms_per_cluster + self.stamp_ms_per_cluster) / 1000

    def line(self) -> str:
        return (
            "  snapshot build core (this process, the publisher's functions): plan and "
            f"encode {self.plan_ms_per_cluster:.2f} ms + stamp "
            f"{self.stamp_ms_per_cluster:.2f} ms per cluster -> {self.full_rebuild_s:.2f} s of "
            f"CPU per rebuild when every snapshot changes ({self.snapshot_bytes / 1024:.0f} KiB "
            "each)"
        )


def _members(identities: list[Identity]) -> list[MemberView]:
    members = []
    for ident in identities:
        endpoint = EndpointHealth(address=ident.address)
        service = ServiceHealth(name=SERVICE, endpoints=(endpoint,), allowed_sources=("*",))
        members.append(
            MemberView(
                ident.name,
                ident.trust_domain,
                Locality(cloud="local", region=ident.region),
                (ident.address,),
                (service,),
            )
        )
    return members


def measure_build(identities: list[Identity]) -> BuildCost:
    """Time ``plan_and_encode`` and each served snapshot's routing bytes for every cluster
    (a first build)."""
    members = _members(identities)
    reach = Reachability({m.name: "healthy" for m in members})
    bundles = {ident.trust_domain: ident.bundle.to_json() for ident in identities}
    world = RebuildInput(members, reach, bundles, {}, PlannedTraffic())
    started = time.process_time()
    changed = plan_and_encode(SnapshotPlanner(), SnapshotEncoder(), world, {})
    plan = time.process_time() - started
    started = time.process_time()
    sizes = []
    for item in changed.values():
        served = ServedSnapshot(1, item.routing.digest, None, 0.0, content=item.encoded.content)
        parts = served.routing_parts()
        assert parts is not None
        sizes.append(len(parts[0]) + len(parts[1]))
    stamp = time.process_time() - started
    size = max(sizes)
    count = len(members)
    return BuildCost(count, 1000 * plan / count, 1000 * stamp / count, size)
