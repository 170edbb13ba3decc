"""The capacity parts of the data-plane benchmark: bulk tunnel throughput, new mTLS handshakes
per second, and ``--workers`` scaling (see :mod:`bench.dataplane`)."""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench._h2load import Load, LoadResult, run_h2load
from bench._parts import TUNNEL_RATIO_TARGET, WORKERS_SCALING_TARGET, Ctx, GiB, Settings
from bench._procs import Proc, ProcGroup, run_tool, wait_port
from bench._report import Report, Row, verdict
from bench._topology import AUTHORITY, Topology, gateway_argv

TUNNEL_MAX_S = 180.0


def _send(ctx: Ctx, port: int, connect: str | None) -> tuple[float, float, bool]:
    """(bytes, seconds, stopped early) for one bulk transfer."""
    argv = [
        sys.executable,
        "-m",
        "bench._tunnel",
        "send",
        "--port",
        str(port),
        "--bytes",
        str(ctx.settings.tunnel_bytes),
        "--max-seconds",
        str(TUNNEL_MAX_S),
    ]
    if connect:
        argv += ["--connect", connect]
    done = run_tool(argv, cpus=ctx.pin.load, timeout_s=TUNNEL_MAX_S + 120, what="tunnel client")
    result = json.loads(done.stdout)
    return float(result["bytes"]), float(result["seconds"]), bool(result["partial"])


def tunnel(ctx: Ctx) -> None:
    """Bulk bytes through a CONNECT tunnel (isthmus) vs HAProxy TCP mode with TLS."""
    topo, total = ctx.topo, ctx.settings.tunnel_bytes
    print(f"tunnel: {total / GiB:g} GiB client -> A -> TLS -> B -> sink")
    rates: dict[str, float] = {}
    cpu: dict[str, float] = {}
    split: dict[str, str] = {}
    for which, port, connect in (
        ("isthmus", topo.alpha_outbound, f"{AUTHORITY}:{topo.sink_port}"),
        ("haproxy", topo.ha_a_tcp, None),
    ):
        proc_a, proc_b = ctx.procs(which)
        before_a, before_b = proc_a.cpu_seconds(), proc_b.cpu_seconds()
        sent, seconds, partial = _send(ctx, port, connect)
        used_a, used_b = proc_a.cpu_seconds() - before_a, proc_b.cpu_seconds() - before_b
        if partial:
            ctx.report.notes.append(
                f"tunnel {which}: stopped after {TUNNEL_MAX_S:.0f} s at {sent / GiB:.2f} GiB"
            )
        cpu[which] = (used_a + used_b) / (sent / GiB)
        split[which] = f"A {used_a / (sent / GiB):.1f} s + B {used_b / (sent / GiB):.1f} s"
        rates[which] = sent / seconds / 1e6
    ratio = rates["isthmus"] / rates["haproxy"]
    ctx.report.add(
        Row(
            f"bulk tunnel throughput ({total / GiB:g} GiB)",
            rates["isthmus"],
            rates["haproxy"],
            "MB/s",
            target=f">= {TUNNEL_RATIO_TARGET}x",
            verdict=verdict(ratio >= TUNNEL_RATIO_TARGET),
        )
    )
    ctx.report.add(
        Row(
            "proxy CPU per GiB tunnelled (A+B)",
            cpu["isthmus"],
            cpu["haproxy"],
            "s",
            note=f"isthmus {split['isthmus']}; HAProxy {split['haproxy']}",
        )
    )


def handshakes(ctx: Ctx) -> None:
    """Fresh TLS 1.3 mTLS handshakes per second at B's inbound listener."""
    topo = ctx.topo
    print(f"handshakes: fresh TLS 1.3 + client cert to B, {ctx.settings.handshake_s:g} s each")
    rate: dict[str, float] = {}
    cpu_us: dict[str, float] = {}
    for which, port in (("isthmus", topo.beta_inbound), ("haproxy", topo.ha_b_mtls)):
        server = ctx.procs(which)[1]
        argv = [
            sys.executable,
            "-m",
            "bench._handshake",
            "--port",
            str(port),
            "--cert",
            str(topo.client_cert),
            "--key",
            str(topo.client_key),
            "--ca-file",
            str(topo.ca_file),
            "--seconds",
            str(ctx.settings.handshake_s),
            "--threads",
            "4",
        ]
        before = server.cpu_seconds()
        done = run_tool(
            argv,
            cpus=ctx.pin.load,
            timeout_s=ctx.settings.handshake_s + 60,
            what="handshake client",
        )
        used = server.cpu_seconds() - before
        result = json.loads(done.stdout)
        if result["failed"]:
            ctx.report.notes.append(
                f"{which}: {result['failed']} handshakes failed (see {server.log})"
            )
        rate[which] = result["ok"] / result["seconds"]
        cpu_us[which] = used * 1e6 / max(1, result["ok"])
    ctx.report.add(
        Row(
            "new mTLS handshakes/s (B)",
            rate["isthmus"],
            rate["haproxy"],
            "/s",
            note="client is Python on the load CPU; HAProxy's rate is client-bound, "
            "compare server CPU per handshake",
        )
    )
    ctx.report.add(Row("B CPU per handshake", cpu_us["isthmus"], cpu_us["haproxy"], "µs"))


