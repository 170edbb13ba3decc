"""CPU cost of the federation's snapshot build at N clusters, measured in this process.

The publisher's rebuild calls ``plan_snapshots`` (every cluster's snapshot and digest), then for
each changed cluster serialises the snapshot once to store it and once more, stamped with its
version, to serve it. This probe runs exactly those functions of
:mod:`federation.service.snapshots` on the shape of data the simulated fleet produces (own trust
domain and CA root, one exported service with one endpoint, every cluster healthy): the whole
plan, and the encoding for a sample of clusters scaled to N. Pure core only: no store, no HTTP,
no event loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench._convergence_gateways import SERVICE, Identity
from federation.model.api import EndpointHealth, ServiceHealth
from federation.model.routing import Locality
from federation.service.leases import Reachability
from federation.service.snapshots import MemberView, plan_snapshots, with_version


@dataclass(frozen=True)
class BuildCost:
    clusters: int
    sample: int
    plan_ms_per_cluster: float
    stamp_ms_per_cluster: float
    snapshot_bytes: int

    @property
    def full_rebuild_s(self) -> float:
        """CPU seconds for one rebuild in which every cluster's snapshot changes."""
        return self.clusters * (self.plan_ms_per_cluster + self.stamp_ms_per_cluster) / 1000

    def line(self) -> str:
        return (
            f"  snapshot build core (this process; encoding sampled on {self.sample}): "
            f"plan {self.plan_ms_per_cluster:.1f} ms + store/serve encoding "
            f"{self.stamp_ms_per_cluster:.1f} ms per cluster -> {self.full_rebuild_s:.1f} s of "
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


def measure_build(identities: list[Identity], sample: int = 20) -> BuildCost:
    """Time ``plan_snapshots`` for all clusters and the encoding for ``sample`` of them."""
    members = _members(identities)
    reach = Reachability({m.name: "healthy" for m in members})
    bundles = {ident.trust_domain: ident.bundle.to_json() for ident in identities}
    started = time.perf_counter()
    planned = plan_snapshots(members, reach, bundles, {}, {})
    plan = time.perf_counter() - started
    picked = list(planned.values())[:: max(1, len(planned) // sample)][:sample]
    size = 0
    started = time.perf_counter()
    for item in picked:
        stored = item.snapshot.model_dump_json()  # what rebuild() stores
        served = with_version(item.snapshot, 1).model_dump_json().encode()  # what it serves
        size = max(size, len(stored), len(served))
    encode = time.perf_counter() - started
    count = len(members)
    return BuildCost(count, len(picked), 1000 * plan / count, 1000 * encode / len(picked), size)
