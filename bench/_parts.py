"""The measured parts of the data-plane benchmark, each run against isthmus then HAProxy with
identical load, each adding rows to the report (see :mod:`bench.dataplane`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench._h2load import Load, LoadResult, run_h2load
from bench._procs import BenchError, Proc
from bench._report import Report, Row, verdict
from bench._topology import AUTHORITY, Pinning, Topology

HOP_RPS_PER_CORE_TARGET = 9_000.0
TUNNEL_RATIO_TARGET = 0.85
P99_PER_HOP_TARGET_MS = 3.5
WORKERS_SCALING_TARGET = 1.8
FIXED_RPS = 2_000
# h2load's --rps timer ticks every max(RPS_TICK_S, 1/rps) per connection and sends what
# accrued. The fixed rate as evenly as h2load can pace it: 10 connections at 200 req/s opened
# 1 ms apart, 2 requests every millisecond. The same rate from 4 connections opened together
# (500 req/s each) ticks in phase through h2c: BURST_SIZE requests at once every tick,
# measured too, as the harsher shape.
RPS_TICK_S = 0.01
FIXED_CLIENTS = 10
FIXED_CONNECT_EVERY_MS = 1
BURST_CLIENTS = 4
BURST_SIZE = round(FIXED_RPS * RPS_TICK_S)
GiB = 1 << 30


@dataclass(frozen=True)
class Shape:
    """One fixed-rate load: appended to its rows' names, and whether the p99 target is read
    on it."""

    load: Load
    label: str
    target: bool

    def p99_verdict(self, p99_ms: float) -> tuple[str, str]:
        """(target, verdict) of a p99 row: empty unless the target is read on this shape."""
        if not self.target:
            return "", ""
        return f"<= {P99_PER_HOP_TARGET_MS} ms", verdict(0 < p99_ms <= P99_PER_HOP_TARGET_MS)


@dataclass(frozen=True)
class Settings:
    """How hard and how long each part runs."""

    duration_s: float
    clients: int
    streams: int
    tunnel_bytes: int
    handshake_s: float
    warm_up_requests: int

    @classmethod
    def for_run(
        cls,
        *,
        quick: bool,
        duration_s: float | None,
        clients: int,
        streams: int,
        tunnel_bytes: int | None,
    ) -> Settings:
        return cls(
            duration_s=duration_s or (3.0 if quick else 10.0),
            clients=clients,
            streams=streams,
            tunnel_bytes=tunnel_bytes or (GiB // 8 if quick else 2 * GiB),
            handshake_s=2.0 if quick else 5.0,
            warm_up_requests=1_000 if quick else 5_000,
        )

    def full(self) -> Load:
        return Load(clients=self.clients, streams=self.streams, duration_s=self.duration_s)

    def fixed(self) -> Load:
        """The fixed rate, evenly paced (2 requests a millisecond); ``-n``, as h2load refuses
        ``-D`` with ``-r``."""
        return Load(
            clients=FIXED_CLIENTS,
            streams=self.streams,
            requests=round(FIXED_RPS * self.duration_s),
            rps_per_client=FIXED_RPS / FIXED_CLIENTS,
            connect_every_ms=FIXED_CONNECT_EVERY_MS,
        )

    def bursts(self) -> Load:
        """The same rate in synchronized bursts (:data:`BURST_SIZE` every 10 ms)."""
        return Load(
            clients=BURST_CLIENTS,
            streams=self.streams,
            duration_s=self.duration_s,
            rps_per_client=FIXED_RPS / BURST_CLIENTS,
        )

    def shapes(self, bursts: str = f"bursts of {BURST_SIZE}") -> tuple[Shape, Shape]:
        """The fixed rate evenly paced (the target's reading), then in bursts (``bursts``
        names them in the rows: through TLS the connections need not tick in phase)."""
        return Shape(self.fixed(), "", True), Shape(self.bursts(), f", {bursts}", False)

    def describe(self) -> str:
        loads = {"full load": self.full(), "fixed rate": self.fixed(), "in bursts": self.bursts()}
        return "; ".join(f"{name} {' '.join(load.flags())}" for name, load in loads.items())


@dataclass(frozen=True)
class Pair:
    """Proxy processes (A, B) of each topology."""

    isthmus: tuple[Proc, Proc]
    haproxy: tuple[Proc, Proc]


@dataclass(frozen=True)
class Ctx:
    """What every part needs."""

    topo: Topology
    sut: Pair
    settings: Settings
    pin: Pinning
    chosen: frozenset[str]
    report: Report
    shim: Path | None = None

    def url(self, which: str) -> str:
        port = self.topo.alpha_outbound if which == "isthmus" else self.topo.ha_a_h2c
        return f"http://127.0.0.1:{port}/"

    def procs(self, which: str) -> tuple[Proc, Proc]:
        return self.sut.isthmus if which == "isthmus" else self.sut.haproxy


def _loaded(ctx: Ctx, which: str, load: Load) -> tuple[LoadResult, float, float]:
    """h2load against ``which``; returns the result and the CPU seconds of A and of B."""
    proc_a, proc_b = ctx.procs(which)
    before = proc_a.cpu_seconds(), proc_b.cpu_seconds()
    result = run_h2load(ctx.url(which), AUTHORITY, load, cpus=ctx.pin.load)
    cpu_a, cpu_b = proc_a.cpu_seconds() - before[0], proc_b.cpu_seconds() - before[1]
    if not result.ok:
        ctx.report.notes.append(
            f"{which}: {result.failed} failed and {result.non_2xx} non-2xx of {result.total} "
            f"requests (see {proc_a.log} and {proc_b.log})"
        )
    return result, cpu_a, cpu_b


def _shown(load: Load) -> str:
    argv = load.argv("http://127.0.0.1:<A outbound>/", AUTHORITY, Path("<log>"))
    return " ".join(f"'{arg}'" if " " in arg else arg for arg in argv)


def warm_up(ctx: Ctx) -> None:
    """A short run through each topology; raises :class:`BenchError` if nothing gets through."""
    load = Load(clients=2, streams=8, requests=ctx.settings.warm_up_requests)
    for which in ("isthmus", "haproxy"):
        result = run_h2load(ctx.url(which), AUTHORITY, load, cpus=ctx.pin.load)
        if result.succeeded == 0:
            logs = ", ".join(str(p.log) for p in ctx.procs(which))
            raise BenchError(f"no request got through {which} (A -> B -> backend); see {logs}")


def per_core(result: LoadResult, cpu: float) -> float:
    """Requests one core would serve at this CPU cost: succeeded / CPU seconds."""
    return result.succeeded / cpu if cpu > 0 else 0.0


def _rps_rows(
    rep: Report,
    iso: LoadResult,
    iso_cpu: tuple[float, float],
    hap: LoadResult,
    hap_cpu: tuple[float, float],
) -> None:
    iso_us = sum(iso_cpu) * 1e6 / max(1, iso.succeeded)
    hap_us = sum(hap_cpu) * 1e6 / max(1, hap.succeeded)
    rep.add(Row("req/s at full load (2 hops)", iso.rps, hap.rps, "req/s"))
    rep.add(Row("proxy CPU per request (A+B)", iso_us, hap_us, "µs"))
    rep.add(
        Row(
            "proxy CPU busy at full load (A+B)",
            sum(iso_cpu) / iso.seconds if iso.seconds else None,
            sum(hap_cpu) / hap.seconds if hap.seconds else None,
            "cores",
            note="below 1.0 on the pinned core = the proxies waited (latency-bound) or other "
            "processes on the machine took the core; compare CPU per request",
        )
    )
    target = f">= {HOP_RPS_PER_CORE_TARGET:,.0f}"
    for index, hop in enumerate(("A (outbound, h2c in, header validation on)", "B (inbound)")):
        iso_core = per_core(iso, iso_cpu[index])
        rep.add(
            Row(
                f"req/s per core, hop {hop}",
                iso_core,
                per_core(hap, hap_cpu[index]),
                "req/s",
                target=target,
                verdict=verdict(iso_core >= HOP_RPS_PER_CORE_TARGET),
            )
        )


def full_load(ctx: Ctx) -> None:
    """req/s, CPU per request and latency at full load."""
    print(f"full load: {_shown(ctx.settings.full())}")
    res: dict[str, tuple[LoadResult, float, float]] = {}
    for which in ("isthmus", "haproxy"):
        res[which] = _loaded(ctx, which, ctx.settings.full())
    (iso, iso_a, iso_b), (hap, hap_a, hap_b) = res["isthmus"], res["haproxy"]
    rep = ctx.report
    if "rps" in ctx.chosen:
        _rps_rows(rep, iso, (iso_a, iso_b), hap, (hap_a, hap_b))
        direct = f"http://127.0.0.1:{ctx.topo.backend_h2c_port}/"
        ceiling = run_h2load(direct, AUTHORITY, ctx.settings.full(), cpus=ctx.pin.load)
        line = (
            f"load-side ceiling: the same h2load straight at the backend (no proxy) does "
            f"{ceiling.rps:,.0f} req/s; a proxy result near it is limited by the load CPU"
        )
        print(f"  {line}")
        rep.notes.append(line)
    if "latency" in ctx.chosen:
        rep.add(Row("p50 latency at full load", iso.p50_ms, hap.p50_ms, "ms"))
        rep.add(Row("p99 latency at full load", iso.p99_ms, hap.p99_ms, "ms"))


def fixed_rate(ctx: Ctx) -> None:
    """p50/p99 at a fixed 2,000 req/s, evenly paced (the target's reading: per hop =
    end-to-end / 2), then in bursts of 20 (the harsher shape, reported beside it)."""
    for shape in ctx.settings.shapes():
        print(f"fixed rate{shape.label}: {_shown(shape.load)}")
        _fixed_rows(ctx, shape)


def _fixed_rows(ctx: Ctx, shape: Shape) -> None:
    iso, iso_a, iso_b = _loaded(ctx, "isthmus", shape.load)
    hap, hap_a, hap_b = _loaded(ctx, "haproxy", shape.load)
    rep, rate = ctx.report, f"{FIXED_RPS:,} req/s{shape.label}"
    rep.add(Row(f"achieved rate at {rate}", iso.rps, hap.rps, "req/s"))
    rep.add(
        Row(
            f"proxy CPU per request at {rate} (A+B)",
            (iso_a + iso_b) * 1e6 / max(1, iso.succeeded),
            (hap_a + hap_b) * 1e6 / max(1, hap.succeeded),
            "µs",
        )
    )
    rep.add(Row(f"p50 at {rate} (2 hops)", iso.p50_ms, hap.p50_ms, "ms"))
    rep.add(Row(f"p99 at {rate} (2 hops)", iso.p99_ms, hap.p99_ms, "ms"))
    per_hop = iso.p99_ms / 2
    target, mark = shape.p99_verdict(per_hop)
    note = "end-to-end p99 / 2 (includes backend and client time, so conservative)"
    if not shape.target:
        note += f"; end to end, a burst is {BURST_SIZE} requests of both proxies' CPU on one core"
    rep.add(Row(f"p99 per hop at {rate}", per_hop, hap.p99_ms / 2, "ms", target, mark, note))
