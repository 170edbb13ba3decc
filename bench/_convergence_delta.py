"""Micro-benchmark of stream routing deltas: ``python -m bench._convergence_delta``.

For a cluster's routing at 100 and 1,000 clusters and a health flip (one service's
``cluster_health`` changes), prints the bytes of a full ``snapshot`` message and of the
``delta`` message, the gateway's CPU to read each (parse + validate; apply the delta to the
held base), and the federation's CPU to cut the delta from the served bytes. CPU time from
``getrusage``, so other load on the machine does not count.
"""

from __future__ import annotations

import resource
from typing import Any

from federation.model.routing import RoutingModel
from federation.model.routing_delta import apply_delta
from federation.model.stream import DOWNSTREAM, StreamDelta
from federation.service.stream_delta import routing_delta_bytes


def _peer(i: int) -> dict[str, Any]:
    name = f"c{i:04d}"
    return {
        "cluster": name,
        "trust_domain": f"{name}.test",
        "spiffe_id": f"spiffe://{name}.test/isthmus/gateway/{name}",
        "addresses": [f"10.0.{i // 250}.{i % 250}:15443"],
        "locality": {"cloud": "aws", "region": f"r{i % 5}"},
    }


def _routing(clusters: int, version: int, down: bool) -> RoutingModel:
    weights = {f"c{i:04d}": 1 for i in range(0, clusters, 10)}
    services = [
        {
            "name": f"svc{s}.shop",
            "priorities": [{"weights": weights}],
            "allowed_sources": ["*"],
            "cluster_health": {"c0010": 0.0} if down and s == 0 else {},
        }
        for s in range(3)
    ]
    doc = {
        "version": version,
        "cluster": "c0000",
        "trust_domain": "c0000.test",
        "locality": {"cloud": "aws", "region": "r0"},
        "peers": [_peer(i) for i in range(1, clusters)],
        "services": services,
    }
    return RoutingModel.model_validate(doc)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(clusters: int, rounds: int) -> str:
    base, new = _routing(clusters, 1, False), _routing(clusters, 2, True)
    base_bytes, new_bytes = base.model_dump_json().encode(), new.model_dump_json().encode()
    cut = routing_delta_bytes(base_bytes, new_bytes, 2)
    assert cut is not None
    full = b'{"type":"snapshot","version":2,"routing":' + new_bytes + b"}"
    delta = b'{"type":"delta","version":2,"base":1,"routing":' + cut + b"}"
    start = _cpu()
    for _ in range(rounds):
        DOWNSTREAM.validate_json(full)
    full_s = (_cpu() - start) / rounds
    start = _cpu()
    for _ in range(rounds):
        message = DOWNSTREAM.validate_json(delta)
        assert isinstance(message, StreamDelta)
        rebuilt = apply_delta(base, message.routing)
    delta_s = (_cpu() - start) / rounds
    assert rebuilt == new
    start = _cpu()
    for _ in range(rounds):
        routing_delta_bytes(base_bytes, new_bytes, 2)
    cut_s = (_cpu() - start) / rounds
    return (
        f"{clusters} clusters: message {len(full) / 1024:.1f} KiB full -> {len(delta) / 1024:.1f}"
        f" KiB delta; gateway read {full_s * 1e3:.2f} ms full -> {delta_s * 1e3:.2f} ms delta;"
        f" federation cut {cut_s * 1e3:.3f} ms per cluster"
    )


def main() -> None:
    for clusters, rounds in ((100, 200), (1000, 30)):
        print(measure(clusters, rounds))


if __name__ == "__main__":
    main()
