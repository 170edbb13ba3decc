"""Federation convergence benchmark: ``python -m bench.convergence [--quick] [--watchers
100,1000]`` (``make bench-federation``).

For each size N it starts one real federation replica (``isthmus federation serve`` on
127.0.0.1, TLS 1.3 + HTTP/2, a temporary state directory, SQLite), joins N simulated gateways
(each a real cluster registration: own trust domain, CA root and jwt-svid key, own single-use
token), has every one of them report at 1/s and long-poll its snapshot (all N watches outstanding
over shared HTTP/2 connections), then flips the health of ONE cluster's exported endpoint and
measures, per watcher, the time from that report until the watcher has received and ACKed the
snapshot version without that cluster. It prints p50/p99/max against issue 4's targets (p99
<= 100 ms for 100 watchers, <= 1 s for 1,000) and the references (Istio's 100 ms debounce,
Karmada's 2 s distribution SLO), plus report throughput at 1/s per gateway and at saturation.

Every phase is bounded in time (the whole default run stays under 3 minutes); every process it
starts is stopped when it ends. Exit 0 when it measured (whatever the verdicts), 1 on failure.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import trio

from bench._convergence_gateways import ANSWER_EVERY, GATEWAYS_PER_CONNECTION
from bench._convergence_run import Budget, measure
from bench._convergence_server import BenchError, FederationProcess, ServerSettings
from bench._convergence_stats import SizeResult, render

#: The steady window: one whole answer cycle. A simulated gateway asks for an answer on one
#: report in ANSWER_EVERY (1/s each), and that answer confirms the ones before it; a shorter
#: window would see about half the gateways' answers and count half the reports (the 5 s
#: window printed 55/s for 100 gateways that the federation kept up with).
STEADY_S = float(ANSWER_EVERY)


def budget_for(
    watchers: int,
    quick: bool,
    patience: float,
    per_connection: int,
    flips: int | None = None,
    steady_s: float | None = None,
) -> Budget:
    """Per-phase time bounds: enough for a healthy service, short enough for one default run
    (100 then 1,000 watchers) < 3 min. ``patience`` multiplies the waiting phases."""
    if quick:
        base = Budget(join_s=20, settle_s=15, converge_s=15, steady_s=2, saturate_s=3)
    elif watchers <= 200:
        base = Budget(join_s=30, settle_s=20, converge_s=20, steady_s=STEADY_S, saturate_s=10)
    else:
        base = Budget(join_s=75, settle_s=20, converge_s=20, steady_s=STEADY_S, saturate_s=10)
    return replace(
        base,
        per_connection=per_connection,
        flips=(1 if quick else base.flips) if flips is None else flips,
        steady_s=base.steady_s if steady_s is None else steady_s,
        join_s=base.join_s * patience,
        settle_s=base.settle_s * patience,
        converge_s=base.converge_s * patience,
    )


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--watchers: {text!r} is not a list of integers") from err
    if not sizes or any(n < 2 or n > 5000 for n in sizes):
        raise argparse.ArgumentTypeError("--watchers: each size must be within 2..5000")
    return sizes


def machine_line() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, "
        f"load average {load} at start, loopback, Python {sys.version.split()[0]}"
    )


@contextlib.contextmanager
def store_urls(args: argparse.Namespace) -> Iterator[Callable[[], str | None]]:
    """A fresh store per size: SQLite in the state dir (``None``), the given URL, or a new
    database on a throwaway PostgreSQL cluster (``tests/helpers/postgres.py``; fsync off)."""
    if args.store != "postgres" or args.store_url:
        yield lambda: args.store_url
        return
    from tests.helpers.postgres import PostgresServer, find_postgres_bindir

    bindir = find_postgres_bindir()
    if bindir is None:
        raise BenchError("--store postgres: no initdb/pg_ctl found (apt-get install postgresql)")
    with PostgresServer.start(bindir) as server:
        yield server.create_database


def run_size(
    watchers: int, args: argparse.Namespace, workdir: Path, store_url: str | None, deadline: float
) -> SizeResult:
    profile = None if args.profile is None else args.profile.with_suffix(f".n{watchers}.prof")
    settings = ServerSettings(
        store_url=store_url,
        profile_path=profile,
        switch_interval_s=args.switch_interval,
        server_tree=args.server_tree,
    )
    store_name = "sqlite" if store_url is None else "postgres"
    with FederationProcess(workdir / f"n{watchers}", settings) as server:
        budget = budget_for(
            watchers, args.quick, args.patience, args.per_connection, args.flips, args.steady_s
        )
        budget = replace(budget, deadline=deadline)
        result = trio.run(measure, server, watchers, budget, store_name)
        if not server.alive():
            result.notes.append(f"federation died during the run: {server.tail()}")
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.convergence", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short phases, 100 watchers")
    parser.add_argument("--watchers", type=parse_sizes, default=None, help="e.g. 100,1000")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="bound on the measuring, shared among sizes (default 150 s times --patience); "
        "starting and stopping servers adds a few seconds per size",
    )
    parser.add_argument(
        "--patience",
        type=float,
        default=1.0,
        help="multiply the join/settle/converge time bounds (e.g. 10 to see 1,000 through)",
    )
    parser.add_argument(
        "--flips",
        type=int,
        default=None,
        help="health changes per size (default 3, quick 1; 0 = measure reports only)",
    )
    parser.add_argument(
        "--steady-seconds",
        dest="steady_s",
        type=float,
        default=None,
        help="how long reports at 1/s are measured (default 10: one answer cycle; quick 2)",
    )
    parser.add_argument(
        "--server-tree",
        type=Path,
        default=None,
        help="run the federation from this source tree (PYTHONPATH), e.g. main's, for an A/B "
        "with the same simulated gateways",
    )
    parser.add_argument(
        "--per-connection",
        type=int,
        default=GATEWAYS_PER_CONNECTION,
        help="simulated gateways sharing one HTTP/2 connection (1 = one connection each)",
    )
    parser.add_argument(
        "--store",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="postgres: start a throwaway PostgreSQL cluster (needs initdb/pg_ctl)",
    )
    parser.add_argument("--store-url", default=None, help="an existing postgresql://... database")
    parser.add_argument("--json", type=Path, default=None, help="also write results as JSON")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="run the server under cProfile, write PATH.nN.prof",
    )
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=None,
        help="experiment: run the server with sys.setswitchinterval(S) (Python's default 0.005)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, configs)")
    args = parser.parse_args(argv)
    # 1,000 simulated gateways are ~400k tracked objects: with the default thresholds the
    # collector stopped this process for 0.5-1 s at a time (27 pauses, 12.7 s in one run),
    # and every gateway fell silent meanwhile. Rarer young collections promote far fewer
    # short-lived objects, so full collections become rare (8 pauses, 1.9 s).
    gc.set_threshold(50_000, 20, 10)
    sizes = args.watchers or ([100] if args.quick else [100, 1000])
    machine = machine_line()
    print(f"federation convergence benchmark - {machine}", flush=True)
    results: list[SizeResult] = []
    workdir = Path(tempfile.mkdtemp(prefix="isthmus-convergence-"))
    started = time.monotonic()
    max_seconds = args.max_seconds or 150.0 * args.patience
    try:
        with store_urls(args) as new_store:
            for index, watchers in enumerate(sizes):
                left = started + max_seconds - time.monotonic()
                deadline = time.monotonic() + left / (len(sizes) - index)
                result = run_size(watchers, args, workdir, new_store(), deadline)
                results.append(result)
                print("\n".join(render(result)), flush=True)
    except BenchError as err:
        print(f"benchmark failed: {err}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    print(f"total {time.monotonic() - started:.0f} s")
    if args.json:
        doc = {"machine": machine, "results": [r.to_json() for r in results]}
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
