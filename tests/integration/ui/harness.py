"""A real federation with three simulated clusters whose 'gateways' report every interval.

Each simulated gateway reports its services (one healthy endpoint each), probes of its peers
and traffic towards every other live cluster (``links``). ``kill(name)`` silences a cluster (its
lease expires, peers' probes of it fail), ``heal()`` brings every cluster back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio

from federation.service.server import RunningFederation
from tests.integration.federation.conftest import FakeCluster, joined

CLUSTERS = {
    "aws-use1": ("aws", "us-east-1"),
    "gcp-euw1": ("gcp", "europe-west1"),
    "azure-weu": ("azure", "westeurope"),
}
SERVICES = ("checkout.shop", "catalog.shop")


@dataclass
class SimulatedFederation:
    fed: RunningFederation
    api: httpx.AsyncClient
    clusters: dict[str, FakeCluster]
    interval_s: float
    killed: set[str] = field(default_factory=set)
    partitioned: set[frozenset[str]] = field(default_factory=set)
    sequence: int = 0

    def report_for(self, name: str) -> dict[str, Any]:
        self.sequence += 1
        peers = [other for other in self.clusters if other != name]
        return {
            "sequence": self.sequence,
            "sent_at": time.time(),
            "services": [
                {
                    "name": svc,
                    "endpoints": [{"address": f"127.0.0.1:{9000 + i}"}],
                    "allowed_sources": ["*"],
                    "request_rate": 5.0,
                    "latency_ewma_ms": 3.0,
                }
                for i, svc in enumerate(SERVICES)
            ],
            "peers": [{"cluster": p, "ok": self.reachable(name, p)} for p in peers],
            "links": [
                {"destination": p, "request_rate": 12.5, "error_rate": 0.0, "latency_ms": 41.0}
                for p in peers
                if self.reachable(name, p)
            ],
        }

    async def report_once(self) -> None:
        for name, cluster in self.clusters.items():
            if name in self.killed:
                continue
            response = await self.api.post(
                f"/v1/clusters/{name}/reports", json=self.report_for(name), headers=cluster.auth()
            )
            assert response.status_code == 204, response.text

    async def run_reporters(self) -> None:
        """Report for every live cluster each interval, until cancelled."""
        while True:
            await self.report_once()
            await trio.sleep(self.interval_s)

    def reachable(self, source: str, destination: str) -> bool:
        return destination not in self.killed and frozenset((source, destination)) not in (
            self.partitioned
        )

    def partition(self, a: str, b: str) -> None:
        self.partitioned.add(frozenset((a, b)))

    def kill(self, name: str) -> None:
        self.killed.add(name)

    def heal(self) -> None:
        self.killed.clear()
        self.partitioned.clear()


async def join_three(fed: RunningFederation, api: httpx.AsyncClient) -> dict[str, FakeCluster]:
    """Join the three demo clusters with their clouds and regions."""
    clusters = {}
    for index, (name, (cloud, region)) in enumerate(CLUSTERS.items()):
        cluster = FakeCluster(name, port=15001 + index)
        token = await fed.service.create_join_token(name)
        body = cluster.join_body(token, locality={"cloud": cloud, "region": region})
        response = await api.post("/v1/join", json=body)
        assert response.status_code == 201, response.text
        clusters[name] = cluster
    return clusters


__all__ = ["CLUSTERS", "SERVICES", "SimulatedFederation", "join_three", "joined"]
