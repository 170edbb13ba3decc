"""Sustained ``record_report`` throughput per backend (not a test; run by hand).

    .venv/bin/python -m tests.integration.store.measure_reports --seconds 5 --tasks 32

Simulates 1,000 gateways: ``--tasks`` concurrent writers cycle through 1,000 cluster names, each
writing a ~400-byte report, for ``--seconds`` (bounded), on SQLite (temp file) and PostgreSQL
(a throwaway server, or ``ISTHMUS_TEST_POSTGRES_DSN``). Prints reports/s per backend.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import trio

from federation.store import open_store
from tests.helpers.postgres import DSN_ENV, PostgresServer, find_postgres_bindir

CLUSTERS = 1000


def _report(n: int) -> dict[str, object]:
    return {
        "services": {
            "checkout.shop": {"endpoints": 3, "healthy": 3, "inflight": n % 17, "rps": 120.5},
            "cart.shop": {"endpoints": 2, "healthy": 2, "inflight": n % 5, "rps": 40.25},
        },
        "peers": {f"peer-{p}": {"ok": True, "rtt_ms": 12.5 + p} for p in range(4)},
        "latency_ewma_ms": 8.75,
        "error_rate": 0.001,
    }


async def measure(url: str, seconds: float, tasks: int) -> tuple[float, float]:
    """Reports/s and reports per CPU-second of this process (all its threads; a PostgreSQL
    server's own CPU is not counted)."""
    written = 0
    async with open_store(url) as store:

        async def writer(offset: int) -> None:
            nonlocal written
            n = offset
            while True:
                await store.record_report(f"c{n % CLUSTERS}", _report(n), received_at=float(n))
                written += 1
                n += tasks

        start, cpu = trio.current_time(), time.process_time()
        with trio.move_on_after(seconds):
            async with trio.open_nursery() as nursery:
                for offset in range(tasks):
                    nursery.start_soon(writer, offset)
        elapsed, cpu = trio.current_time() - start, time.process_time() - cpu
        assert len(await store.list_reports()) == min(written, CLUSTERS)
    return written / elapsed, written / cpu


@contextlib.contextmanager
def _postgres() -> Iterator[str | None]:
    if dsn := os.environ.get(DSN_ENV):
        server = PostgresServer(dsn)
        url = server.create_database()
        yield url
        server.drop_database(url)
        return
    bindir = find_postgres_bindir()
    if bindir is None:
        yield None
        return
    with PostgresServer.start(bindir) as server:
        yield server.create_database()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--tasks", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'federation.db'}"
        rate, per_cpu = trio.run(measure, url, args.seconds, args.tasks)
        print(
            f"sqlite:   {rate:8.0f} reports/s, {per_cpu:6.0f} per CPU-second "
            f"({args.tasks} tasks, {args.seconds:.0f} s)"
        )
    with _postgres() as pg_url:
        if pg_url is None:
            print("postgres: skipped (no PostgreSQL binaries and no DSN)")
            return
        rate, per_cpu = trio.run(measure, pg_url, args.seconds, args.tasks)
        print(
            f"postgres: {rate:8.0f} reports/s, {per_cpu:6.0f} per CPU-second "
            f"({args.tasks} tasks, {args.seconds:.0f} s)"
        )


if __name__ == "__main__":
    main()
