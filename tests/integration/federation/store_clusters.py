"""Clusters registered straight in a store, for tests of the publisher and the placement loop
that run without the HTTP service (one local-cloud region per cluster, one gateway address)."""

from __future__ import annotations

from federation.model import Locality
from federation.store import ClusterRecord, Store


async def join(store: Store, name: str) -> None:
    """Register cluster ``name`` (trust domain ``<name>.test``, region ``<name>``)."""
    await store.upsert_cluster(
        ClusterRecord(
            name=name,
            trust_domain=f"{name}.test",
            locality=Locality(cloud="local", region=name),
            gateway_addresses=("127.0.0.1:15443",),
        )
    )
