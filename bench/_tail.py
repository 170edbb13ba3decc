"""Diagnostic (not a benchmark of record): where the p99 at a fixed rate comes from.

    .venv/bin/python -m bench._tail --trees /work/main,. --mode hop|pair --rounds 3 --rt

Builds the data-plane topology once; then, for each round and each tree (alternating), starts
that tree's gateways (``DIR/.venv/bin/python -m isthmus gateway run``, B alone for ``hop``
(h2load over mTLS straight at B, like ``bench.dataplane``'s hop part), A and B for ``pair``
(h2c into A)), pinned to CPU 0 with h2load and the backend on CPU 1, and runs one of the
benchmark's fixed-rate loads (``--shape fixed``: evenly paced, 2 requests a millisecond;
``bursts``: ``-c 4 --rps 500``, 20 requests every 10 ms). Prints p50/p99/p99.9 from h2load's
request log, each gateway's CPU per request, the burst structure of the arrivals (h2load's
``--rps`` timer fires every 10 ms per connection) and the median latency by position in a
burst.

``--rt``: every measured process (gateways, backend, h2load) at real-time round-robin
priority, so a shared machine's other load does not preempt them: latencies comparable
between trees on a busy machine. ``--probe``: the gateways run under ``bench/_loopprobe.py``
(GCs, long loop batches, per-task CPU, each request's residence; ``LOOPPROBE_SAVEALL=1``: type
counts of the cyclic garbage). ``--pyspy``: py-spy of the last gateway (needs ``py-spy`` in
the venv). ``--full S``: S seconds at full load first.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from subprocess import DEVNULL, PIPE, Popen

from bench._h2load import (
    Load,
    build_client_cert_shim,
    client_cert_env,
    parse_summary,
    percentile,
)
from bench._parts import BURST_CLIENTS, FIXED_RPS, Settings
from bench._procs import ProcGroup, pinned, process_tree, run_tool, wait_port
from bench._tail_report import (
    analyse,
    correlate,
    request_rows,
    summarize_spy,
    switches,
    user_system,
)
from bench._topology import AUTHORITY, START_TIMEOUT_S, Pinning, Topology, build, start_shared

PROBE = Path(__file__).with_name("_loopprobe.py")


def _gateway(
    group: ProcGroup, tree: Path, name: str, config: Path, cpus: str, probe: Path | None
) -> None:
    python = str(tree / ".venv" / "bin" / "python")
    head = [python, str(PROBE), str(probe)] if probe else [python, "-m", "isthmus"]
    argv = [*head, "gateway", "run", "--config", str(config)]
    old = os.getcwd()
    os.chdir(tree)
    try:
        group.start(name, argv, cpus=cpus)
    finally:
        os.chdir(old)


RT: list[str] = []  # ["chrt", "-r", "10"] with --rt


def rt_all(group: ProcGroup) -> None:
    """Real-time (round-robin) priority for every process of ``group`` (with --rt): the
    measured processes are then not preempted by the rest of a shared machine."""
    if not RT:
        return
    for proc in group.procs:
        for pid in process_tree(proc.popen.pid):
            if RT[0] == "nice":
                subprocess.run(["renice", "-n", "-20", "-p", str(pid)], check=False, stdout=DEVNULL)
            else:
                subprocess.run(["chrt", "-a", "-r", "-p", "10", str(pid)], check=False)


def staggered(
    url: str, env: dict[str, str], cpus: str, duration: float, keep: Path
) -> tuple[int, int, int, float]:
    """The same 2,000 req/s as four ``h2load -c 1 --rps 500`` started 2.5 ms apart, so the
    connections' 10 ms timers fall in different phases (bursts of 5, not 20): a diagnostic of
    how much of the p99 is the four connections' bursts lining up. Their logs are merged
    into ``keep``; returns (total, succeeded, failed, req/s summed)."""
    load = Load(
        clients=1, streams=16, duration_s=duration, rps_per_client=FIXED_RPS / BURST_CLIENTS
    )
    logs = [keep.with_suffix(f".{i}.tsv") for i in range(BURST_CLIENTS)]
    procs = []
    for log in logs:
        argv = pinned([*RT, *load.argv(url, AUTHORITY, log)], cpus)
        procs.append(Popen(argv, stdout=PIPE, stderr=DEVNULL, text=True, env={**os.environ, **env}))
        time.sleep(0.0025)
    sums = [0, 0, 0, 0.0]
    for proc in procs:
        out, _ = proc.communicate(timeout=duration + 60)
        total, ok, failed, _, _, rps = parse_summary(out)
        for i, value in enumerate((total, ok, failed, rps)):
            sums[i] += value
    keep.write_text("".join(log.read_text() for log in logs))
    return int(sums[0]), int(sums[1]), int(sums[2]), float(sums[3])


def run_fixed(
    url: str, env: dict[str, str], cpus: str, duration: float, keep: Path, shape: str = "fixed"
) -> str:
    """One of the benchmark's loads (``fixed``, ``bursts``, ``unlimited``: its full load);
    ``stagger``: the fixed rate from four staggered h2load processes (:func:`staggered`)."""
    if shape == "stagger":
        total, ok, failed, rps = staggered(url, env, cpus, duration, keep)
    else:
        settings = Settings.for_run(
            quick=False, duration_s=duration, clients=8, streams=16, tunnel_bytes=None
        )
        load = {"fixed": settings.fixed, "bursts": settings.bursts, "unlimited": settings.full}[
            shape
        ]()
        done = run_tool(
            [*RT, *load.argv(url, AUTHORITY, keep)],
            cpus=cpus,
            timeout_s=duration + 60,
            what="h2load",
            env=env,
        )
        total, ok, failed, _, _, rps = parse_summary(done.stdout)
    rows = request_rows(keep)
    lats = sorted(lat for _, lat in rows)
    head = (
        f"  {ok}/{total} ok ({failed} failed) {rps:,.0f} req/s  p50 "
        f"{percentile(lats, 0.5) / 1000:.2f} ms  p99 {percentile(lats, 0.99) / 1000:.2f} ms  "
        f"p99.9 {percentile(lats, 0.999) / 1000:.2f} ms"
    )
    return head + "\n" + analyse(rows)


@dataclass
class Round:
    """One tree's gateways under one fixed-rate run."""

    tree: Path
    index: int
    url: str
    env: dict[str, str]
    group: ProcGroup


