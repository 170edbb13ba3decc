"""The ``hop`` part of the data-plane benchmark: each hop measured on its own.

- **B**: h2load presenting alpha's SVID (through the ``LD_PRELOAD`` shim) over mTLS straight at
  B's inbound listener; B -> backend. Reference: the same at HAProxy B.
- **A**: h2load (h2c) into a second isthmus A whose peer ``beta`` is HAProxy B (it presents
  beta's SVID, so A accepts it as beta); A -> HAProxy B -> backend. Reference: HAProxy A ->
  HAProxy B. For this part HAProxy B moves to the load CPU, like the backend behind B: the
  latency includes HAProxy B's hop and the backend (conservative), not their CPU on A's core.

Either way only the measured proxy is busy on the proxy CPU; what it talks to is on the load
CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench._h2load import SHIM_PACKAGES, Load, LoadResult, client_cert_env, run_h2load
from bench._parts import (
    BURST_SIZE,
    FIXED_RPS,
    HOP_RPS_PER_CORE_TARGET,
    Ctx,
    Shape,
    per_core,
)
from bench._procs import Proc, ProcGroup, wait_port
from bench._report import Row, verdict
from bench._topology import AUTHORITY, START_TIMEOUT_S, gateway_argv


@dataclass(frozen=True)
class Hop:
    """One hop to measure: per side (isthmus, haproxy), the URL h2load targets and the process
    whose CPU is the hop's."""

    name: str
    urls: dict[str, str]
    servers: dict[str, Proc]
    env: dict[str, str] | None
    note: str
    bursts: str = f"bursts of {BURST_SIZE}"  # what -c 4 --rps 500 gives at this hop


def _run(ctx: Ctx, hop: Hop, load: Load) -> dict[str, tuple[LoadResult, float]]:
    results = {}
    for which, url in hop.urls.items():
        server = hop.servers[which]
        before = server.cpu_seconds()
        result = run_h2load(url, AUTHORITY, load, cpus=ctx.pin.load, env=hop.env)
        results[which] = (result, server.cpu_seconds() - before)
        if not result.ok:
            ctx.report.notes.append(
                f"hop {hop.name} {which}: {result.failed} failed of {result.total}"
            )
    return results


def _us(result: LoadResult, cpu: float) -> float:
    return cpu * 1e6 / max(1, result.succeeded)


def measure(ctx: Ctx, hop: Hop) -> None:
    """Full load, then the fixed rate evenly paced and in bursts, through ``hop``; adds its
    rows."""
    full = _run(ctx, hop, ctx.settings.full())
    (iso, iso_cpu), (hap, hap_cpu) = full["isthmus"], full["haproxy"]
    rep, name = ctx.report, f"one hop {hop.name}"
    rep.add(Row(f"{name}: req/s at full load", iso.rps, hap.rps, "req/s"))
    rep.add(Row(f"{name}: CPU per request", _us(iso, iso_cpu), _us(hap, hap_cpu), "µs"))
    iso_core = per_core(iso, iso_cpu)
    rep.add(
        Row(
            f"{name}: req/s per core",
            iso_core,
            per_core(hap, hap_cpu),
            "req/s",
            target=f">= {HOP_RPS_PER_CORE_TARGET:,.0f}",
            verdict=verdict(iso_core >= HOP_RPS_PER_CORE_TARGET),
            note=hop.note,
        )
    )
    for shape in ctx.settings.shapes(hop.bursts):
        _fixed_rows(ctx, name, _run(ctx, hop, shape.load), shape)


def _fixed_rows(
    ctx: Ctx, name: str, fixed: dict[str, tuple[LoadResult, float]], shape: Shape
) -> None:
    (iso, iso_cpu), (hap, hap_cpu) = fixed["isthmus"], fixed["haproxy"]
    rep, rate = ctx.report, f"{FIXED_RPS:,} req/s{shape.label}"
    rep.add(Row(f"{name}: achieved rate at {rate}", iso.rps, hap.rps, "req/s"))
    rep.add(Row(f"{name}: CPU per request at {rate}", _us(iso, iso_cpu), _us(hap, hap_cpu), "µs"))
    rep.add(Row(f"{name}: p50 at {rate}", iso.p50_ms, hap.p50_ms, "ms"))
    target, mark = shape.p99_verdict(iso.p99_ms)
    rep.add(Row(f"{name}: p99 at {rate}", iso.p99_ms, hap.p99_ms, "ms", target, mark))


def hop_b(ctx: Ctx) -> None:
    """B alone: mTLS straight at its inbound listener (needs the client-cert shim)."""
    if ctx.shim is None:
        line = f"hop B: skipped; building the h2load client-cert shim needs {SHIM_PACKAGES}"
        print(line)
        ctx.report.notes.append(line)
        return
    topo = ctx.topo
    print("hop B: h2load with alpha's SVID, mTLS straight at B (B -> backend)")
    hop = Hop(
        "B",
        {
            "isthmus": f"https://127.0.0.1:{topo.beta_inbound}/",
            "haproxy": f"https://127.0.0.1:{topo.ha_b_mtls}/",
        },
        {"isthmus": ctx.sut.isthmus[1], "haproxy": ctx.sut.haproxy[1]},
        client_cert_env(ctx.shim, topo.client_cert, topo.client_key),
        "B is the authenticated leg (incoming-header validation off)",
        # the TLS connections' --rps ticks start at their handshakes: mostly apart
        "bursts of 5-20",
    )
    measure(ctx, hop)


def hop_a(ctx: Ctx) -> None:
    """A alone: a second isthmus A (same SVID) whose peer is HAProxy B, started for this;
    HAProxy B on the load CPU meanwhile."""
    print(
        "hop A: h2load (h2c) -> A -> HAProxy B -> backend, against HAProxy A -> HAProxy B "
        "(HAProxy B on the load CPU)"
    )
    peer = ctx.sut.haproxy[1]
    peer.move_to(ctx.pin.load)
    try:
        _hop_a(ctx, peer)
    finally:
        peer.move_to(ctx.pin.proxies)


def _hop_a(ctx: Ctx, peer: Proc) -> None:
    topo = ctx.topo
    with ProcGroup(topo.root.parent / "logs") as group:
        alpha = group.start(
            "isthmus-alpha-hop", gateway_argv(topo.alpha_hop_config), cpus=ctx.pin.proxies
        )
        wait_port(topo.alpha_hop_outbound, timeout_s=START_TIMEOUT_S, proc=alpha)
        url = f"http://127.0.0.1:{topo.alpha_hop_outbound}/"
        warm = run_h2load(
            url, AUTHORITY, Load(clients=2, streams=8, requests=1_000), cpus=ctx.pin.load
        )
        if warm.succeeded == 0:
            ctx.report.notes.append(
                f"hop A: nothing got through A -> HAProxy B ({peer.log}); see {alpha.log}"
            )
            return
        hop = Hop(
            "A",
            {"isthmus": url, "haproxy": ctx.url("haproxy")},
            {"isthmus": alpha, "haproxy": ctx.sut.haproxy[0]},
            None,
            "A validates incoming headers; its peer is HAProxy B (on the load CPU) in both columns",
        )
        measure(ctx, hop)


def hops(ctx: Ctx) -> None:
    """Both hops, each on its own."""
    hop_b(ctx)
    hop_a(ctx)