@dataclass(frozen=True)
class WorkersRun:
    """One ``--workers N`` run: h2load's result, and the CPU seconds of the gateway (all its
    workers) and of the load side (h2load and the backend) during it."""

    result: LoadResult
    gateway_cpu_s: float
    load_cpu_s: float

    def cores(self, cpu_s: float) -> float:
        return cpu_s / max(self.result.seconds, 1e-9)


def _children_cpu_s() -> float:
    """User + system CPU of this process's waited-for children (h2load, once it ended)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _one_worker_run(
    topo: Topology, settings: Settings, logs: Path, count: int, backend: Proc
) -> WorkersRun:
    with ProcGroup(logs) as group:
        proc = group.start(
            f"isthmus-beta-workers{count}", gateway_argv(topo.beta_config, count), cpus=None
        )
        wait_port(topo.beta_outbound, timeout_s=30.0, proc=proc)
        time.sleep(1.0 + count)  # every worker bound (SO_REUSEPORT spreads new connections)
        url = f"http://127.0.0.1:{topo.beta_outbound}/"
        run_h2load(
            url,
            AUTHORITY,
            Load(clients=8, streams=8, requests=settings.warm_up_requests),
            cpus=None,
        )
        before = proc.cpu_seconds(), backend.cpu_seconds(), _children_cpu_s()
        load = Load(
            clients=16,  # enough connections for SO_REUSEPORT to spread them evenly
            streams=max(1, settings.clients * settings.streams // 16),
            duration_s=settings.duration_s,
        )
        result = run_h2load(url, AUTHORITY, load, cpus=None)
        gateway = proc.cpu_seconds() - before[0]
        load_side = backend.cpu_seconds() - before[1] + _children_cpu_s() - before[2]
        return WorkersRun(result, gateway, load_side)


def workers(topo: Topology, settings: Settings, logs: Path, rep: Report, backend: Proc) -> None:
    """One hop (B's outbound -> backend), ``--workers 1`` then ``2``, nothing pinned."""
    print("workers: one gateway hop, --workers 1 then 2, unpinned")
    run1 = _one_worker_run(topo, settings, logs, 1, backend)
    run2 = _one_worker_run(topo, settings, logs, 2, backend)
    one, two = run1.result, run2.result
    scaling = two.rps / one.rps if one.rps else 0.0
    rep.add(Row("one hop req/s, --workers 1", one.rps, None, "req/s"))
    rep.add(Row("one hop req/s, --workers 2", two.rps, None, "req/s"))
    us1 = run1.gateway_cpu_s * 1e6 / max(1, one.succeeded)
    us2 = run2.gateway_cpu_s * 1e6 / max(1, two.succeeded)
    busy1, busy2 = run1.cores(run1.gateway_cpu_s), run2.cores(run2.gateway_cpu_s)
    load_cores = run2.cores(run2.load_cpu_s)
    rep.add(
        Row(
            "--workers 2 / --workers 1",
            scaling,
            None,
            "x",
            target=f">= {WORKERS_SCALING_TARGET}x",
            verdict=verdict(scaling >= WORKERS_SCALING_TARGET),
            note=f"gateway CPU per request {us1:.0f} µs with 1 worker ({busy1:.2f} cores busy), "
            f"{us2:.0f} µs with 2 ({busy2:.2f} cores busy); h2load and the backend used "
            f"{load_cores:.2f} cores beside 2 workers (of {os.cpu_count()} CPUs: they share the "
            "cores with the workers); a ratio above 2 means one worker was not CPU-bound",
        )
    )
