"""Diagnostic (not a benchmark of record): where the p99 at a fixed rate comes from.

    .venv/bin/python -m bench._tail --trees /work/main,. --mode hop|pair --rounds 3 --rt

Builds the data-plane topology once; then, for each round and each tree (alternating), starts
that tree's gateways (``DIR/.venv/bin/python -m isthmus gateway run``, B alone for ``hop``
(h2load over mTLS straight at B, like ``bench.dataplane``'s hop part), A and B for ``pair``
(h2c into A)), pinned to CPU 0 with h2load and the backend on CPU 1, and runs the benchmark's
fixed rate (``h2load -c 4 -m 16 --rps 500``). Prints p50/p99/p99.9 from h2load's request log,
each gateway's CPU per request, the burst structure of the arrivals (h2load's ``--rps`` timer
fires every 10 ms: 5 requests per connection) and the median latency by position in a burst.

``--rt``: every measured process (gateways, backend, h2load) at real-time round-robin
priority, so a shared machine's other load does not preempt them: latencies comparable
between trees on a busy machine. ``--probe``: the gateways run under ``bench/_loopprobe.py``
(GCs, long loop batches, per-task CPU, each request's residence; ``LOOPPROBE_SAVEALL=1``: type
counts of the cyclic garbage). ``--pyspy``: py-spy of the last gateway (needs ``py-spy`` in
the venv). ``--full S``: S seconds at full load first.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
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
from bench._procs import Proc, ProcGroup, pinned, process_tree, run_tool, wait_port
from bench._topology import AUTHORITY, START_TIMEOUT_S, Pinning, Topology, build, start_shared

BURST_GAP_US = 300
FIXED_CLIENTS = 4


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


def _rows(log: Path) -> list[tuple[int, int]]:
    rows = []
    for line in log.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[1].startswith("2"):
            rows.append((int(parts[0]), int(parts[2])))
    rows.sort()
    return rows


def split_bursts(rows: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """``(start µs, latency µs)`` rows (sorted by start) cut where a gap exceeds BURST_GAP_US."""
    bursts: list[list[tuple[int, int]]] = []
    last = -(10**18)
    for start, lat in rows:
        if start - last > BURST_GAP_US:
            bursts.append([])
        bursts[-1].append((start, lat))
        last = start
    return bursts


def slow_windows(rows: list[tuple[int, int]], top: int = 12) -> list[tuple[float, float, int]]:
    """(start s, end s, worst µs) of the bursts holding the slowest requests."""
    bursts = split_bursts(rows)
    worst = sorted(bursts, key=lambda b: -max(lat for _, lat in b))[:top]
    return sorted(
        (b[0][0] / 1e6, max(s + lat for s, lat in b) / 1e6, max(lat for _, lat in b)) for b in worst
    )


def _in_run(events: list[list[float]], rows: list[tuple[int, int]]) -> list[list[float]]:
    first, last = rows[0][0] / 1e6, rows[-1][0] / 1e6 + 1
    return [e for e in events if first <= e[0] <= last]


def _gc_lines(data: dict[str, list[list[float]]], rows: list[tuple[int, int]]) -> list[str]:
    by_gen: dict[int, list[float]] = {}
    for _, gen, ms, _ in _in_run(data["gc"], rows):
        by_gen.setdefault(int(gen), []).append(ms)
    kinds = ", ".join(
        f"gen{g}: {len(v)} x median {statistics.median(v):.2f} max {max(v):.2f} ms"
        for g, v in sorted(by_gen.items())
    )
    lines = [f"  GCs during the run: {kinds or 'none'}"]
    counts = data.get("counts", [])
    if counts:
        lines.append(f"  gc.get_count() first {counts[0][1:]}, last {counts[-1][1:]}")
    bms = sorted(b[1] for b in _in_run(data["batches"], rows))
    if bms:
        median = statistics.median(bms)
        lines.append(
            f"  loop batches >= 1 ms CPU: {len(bms)}, median {median:.2f} max {bms[-1]:.2f} ms"
        )
    return lines


def _residence_line(res: list[list[float]]) -> str:
    wall = sorted(r[0] for r in res)
    cpu = sorted(r[1] for r in res)
    return (
        f"  residence (parse -> write), {len(res)} requests: wall p50 "
        f"{percentile(wall, 0.5):.2f} p99 {percentile(wall, 0.99):.2f} p99.9 "
        f"{percentile(wall, 0.999):.2f} ms; CPU p50 {percentile(cpu, 0.5):.2f} p99 "
        f"{percentile(cpu, 0.99):.2f} p99.9 {percentile(cpu, 0.999):.2f} ms"
    )


def correlate(rows: list[tuple[int, int]], probe: Path) -> str:
    """What the probe saw during the run: GCs, long loop batches, each request's residence
    in the gateway, CPU per task, and the GCs/batches inside the slowest bursts' windows."""
    data = json.loads(probe.read_text())
    out = _gc_lines(data, rows)
    res = data.get("residence", [])[-len(rows) :]
    if res:
        out.append(_residence_line(res))
    per_task = sorted(data.get("per_task", {}).items(), key=lambda kv: -kv[1][1])
    for name, (count, total, worst_ms) in per_task[:10]:
        out.append(
            f"    task {name.rsplit('.', 2)[-2:]}: {count} steps, {total:.0f} ms CPU, "
            f"{total * 1000 / max(1, count):.1f} µs/step, max {worst_ms:.2f} ms"
        )
    first = rows[0][0] / 1e6
    for start, end, worst in slow_windows(rows):
        evs = [f"gc{g}:{ms:.1f}" for t, g, ms, _ in data["gc"] if start - 0.002 <= t <= end]
        evs += [
            f"batch:{ms:.1f}ms/{n}steps[{','.join(f'{name}:{sm:.1f}' for name, sm in top[:3])}]"
            for t, ms, n, top in data["batches"]
            if start - 0.002 <= t <= end + 0.002
        ]
        out.append(f"  t+{start - first:6.3f} s worst {worst / 1000:.2f} ms: {' '.join(evs)}")
    return "\n".join(out)


