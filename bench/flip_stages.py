"""Where a one-cluster health flip's CPU goes before any push, inside the federation (no HTTP).

    .venv/bin/python bench/flip_stages.py --clusters 1000 --flips 8
    PYTHONPATH=/tmp/base .venv/bin/python bench/flip_stages.py    # another tree (A/B)

Registers ``--clusters`` clusters (each with a 1.1 KiB bundle) directly in a SQLite store,
starts the snapshot publisher as leader, has every cluster report at 1/s through
``FederationService.record_report`` (the steady load of N gateways), waits until no version
changes for 2.5 s, then flips cluster 0's endpoint ``--flips`` times (0.37 s apart). Per flip it
prints the wall time from the flip's ``record_report`` until every cluster is served a new
version, and the event-loop thread's CPU in the publisher's stages: ``_assess`` (the world read
and lease verdicts), ``world_key``, ``plan_and_encode`` and ``put_snapshots``; then the medians
and the process CPU per flip (all threads; the steady reports included). The stages are timed
by wrapping the publisher's functions, so any tree with the same names can be measured.
Imports nothing from ``bench``; every wait is bounded.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import trio

Stages = dict[str, list[float]]


def _timed_sync(stages: Stages, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            stages.setdefault(name, []).append(time.thread_time() - started)

    return run


def _timed_async(stages: Stages, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    async def run(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()  # the loop thread's CPU, awaits included (small)
        try:
            return await fn(*args, **kwargs)
        finally:
            stages.setdefault(name, []).append(time.thread_time() - started)

    return run


def _instrument(stages: Stages) -> None:
    import federation.service.publisher as publisher

    cls = publisher.SnapshotPublisher
    cls._assess = _timed_async(stages, "assess", cls._assess)  # type: ignore[method-assign]
    # names the publisher module imports, patched where it looks them up
    publisher.plan_and_encode = _timed_sync(stages, "plan", publisher.plan_and_encode)  # type: ignore[attr-defined]
    publisher.world_key = _timed_sync(stages, "world_key", publisher.world_key)  # type: ignore[attr-defined]


async def _run(n: int, flips: int, directory: str) -> list[tuple[float, float, Stages]]:
    from federation.model.api import EndpointHealth, HealthReport, ServiceHealth
    from federation.model.routing import Locality
    from federation.service.core import FederationService, ServiceSettings
    from federation.service.metrics import FederationMetrics
    from federation.service.publisher import SnapshotPublisher
    from federation.store import ClusterRecord, open_store

    stages: Stages = {}
    _instrument(stages)
    names = [f"g{i:05d}" for i in range(n)]
    down: set[int] = set()
    sequence = 0

    def report(i: int) -> tuple[HealthReport, str]:
        nonlocal sequence
        sequence += 1
        endpoint = EndpointHealth(address=f"127.0.0.1:{30000 + i}", healthy=i not in down)
        svc = ServiceHealth(
            name="echo.bench", endpoints=(endpoint,), allowed_sources=("*",), in_flight=sequence % 7
        )
        parsed = HealthReport(sequence=sequence, sent_at=time.time(), services=(svc,))
        return parsed, parsed.model_dump_json()

    results = []
    async with open_store(f"sqlite:///{directory}/federation.db") as store:
        for i, name in enumerate(names):
            td = f"{name}.bench.isthmus.test"
            locality = Locality(cloud="local", region=f"r{i % 8}")
            await store.upsert_cluster(
                ClusterRecord(
                    name=name,
                    trust_domain=td,
                    locality=locality,
                    gateway_addresses=(f"127.0.0.1:{20000 + i}",),
                )
            )
            await store.put_bundle(td, 1, '{"keys":[{"k":"%s"}]}' % ("x" * 1100), None, 0.0)
        store.put_snapshots = _timed_async(stages, "put", store.put_snapshots)  # type: ignore[method-assign]
        publisher = SnapshotPublisher(store, clock=time.time, interval_s=1.0)
        settings = ServiceSettings(federation_url="https://127.0.0.1:1", ca_fingerprint="0" * 64)
        service = FederationService(
            store, publisher, settings, clock=time.time, metrics=FederationMetrics()
        )

        def version(name: str) -> int:
            served = publisher.current(name)
            return 0 if served is None else served.version

        async def steady() -> None:
            while True:
                started = trio.current_time()
                async with trio.open_nursery() as round_:
                    for i, name in enumerate(names):
                        round_.start_soon(service.record_report, name, *report(i))
                        if i % 50 == 49:
                            await trio.sleep(0.02)
                await trio.sleep_until(started + 1.0)

        async with trio.open_nursery() as nursery:
            await nursery.start(publisher.run)
            nursery.start_soon(steady)
            with trio.move_on_after(180):  # settled: every cluster served, nothing moving
                while True:
                    before = {name: version(name) for name in names}
                    await trio.sleep(2.5)
                    after = {name: version(name) for name in names}
                    if all(after.values()) and after == before:
                        break
            for flip in range(flips):
                await trio.sleep(0.37)
                (down.add if flip % 2 == 0 else down.discard)(0)
                before = {name: version(name) for name in names}
                for times in stages.values():
                    times.clear()
                started, cpu = trio.current_time(), time.process_time()
                await service.record_report(names[0], *report(0))
                for name in names:
                    await publisher.wait_newer(name, before[name], 10)
                wall, cpu = trio.current_time() - started, time.process_time() - cpu
                results.append((wall, cpu, {k: list(v) for k, v in stages.items()}))
            nursery.cancel_scope.cancel()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--flips", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        results = trio.run(_run, args.clusters, args.flips, directory)
    for i, (wall, _, stages) in enumerate(results):
        parts = ", ".join(f"{k} {1000 * sum(v):.1f}" for k, v in sorted(stages.items()))
        print(f"flip {i}: every cluster served after {1000 * wall:.0f} ms; loop CPU ms: {parts}")

    def median(values: list[float]) -> str:
        return f"{1000 * statistics.median(values):.1f}" if values else "-"

    keys = sorted({k for _, _, stages in results for k in stages})
    summary = ", ".join(f"{k} {median([sum(s.get(k, [])) for _, _, s in results])}" for k in keys)
    print(
        f"N={args.clusters}, {len(results)} flips, medians: report -> every cluster served "
        f"{median([r[0] for r in results])} ms, process CPU {median([r[1] for r in results])} ms; "
        f"loop CPU ms: {summary}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
