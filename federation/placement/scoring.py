"""Soft objectives, vectorised over every cluster: each score is in [0, 1], higher is better.

- **cost**: compute price of one replica (``units × cost_per_unit_hour``) plus its share of the
  egress bill for serving the observed demand from that cluster; ``cheapest / cost``, the
  cheapest cluster the hard constraints allow scoring 1 (twice its price scores 0.5).
- **latency**: demand-weighted round trip from the sources to the cluster;
  ``1 - rtt / cross_cloud rtt`` (1 when the service has no observed demand).
- **headroom**: free units left after one more replica, as a share of capacity.

``total`` is the weighted mean with the policy's objective weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from federation.model.placement import ServicePolicy
from federation.placement.topology import (
    BoolArray,
    ClusterState,
    FloatArray,
    IntArray,
    Topology,
)

_SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True, eq=False)
class CompiledService:
    """A policy with its demand resolved to cluster indices."""

    policy: ServicePolicy
    sources: IntArray
    rates: FloatArray
    desired: int

    @classmethod
    def of(
        cls, policy: ServicePolicy, demand: Mapping[str, float], topo: Topology
    ) -> CompiledService:
        """Resolve demand sources (sorted by name; zero rates dropped)."""
        items = sorted((topo.index[name], rate) for name, rate in demand.items() if rate > 0)
        sources = np.array([i for i, _ in items], dtype=np.int64)
        rates = np.array([rate for _, rate in items], dtype=np.float64)
        return cls(policy, sources, rates, policy.desired_replicas(float(rates.sum())))


@dataclass(frozen=True, eq=False)
class StaticScores:
    """Scores that do not change while replicas are being placed."""

    cost: FloatArray
    latency: FloatArray


def static_scores(
    topo: Topology, state: ClusterState, svc: CompiledService, mask: BoolArray
) -> StaticScores:
    """Cost and latency scores of every cluster for ``svc`` (cost relative to ``mask``)."""
    policy = svc.policy
    cost = state.cost * policy.units_per_replica
    if svc.sources.size:
        scale = 1.0 / (float(svc.rates.sum()) * topo.network.latency_ms.cross_cloud)
        latency = 1.0 - (svc.rates * scale) @ topo.latency[svc.sources]
        np.maximum(latency, 0.0, out=latency)
        if policy.bytes_per_request > 0:
            per_replica = _SECONDS_PER_HOUR * policy.bytes_per_request / 1e9 / max(svc.desired, 1)
            cost += (svc.rates * per_replica) @ topo.egress[svc.sources]
    else:
        latency = np.ones(topo.size)
    allowed = cost[mask]
    if not allowed.size:
        score = np.ones(topo.size)
    elif (cheapest := float(allowed.min())) > 0:
        score = cheapest / np.maximum(cost, 1e-300)  # free clusters: inf, capped to 1 below
        np.minimum(score, 1.0, out=score)
    else:
        score = (cost <= 0).astype(np.float64)  # something is free: everything else scores 0
    return StaticScores(score, latency.astype(np.float64, copy=False))


def headroom_scores(free: FloatArray, capacity: FloatArray, units: float) -> FloatArray:
    """Share of capacity still free after one more replica of ``units``."""
    share = np.zeros_like(free)
    np.divide(free - units, capacity, out=share, where=capacity > 0)
    return np.clip(share, 0.0, 1.0, out=share)


def total_scores(policy: ServicePolicy, static: StaticScores, headroom: FloatArray) -> FloatArray:
    """Weighted mean of the three objective scores."""
    weights = policy.objectives
    wsum = weights.cost + weights.latency + weights.headroom
    return (
        weights.cost * static.cost + weights.latency * static.latency + weights.headroom * headroom
    ) / wsum
