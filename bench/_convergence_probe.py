"""CPU cost of the federation's snapshot build at N clusters, from a sample.

The publisher's rebuild builds one snapshot per cluster (``plan_snapshots``: ``build_snapshot``
plus ``snapshot_digest`` for each), then serialises each changed one to store it and again to
serve it (``_stamp``: ``with_version``, JSON, digest). This probe runs exactly those functions of
:mod:`federation.service.snapshots` in this process for ``sample`` of the N clusters, on the same
shape of data the simulated fleet produces (own trust domain and CA root, one exported service
with one endpoint, every cluster healthy), and scales by N. It measures the pure core only: no
store, no HTTP, no event loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench._convergence_gateways import SERVICE, Identity
from federation.model.api import EndpointHealth, ServiceHealth
from federation.model.routing import Locality
from federation.service.leases import Reachability
from federation.service.snapshots import (
    MemberView,
    build_snapshot,
    snapshot_digest,
    with_version,
)


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
            f"  snapshot build core (sampled {self.sample} of {self.clusters}, this process): "
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


def measure_build(identities: list[Identity], sample: int = 10) -> BuildCost:
    """Time the publisher's per-cluster work for ``sample`` clusters out of ``identities``."""
    members = _members(identities)
    reach = Reachability({m.name: "healthy" for m in members})
    bundles = {ident.trust_domain: ident.bundle.to_json() for ident in identities}
    picked = members[:: max(1, len(members) // sample)][:sample]
    plan = stamp = 0.0
    size = 0
    for me in picked:
        started = time.perf_counter()
        content = build_snapshot(me, members, reach, bundles, {})
        snapshot_digest(content)
        planned = time.perf_counter()
        stored = content.model_dump_json()  # what rebuild() stores
        served = with_version(content, 1).model_dump_json().encode()  # what _stamp() serves
        snapshot_digest(content)  # _stamp() digests again
        plan += planned - started
        stamp += time.perf_counter() - planned
        size = max(len(stored), len(served))
    count = len(picked)
    return BuildCost(len(members), count, 1000 * plan / count, 1000 * stamp / count, size)
