"""What ``bench._tail`` reports: h2load request logs cut into bursts, the probe's events
correlated with the slowest bursts, py-spy summaries, and per-process CPU split and context
switches (``/proc``). Pure functions over files, no processes started."""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

from bench._h2load import percentile
from bench._procs import Proc, process_tree

BURST_GAP_US = 300


def request_rows(log: Path) -> list[tuple[int, int]]:
    """``(start µs, latency µs)`` of the successful requests in an h2load log, by start."""
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
    for leaf, samples in sorted(self_count.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"    self {100 * samples / total:5.1f}%  {leaf[-110:]}")
    for key, samples in sorted(incl.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"    incl {100 * samples / total:5.1f}%  {key[-110:]}")
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
