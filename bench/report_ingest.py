"""CPU cost of health reports inside the federation service (no HTTP), at N clusters.

    .venv/bin/python bench/report_ingest.py --clusters 1000                     # this tree
    .venv/bin/python bench/report_ingest.py --clusters 1000 --compare /tmp/base  # A/B

Registers ``--clusters`` clusters directly in a SQLite store, starts the snapshot publisher as
leader (with its placement loop) and waits for the first snapshots; then every cluster sends
``--rounds`` steady reports through ``FederationService.record_report`` — all clusters' reports
of a round at once, a round every ``--interval`` seconds (the shape of N gateways at 1/s) —
and prints the CPU seconds of this process (all threads) per 1,000 reports, i.e. what the
service itself (store write, lease bookkeeping, publisher and placement loop) adds to each
report on top of HTTP and authentication. Then cluster 0's endpoint turns unhealthy: printed
are the time and CPU until every cluster is served its new snapshot, and the longest the event
loop was held at once meanwhile (a 1 ms heartbeat task's worst lateness). Imports nothing from
``bench``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any


async def _run(n: int, rounds: int, interval: float, directory: str) -> dict[str, float]:
    import trio

    from federation.model.api import EndpointHealth, HealthReport, ServiceHealth
    from federation.model.routing import Locality
    from federation.service.core import FederationService, ServiceSettings
    from federation.service.metrics import FederationMetrics
    from federation.service.publisher import SnapshotPublisher
    from federation.store import ClusterRecord, open_store

    names = [f"g{i:05d}" for i in range(n)]
    async with open_store(f"sqlite:///{directory}/federation.db") as store:
        for i, name in enumerate(names):
            await store.upsert_cluster(
                ClusterRecord(
                    name=name,
                    trust_domain=f"{name}.bench.isthmus.test",
                    locality=Locality(cloud="local", region=f"r{i % 8}"),
                    gateway_addresses=(f"127.0.0.1:{20000 + i}",),
                )
            )
        publisher = SnapshotPublisher(store, clock=time.time, interval_s=max(1.0, interval))
        settings = ServiceSettings(federation_url="https://127.0.0.1:1", ca_fingerprint="0" * 64)
        service = FederationService(
            store, publisher, settings, clock=time.time, metrics=FederationMetrics()
        )

        flipped = False

        def report(i: int, sequence: int) -> tuple[HealthReport, str]:
            healthy = not (flipped and i == 0)
            endpoint = EndpointHealth(address=f"127.0.0.1:{30000 + i}", healthy=healthy)
            svc = ServiceHealth(
                name="echo.bench",
                endpoints=(endpoint,),
                allowed_sources=("*",),
                in_flight=sequence % 7,  # load moves every report; routing does not
            )
            parsed = HealthReport(sequence=sequence, sent_at=time.time(), services=(svc,))
            return parsed, parsed.model_dump_json()

        rounds_done = 0
        round_over = trio.Event()

        async def report_forever() -> None:  # every cluster once per interval, from the start
            nonlocal rounds_done, round_over
            while True:
                started = trio.current_time()
                async with trio.open_nursery() as round_:
                    for i, name in enumerate(names):
                        round_.start_soon(service.record_report, name, *report(i, rounds_done))
                await trio.sleep_until(started + interval)
                rounds_done += 1
                round_over.set()
                round_over = trio.Event()

        async with trio.open_nursery() as nursery:
            await nursery.start(publisher.run)
            nursery.start_soon(report_forever)
            await _quiet(publisher, names)  # leases renewed meanwhile: nothing expires
            await round_over.wait()
            cpu, first = time.process_time(), rounds_done
            while rounds_done < first + rounds:
                await round_over.wait()
            cpu = time.process_time() - cpu
            gaps = [0.0]

            async def heartbeat() -> None:  # how long the event loop is held at a time
                while True:
                    before = trio.current_time()
                    await trio.sleep(0.001)
                    gaps.append(trio.current_time() - before - 0.001)

            nursery.start_soon(heartbeat)
            await trio.sleep(0.5)
            gaps[:] = [0.0]
            versions = {name: getattr(publisher.current(name), "version", 0) for name in names}
            flip_cpu, flip_at = time.process_time(), trio.current_time()
            flipped = True  # cluster 0's endpoint is unhealthy from its next report on
            with trio.move_on_after(300):
                for name in names:
                    await publisher.wait_newer(name, versions[name], 300)
            flip_s, flip_cpu = trio.current_time() - flip_at, time.process_time() - flip_cpu
            nursery.cancel_scope.cancel()
    return {
        "cpu_per_1000": 1000 * cpu / (n * rounds),
        "reports": n * rounds,
        "flip_s": flip_s,
        "flip_cpu": flip_cpu,
        "max_gap_ms": 1000 * max(gaps),
    }


async def _quiet(publisher: Any, names: list[str]) -> None:
    """Until every cluster is served a snapshot routing to the others and no version changed
    for 2 s (bounded): the rebuilds after the first reports are not counted."""
    import trio

    with trio.move_on_after(300):
        for name in names:
            while b"echo.bench" not in getattr(publisher.current(name), "body", b""):
                await publisher.wait_newer(name, getattr(publisher.current(name), "version", 0), 5)
        before: dict[str, int] = {}
        while True:
            now = {name: publisher.current(name).version for name in names}
            if now == before:
                return
            before = now
            await trio.sleep(2.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--compare", metavar="DIR", help="another tree to A/B against")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.json:
        import trio

        with tempfile.TemporaryDirectory(prefix="report-bench-") as tmp:
            result = trio.run(_run, args.clusters, args.rounds, args.interval, tmp)
        print(json.dumps(result))
        return 0
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    trees = [("this", here)] + ([("compare", args.compare)] if args.compare else [])
    for label, root in trees:
        cmd = [sys.executable, os.path.abspath(__file__), "--json"]
        cmd += ["--clusters", str(args.clusters), "--rounds", str(args.rounds)]
        cmd += ["--interval", str(args.interval)]
        env = dict(os.environ, PYTHONPATH=root)
        out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
        result = json.loads(out.stdout.splitlines()[-1])
        print(
            f"{label:>8} {result['reports']} steady reports from {args.clusters} clusters: "
            f"{result['cpu_per_1000']:.3f} CPU s per 1,000 reports "
            f"({1000 / result['cpu_per_1000']:.0f} reports per CPU-second) | one health flip: "
            f"every snapshot rebuilt after {result['flip_s']:.2f} s, {result['flip_cpu']:.2f} s "
            f"CPU, event loop held at most {result['max_gap_ms']:.0f} ms at a time",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