def _start(args: argparse.Namespace, ctx: dict[str, object], rnd: Round) -> None:
    """Start the tree's gateways (B, and A for ``pair``), warm them up."""
    root, topo = ctx["root"], ctx["topo"]
    assert isinstance(root, Path) and isinstance(topo, Topology)
    name = rnd.tree.name
    probe = root / f"probe-b-{rnd.index}-{name}.json" if args.probe else None
    _gateway(rnd.group, rnd.tree, "beta", topo.beta_config, "0", probe)
    wait_port(topo.beta_inbound, timeout_s=START_TIMEOUT_S)
    if args.mode == "pair":
        probe_a = root / f"probe-a-{rnd.index}-{name}.json" if args.probe else None
        _gateway(rnd.group, rnd.tree, "alpha", topo.alpha_config, "0", probe_a)
        wait_port(topo.alpha_outbound, timeout_s=START_TIMEOUT_S)
    rt_all(rnd.group)
    loads = [Load(clients=2, streams=8, requests=5000)]
    if args.full:
        loads.append(Load(clients=8, streams=16, duration_s=args.full))
    for step, load in enumerate(loads):
        log = root / f"warm-{rnd.index}-{name}-{step}.tsv"
        procs = rnd.group.procs
        before = [p.cpu_seconds() for p in procs]
        argv = [*RT, *load.argv(rnd.url, AUTHORITY, log)]
        run_tool(argv, cpus="1", timeout_s=load.bound_s(), what="warm-up", env=rnd.env)
        n = max(1, len(request_rows(log)))
        each = " + ".join(
            f"{p.name} {(p.cpu_seconds() - c) * 1e6 / n:.1f}"
            for p, c in zip(procs, before, strict=True)
        )
        kind = "full load" if load.duration_s else "warm-up"
        print(f"  {kind}: {n} requests, CPU µs/request {each}", flush=True)
    time.sleep(0.5)


def _pyspy(args: argparse.Namespace, root: Path, rnd: Round) -> tuple[Popen[bytes], Path] | None:
    """py-spy (raw stacks) of the last started gateway (A in ``pair``) during the run."""
    if not args.pyspy:
        return None
    out = root / f"pyspy-{rnd.index}-{rnd.tree.name}.txt"
    spy = str(Path(__file__).parents[1] / ".venv/bin/py-spy")
    pid = str(rnd.group.procs[-1].popen.pid)
    argv = ["taskset", "-c", "1", spy, "record", "-r", "400", "-f", "raw", "-o", str(out)]
    argv += ["-d", str(int(args.duration) - 1), "-p", pid]
    return Popen(argv, stdout=DEVNULL, stderr=DEVNULL), out