def summarize_spy(path: Path, top: int = 40) -> str:
    """Self samples per function and inclusive samples per our modules, from py-spy raw."""
    self_count: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        count = int(n)
        total += count
        frames = stack.split(";")
        leaf = frames[-1]
        self_count[leaf] = self_count.get(leaf, 0) + count
        seen = set()
        for fr in frames:
            name = fr.split(" (")[0]
            mod = fr.split("(")[-1].split(":")[0] if "(" in fr else fr
            key = f"{name} [{mod.rsplit('/', 2)[-2:] if '/' in mod else mod}]"
            if key not in seen:
                seen.add(key)
                incl[key] = incl.get(key, 0) + count
    out = [f"  py-spy: {total} samples"]
    for leaf, n in sorted(self_count.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"    self {100 * n / total:5.1f}%  {leaf[-110:]}")
    for key, n in sorted(incl.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"    incl {100 * n / total:5.1f}%  {key[-110:]}")
    return "\n".join(out)


def analyse(rows: list[tuple[int, int]]) -> str:
    """Bursts = requests whose start times are within BURST_GAP_US of the previous one."""
    bursts = split_bursts(rows)
    sizes = [len(b) for b in bursts]
    lats = sorted(lat for _, lat in rows)
    p99 = percentile(lats, 0.99)
    slow = [(i, b) for i, b in enumerate(bursts) if max(lat for _, lat in b) >= p99]
    by_pos: dict[int, list[int]] = {}
    for b in bursts:
        for pos, (_, lat) in enumerate(b):
            by_pos.setdefault(min(pos, 20), []).append(lat)
    pos_txt = " ".join(
        f"{pos}:{statistics.median(v) / 1000:.2f}" for pos, v in sorted(by_pos.items())
    )
    slow_sizes = [len(b) for _, b in slow]
    gaps = []
    for i, _b in slow[:400]:
        if i > 0:
            prev_end = max(s + lat for s, lat in bursts[i - 1])
            gaps.append((prev_end - bursts[i][0][0]) / 1000)
    return (
        f"  bursts {len(bursts)}, size median {statistics.median(sizes)} p90 "
        f"{percentile(sorted(sizes), 0.9)} max {max(sizes)}\n"
        f"  bursts holding a >= p99 request: {len(slow)}, their size median "
        f"{statistics.median(slow_sizes) if slow_sizes else 0}; previous burst still running "
        f"at their start (ms, median) {statistics.median(gaps) if gaps else 0:.2f}\n"
        f"  median latency (ms) by position in burst: {pos_txt}"
    )


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


def user_system(proc: Proc) -> tuple[float, float]:
    """(user, system) CPU seconds of a process tree so far."""
    user = system = 0.0
    for pid in process_tree(proc.popen.pid):
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        user += int(fields[11]) / os.sysconf("SC_CLK_TCK")
        system += int(fields[12]) / os.sysconf("SC_CLK_TCK")
    return user, system


def switches(proc: Proc) -> tuple[int, int]:
    """(voluntary, involuntary) context switches of a process tree so far."""
    vol = invol = 0
    for pid in process_tree(proc.popen.pid):
        try:
            text = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("voluntary_ctxt_switches"):
                vol += int(line.split()[1])
            elif line.startswith("nonvoluntary_ctxt_switches"):
                invol += int(line.split()[1])
    return vol, invol


def staggered(
    url: str, env: dict[str, str], cpus: str, duration: float, keep: Path
) -> tuple[int, int, int, float]:
    """The same 2,000 req/s as four ``h2load -c 1 --rps 500`` started 2.5 ms apart, so the
    connections' 10 ms timers fall in different phases (bursts of 5, not 20): a diagnostic of
    how much of the p99 is the four connections' bursts lining up. Their logs are merged
    into ``keep``; returns (total, succeeded, failed, req/s summed)."""
    load = Load(clients=1, streams=16, duration_s=duration, rps_per_client=500)
    logs = [keep.with_suffix(f".{i}.tsv") for i in range(FIXED_CLIENTS)]
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
    """The benchmark's fixed rate; ``shape`` ``unlimited``: its full load ``-c 8 -m 16``;
    ``stagger``: the fixed rate from four staggered h2load processes (:func:`staggered`)."""
    if shape == "stagger":
        total, ok, failed, rps = staggered(url, env, cpus, duration, keep)
    else:
        load = (
            Load(clients=8, streams=16, duration_s=duration)
            if shape == "unlimited"
            else Load(clients=4, streams=16, duration_s=duration, rps_per_client=500)
        )
        done = run_tool(
            [*RT, *load.argv(url, AUTHORITY, keep)],
            cpus=cpus,
            timeout_s=duration + 60,
            what="h2load",
            env=env,
        )
        total, ok, failed, _, _, rps = parse_summary(done.stdout)
    rows = _rows(keep)
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
        n = max(1, len(_rows(log)))
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
    n = max(1, len(_rows(keep)))
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
        rows = _rows(root / f"r{index}-{tree_name}.tsv")
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
        choices=("fixed", "unlimited", "stagger"),
        default="fixed",
        help="the measured load: the benchmark's fixed rate, its full load, or the fixed rate "
        "from four h2load processes started 2.5 ms apart",
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
