"""CPU cost of joins as a federation grows, in one process (service + publisher + SQLite, no HTTP).

    .venv/bin/python bench/join_scale.py --clusters 1000                    # this tree
    .venv/bin/python bench/join_scale.py --clusters 1000 --compare /tmp/base  # A/B, alternating

Joins ``--clusters`` clusters, ``--concurrency`` at a time, through
``FederationService.join`` with the snapshot publisher running as leader (it rebuilds every
cluster's snapshot after joins, as the real server does), and prints the CPU seconds of this
process (all threads: the store's and the planner's too) spent per 100 joins, at each hundred.
Identity material (a CA root and a jwt-svid key per cluster) is made before the clock starts.
A join costs O(N) by design (its response carries every trust bundle); what must not grow is
the rebuild work per join. Imports nothing from ``bench``, so ``--compare DIR`` measures
whichever ``federation`` is first on the path.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from typing import Any


def _requests(n: int) -> list[tuple[str, Any]]:
    from cryptography.hazmat.primitives.asymmetric import ec

    from federation.model.api import JoinRequest
    from federation.model.routing import Locality
    from federation.trust import CertificateAuthority, TrustBundle, TrustDomain

    out = []
    for i in range(n):
        name = f"g{i:05d}"
        td = TrustDomain(f"{name}.bench.isthmus.test")
        ca = CertificateAuthority.create(td, now=datetime.now(UTC))
        key = ec.generate_private_key(ec.SECP256R1())
        bundle = TrustBundle(td, (ca.root,), {f"{name}-jwt-1": key.public_key()}, 1)
        request = JoinRequest(
            token="placeholder",  # replaced by the real token at join time
            trust_domain=td.name,
            trust_bundle=bundle.to_json(),
            gateway_addresses=(f"127.0.0.1:{20000 + i}",),
            locality=Locality(cloud="local", region=f"r{i % 8}"),
            capacity=100,
        )
        out.append((name, request))
    return out


async def _run(n: int, concurrency: int, directory: str) -> list[tuple[int, float, float]]:
    import trio

    from federation.service.core import FederationService, ServiceSettings
    from federation.service.metrics import FederationMetrics
    from federation.service.publisher import SnapshotPublisher
    from federation.store import open_store

    requests = _requests(n)
    marks: list[tuple[int, float, float]] = []
    async with open_store(f"sqlite:///{directory}/federation.db") as store:
        publisher = SnapshotPublisher(store, clock=time.time, interval_s=1.0)
        settings = ServiceSettings(federation_url="https://127.0.0.1:1", ca_fingerprint="0" * 64)
        service = FederationService(
            store, publisher, settings, clock=time.time, metrics=FederationMetrics()
        )
        tokens = [await service.create_join_token(name) for name, _ in requests]
        async with trio.open_nursery() as nursery:
            await nursery.start(publisher.run)
            joined = 0
            start_cpu, start_wall = time.process_time(), time.monotonic()
            queue = iter(zip(tokens, requests, strict=True))

            async def worker() -> None:
                nonlocal joined
                for token, (_, request) in queue:
                    await service.join(request.model_copy(update={"token": token}))
                    joined += 1
                    if joined % 100 == 0:
                        cpu = time.process_time() - start_cpu
                        marks.append((joined, cpu, time.monotonic() - start_wall))

            async with trio.open_nursery() as joiners:
                for _ in range(concurrency):
                    joiners.start_soon(worker)
            with trio.move_on_after(60):  # let the last rebuild finish, then count it too
                for name, _ in requests:
                    await publisher.wait_newer(name, 0, 60)
            marks.append((n, time.process_time() - start_cpu, time.monotonic() - start_wall))
            nursery.cancel_scope.cancel()
    return marks


def _print(label: str, marks: list[tuple[int, float, float]]) -> None:
    previous = 0.0
    steps = []
    for joined, cpu, _ in marks[:-1]:
        steps.append(f"{joined}:{cpu - previous:5.2f}")
        previous = cpu
    total_joined, total_cpu, wall = marks[-1]
    print(
        f"{label:>8} CPU s per 100 joins at each hundred: {' '.join(steps)} | all {total_joined} "
        f"joined and served: {total_cpu:.1f} s CPU, {wall:.1f} s wall",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--compare", metavar="DIR", help="another tree to A/B against")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.json:
        import trio

        with tempfile.TemporaryDirectory(prefix="join-bench-") as tmp:
            print(json.dumps(trio.run(_run, args.clusters, args.concurrency, tmp)))
        return 0
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    trees = [("this", here)] + ([("compare", args.compare)] if args.compare else [])
    for label, root in trees:
        cmd = [sys.executable, os.path.abspath(__file__), "--json"]
        cmd += ["--clusters", str(args.clusters), "--concurrency", str(args.concurrency)]
        env = dict(os.environ, PYTHONPATH=root)
        out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
        _print(label, [(int(j), c, w) for j, c, w in json.loads(out.stdout.splitlines()[-1])])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