def _measure(args: argparse.Namespace, root: Path, rnd: Round) -> str:
    """The fixed-rate run with the requested recorders; the round's report."""
    procs = rnd.group.procs
    if args.probe:
        for proc in procs:
            proc.popen.send_signal(signal.SIGUSR1)
    spy = _pyspy(args, root, rnd)
    before = [p.cpu_seconds() for p in procs]
    sw_before = [switches(p) for p in procs]
    us_before = [user_system(p) for p in procs]
    keep = root / f"r{rnd.index}-{rnd.tree.name}.tsv"
    text = run_fixed(rnd.url, rnd.env, "1", args.duration, keep, args.shape)
    used = [p.cpu_seconds() - c for p, c in zip(procs, before, strict=True)]
    us = [
        (a[0] - b[0], a[1] - b[1])
        for a, b in zip((user_system(p) for p in procs), us_before, strict=True)
    ]
    sw = [
        (a[0] - b[0], a[1] - b[1])
        for a, b in zip((switches(p) for p in procs), sw_before, strict=True)
    ]
    extra = []
    if spy is not None:
        spy[0].wait(30)
        extra.append(summarize_spy(spy[1]))
    if args.probe:
        for proc in procs:
            proc.popen.send_signal(signal.SIGUSR2)
        time.sleep(1.5)
    n = max(1, len(request_rows(keep)))
    each = " + ".join(f"{p.name} {c * 1e6 / n:.1f}" for p, c in zip(procs, used, strict=True))
    ctx = ", ".join(
        f"{p.name} {v / n:.3f} / {i / n:.3f}" for p, (v, i) in zip(procs, sw, strict=True)
    )
    split = ", ".join(
        f"{p.name} {u * 1e6 / n:.1f} / {k * 1e6 / n:.1f}"
        for p, (u, k) in zip(procs, us, strict=True)
    )
    return (
        f"round {rnd.index} {rnd.tree} ({args.mode}, load {os.getloadavg()[0]:.2f}): "
        f"{sum(used) * 1e6 / n:.1f} µs CPU/request ({each})\n"
        f"  context switches per request, voluntary / involuntary: {ctx}\n"
        f"  user / system µs per request: {split}\n{text}" + "".join(f"\n{e}" for e in extra)
    )


def _probes(root: Path, index: int) -> None:
    for probe_file in sorted(root.glob(f"probe-*-{index}-*.json")):
        tree_name = probe_file.stem.split("-", 3)[-1]
        rows = request_rows(root / f"r{index}-{tree_name}.tsv")
        print(f"probe {probe_file.name}:\n{correlate(rows, probe_file)}", flush=True)
        for suffix in (".types", ".garbage"):
            extra = Path(str(probe_file) + suffix)
            if extra.exists():
                print(f"  {suffix[1:]}:\n{extra.read_text()}")


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench._tail", description=__doc__)
    parser.add_argument("--trees", default=os.getcwd(), help="comma-separated source trees")
    parser.add_argument("--mode", choices=("hop", "pair"), default="hop")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--full", type=float, default=0.0, help="full load first, S seconds")
    parser.add_argument(
        "--shape",
        choices=("fixed", "bursts", "unlimited", "stagger"),
        default="fixed",
        help="the measured load: the benchmark's fixed rate (evenly paced or in bursts of 20), "
        "its full load, or the fixed rate from four h2load processes started 2.5 ms apart",
    )
    parser.add_argument(
        "--nice",
        action="store_true",
        help="nice -20 instead of --rt: the normal scheduler (wakeup preemption between the "
        "gateways sharing CPU 0) on a busy machine",
    )
    parser.add_argument("--rt", action="store_true", help="real-time priority for the runs")
    parser.add_argument("--probe", action="store_true", help="GCs, loop batches, residence")
    parser.add_argument("--pyspy", action="store_true", help="py-spy the last gateway")
    return parser.parse_args()


def main() -> None:
    args = _parse()
    trees = [Path(t).resolve() for t in args.trees.split(",")]
    if args.rt:
        RT.extend(["chrt", "-r", "10"])
    elif args.nice:
        RT.extend(["nice", "-n", "-20"])
    root = Path(tempfile.mkdtemp(prefix="isthmus-tail-"))
    topo = build(root / "topology")
    (root / "logs").mkdir()
    shim = build_client_cert_shim(root)
    if shim is None:
        raise SystemExit("needs gcc and libssl-dev for the client-certificate shim")
    mtls = client_cert_env(shim, topo.client_cert, topo.client_key)
    ctx: dict[str, object] = {"root": root, "topo": topo}
    with ProcGroup(root / "logs") as shared:
        start_shared(shared, topo, Pinning("0", "1"))
        rt_all(shared)
        for index in range(args.rounds):
            for tree in trees:
                with ProcGroup(root / "logs") as group:
                    if args.mode == "pair":
                        url, env = f"http://127.0.0.1:{topo.alpha_outbound}/", {}
                    else:
                        url, env = f"https://127.0.0.1:{topo.beta_inbound}/", mtls
                    rnd = Round(tree, index, url, env, group)
                    _start(args, ctx, rnd)
                    print(_measure(args, root, rnd), flush=True)
            _probes(root, index)
    print(f"logs in {root}")


if __name__ == "__main__":
    main()
