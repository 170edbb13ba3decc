"""Small builders for routes and endpoints used by the proxy core tests."""

from __future__ import annotations

import random
from collections import Counter

from proxy.clusters import UpstreamState
from proxy.loadbalancer import LoadBalancer
from proxy.routes import Endpoint, Locality, PriorityGroup, Route


def ep(key: str, cluster: str = "", weight: int = 1, kind: str = "http1") -> Endpoint:
    """An endpoint whose cluster defaults to the key's prefix before '-'."""
    return Endpoint(
        key=key,
        host="10.0.0.1",
        port=8080,
        kind=kind,  # type: ignore[arg-type]
        locality=Locality(cluster or key.split("-", maxsplit=1)[0]),
        weight=weight,
    )


def route(*levels: list[Endpoint], service: str = "checkout.shop") -> Route:
    return Route(service=service, priorities=tuple(PriorityGroup(tuple(lv)) for lv in levels))


def count_picks(
    lb: LoadBalancer,
    r: Route,
    state: UpstreamState,
    n: int,
    *,
    now: float = 0.0,
    seed: int = 7,
) -> Counter[str]:
    """Endpoint key -> number of times picked over ``n`` picks (no in-flight load)."""
    rng = random.Random(seed)
    counts: Counter[str] = Counter()
    for _ in range(n):
        pick = lb.pick(r, state, now, rng)
        counts[pick.endpoint.key if pick.endpoint else pick.reason] += 1
    return counts
