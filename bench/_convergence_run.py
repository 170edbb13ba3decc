"""One measured size: join N simulated gateways to a running federation, let them settle,
measure reports at 1/s each, flip one cluster's endpoint health, time every watcher's ACK of the
new version, then saturate the report path. Every phase is bounded by its own time budget.
"""

from __future__ import annotations

import math
import random
import sys
import time
from dataclasses import dataclass

import httpx
import trio

from bench._convergence_gateways import (
    GATEWAYS_PER_CONNECTION,
    JoinFailed,
    Observations,
    SimGateway,
    connections_for,
    join_one,
    make_identity,
    report_loop,
    saturate,
    send_report,
    shared_clients,
    watch_loop,
)
from bench._convergence_probe import measure_build
from bench._convergence_server import FederationProcess, create_tokens
from bench._convergence_stats import Flip, RateResult, SizeResult, Spread
from federation.client import fetch_pinned_ca
from federation.service import pinned_client_context

JOIN_CONCURRENCY = 16
_T0 = time.monotonic()


def progress(message: str) -> None:
    """One line on stderr, with seconds since the benchmark started."""
    print(f"  [{time.monotonic() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


QUIET_S = 1.0
SATURATION_WORKERS = 64


class CpuMeter:
    """CPU seconds used by the server process and by this benchmark since construction."""

    def __init__(self, server: FederationProcess) -> None:
        self._server = server
        self.t0 = time.monotonic()
        self._start = (server.cpu_seconds(), time.process_time())

    def used(self) -> tuple[float, float]:
        return (
            self._server.cpu_seconds() - self._start[0],
            time.process_time() - self._start[1],
        )

    def percent(self) -> tuple[float, float]:
        seconds = max(time.monotonic() - self.t0, 1e-9)
        server, bench = self.used()
        return (100 * server / seconds, 100 * bench / seconds)


@dataclass(frozen=True)
class Budget:
    """Seconds allowed per phase."""

    join_s: float
    settle_s: float
    converge_s: float
    steady_s: float
    saturate_s: float
    per_connection: int = GATEWAYS_PER_CONNECTION
    flips: int = 3
    deadline: float = math.inf  # time.monotonic() by which this size must be done

    def clip(self, seconds: float) -> float:
        """``seconds``, shortened so the phase ends by the deadline."""
        return max(0.0, min(seconds, self.deadline - time.monotonic()))


def _rate(
    obs: Observations,
    since: float,
    until: float,
    offered: float,
    cpu_s: tuple[float, float],
    *,
    confirmed_only: bool = False,
) -> RateResult:
    """Reports in ``[since, until)``: sent (the answered ones' latency shows whether the
    federation keeps up), or ``confirmed_only`` (answered, or sent before an answered one)."""
    window = [lat for done, lat in obs.report_log if since <= done < until]
    if confirmed_only:
        confirmed = sum(count for done, count in obs.report_done if since <= done < until)
    else:
        confirmed = sum(1 for sent in obs.report_sent if since <= sent < until)
    seconds = max(until - since, 1e-9)
    return RateResult(
        offered_per_s=offered,
        achieved_per_s=confirmed / seconds,
        latency=Spread.of(window),
        errors=0,
        server_cpu_pct=100 * cpu_s[0] / seconds,
        seconds=seconds,
        bench_cpu_pct=100 * cpu_s[1] / seconds,
    )


async def _join_all(
    gateways: list[SimGateway],
    tokens: dict[str, str],
    ca_pem: str,
    server: FederationProcess,
    result: SizeResult,
    budget_s: float,
) -> None:
    limiter = trio.Semaphore(JOIN_CONCURRENCY)
    started = time.monotonic()

    async def one(gw: SimGateway) -> None:
        async with limiter:
            try:
                await join_one(gw, tokens[gw.name], ca_pem, server.fingerprint, 30.0)
            except (JoinFailed, httpx.HTTPError) as err:
                result.errors["join"] = result.errors.get("join", 0) + 1
                if len(result.notes) < 3:
                    result.notes.append(str(err)[:200])
                return
            result.joined += 1
            if result.joined % max(1, len(gateways) // 10) == 0:
                result.join_timeline.append((round(time.monotonic() - started, 2), result.joined))

    with trio.move_on_after(budget_s):
        async with trio.open_nursery() as nursery:
            for gw in gateways:
                nursery.start_soon(one, gw)
    result.join_s = time.monotonic() - started


async def _quiet(obs: Observations, budget_s: float) -> None:
    """Until no watcher got a new version for QUIET_S (bounded)."""
    with trio.move_on_after(budget_s):
        while time.monotonic() - obs.last_new_version_at < QUIET_S:  # noqa: ASYNC110 - a timestamp
            await trio.sleep(0.05)


async def _settle(obs: Observations, gateways: list[SimGateway], budget_s: float) -> float | None:
    """Seconds until every watcher routes to the target and no version changed for QUIET_S."""
    started = time.monotonic()
    names = [gw.name for gw in gateways]
    with trio.move_on_after(budget_s):
        while True:
            now = time.monotonic()
            routed = all(obs.routed.get(name, False) for name in names)
            if routed and now - obs.last_new_version_at >= QUIET_S:
                return now - started
            await trio.sleep(0.05)
    return None


async def _streams_open(gateways: list[SimGateway], budget_s: float) -> float:
    """Seconds until every gateway's stream has opened once (bounded): at 1,000 opening them
    (TLS, JWT check, 1.2 MiB of bundles each) takes a while, and steady reports are measured
    only once every gateway can send them."""
    started = time.monotonic()
    with trio.move_on_after(budget_s):
        for gw in gateways:
            await gw.stream_ready.wait()
    return time.monotonic() - started


async def _flip_and_wait(
    server: FederationProcess, target: SimGateway, obs: Observations, budget_s: float
) -> Flip:
    """Flip the target's endpoint health; wait (bounded) until every watcher ACKed."""
    target.healthy = not target.healthy
    meter = CpuMeter(server)
    obs.start_flip(time.monotonic(), want_routed=target.healthy)
    await send_report(target, obs)
    with trio.move_on_after(budget_s):
        await obs.all_acked.wait()
    server_pct, bench_pct = meter.percent()
    flip_at = obs.flip_at or 0.0
    return Flip(
        to_healthy=target.healthy,
        converged=len(obs.acked),
        received=Spread.of([at - flip_at for at in obs.received.values()]),
        acked=Spread.of([at - flip_at for at in obs.acked.values()]),
        server_cpu_pct=server_pct,
        bench_cpu_pct=bench_pct,
        server_cpu_s=meter.used()[0],
    )


async def _prepare(
    server: FederationProcess, watchers: int, result: SizeResult, budget: Budget
) -> tuple[list[SimGateway], dict[str, str], str]:
    started = time.monotonic()
    identities = [make_identity(i) for i in range(watchers)]
    tokens = await create_tokens(server, [ident.name for ident in identities])
    with trio.fail_after(30):
        ca_pem = (await fetch_pinned_ca(server.url, server.fingerprint)).decode()
    verify = pinned_client_context(ca_pem.encode(), server.fingerprint)
    count = connections_for(watchers, budget.per_connection)
    clients = shared_clients(server.url, verify, count, 30.0)
    gateways = [
        SimGateway(ident, clients[i // budget.per_connection]) for i, ident in enumerate(identities)
    ]
    result.build = measure_build([gw.ident for gw in gateways])
    progress(
        f"{watchers} identities (CA + jwt-svid key) and join tokens in "
        f"{time.monotonic() - started:.1f} s; {len(clients)} HTTP/2 connections"
    )
    return gateways, tokens, ca_pem


async def measure(
    server: FederationProcess, watchers: int, budget: Budget, store_name: str
) -> SizeResult:
    """Run every phase against ``server`` (already started, empty) and return what was seen."""
    result = SizeResult(watchers=watchers, store=store_name)
    gateways, tokens, ca_pem = await _prepare(server, watchers, result, budget)
    try:
        await _join_all(gateways, tokens, ca_pem, server, result, budget.clip(budget.join_s))
        received = sum(gw.bundles_received for gw in gateways)
        progress(
            f"{result.joined}/{watchers} joined in {result.join_s:.1f} s "
            f"({received / 2**20:.1f} MiB of bundle messages received by the gateways)"
        )
        if result.joined < watchers:
            result.notes.append(
                f"only {result.joined} of {watchers} clusters joined within {budget.join_s:.0f} s "
                f"(timeline s->joined: {result.join_timeline}); convergence not measured"
            )
            return result
        await _run_loops(server, gateways, result, budget)
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(10):
            for client in {id(gw.http): gw.http for gw in gateways}.values():
                await client.aclose()
    return result


async def _steady_then_flip(
    server: FederationProcess,
    gateways: list[SimGateway],
    obs: Observations,
    result: SizeResult,
    budget: Budget,
) -> None:
    result.settle_s = await _settle(obs, gateways, budget.clip(budget.settle_s))
    if result.settle_s is None:
        result.notes.append(
            f"watchers did not all route to {gateways[0].name} and go quiet within "
            f"{budget.settle_s:.0f} s; measured anyway"
        )
    progress(f"settled: {result.settle_s}")
    result.snapshot_bytes = gateways[-1].snapshot_bytes
    result.bundles_bytes = gateways[-1].bundles_bytes
    meter = CpuMeter(server)
    await trio.sleep(budget.clip(budget.steady_s))
    # counted when the federation confirmed them: gateways no longer wait for answers, so
    # what was sent says nothing of what the federation kept up with
    result.steady = _rate(
        obs, meter.t0, time.monotonic(), len(gateways), meter.used(), confirmed_only=True
    )
    progress("steady reports measured; flipping one endpoint's health")
    for index in range(budget.flips):
        if index:
            await _quiet(obs, budget.clip(budget.settle_s))
        if budget.clip(budget.converge_s) < budget.converge_s / 2 and index:
            break  # not enough time left for another flip
        flip = await _flip_and_wait(server, gateways[0], obs, budget.clip(budget.converge_s))
        result.flips.append(flip)
        progress(f"flip {index + 1}: {flip.converged}/{len(gateways)} watchers ACKed")
        if flip.converged < len(gateways):
            break  # the service is behind: another flip would measure the backlog


async def _saturation(
    server: FederationProcess,
    gateways: list[SimGateway],
    obs: Observations,
    result: SizeResult,
    budget: Budget,
) -> None:
    errors_before = obs.report_errors
    meter = CpuMeter(server)
    await saturate(gateways, obs, SATURATION_WORKERS, budget.clip(budget.saturate_s))
    result.saturation = _rate(
        obs, meter.t0, time.monotonic(), 0.0, meter.used(), confirmed_only=True
    )
    result.saturation.offered_per_s = result.saturation.achieved_per_s
    result.saturation.errors = obs.report_errors - errors_before
    result.saturation_workers = SATURATION_WORKERS
    progress("saturation measured")


async def _run_loops(
    server: FederationProcess, gateways: list[SimGateway], result: SizeResult, budget: Budget
) -> None:
    obs = Observations(marker=f'"{gateways[0].name}":1'.encode(), expected=len(gateways))
    rng = random.Random(4)
    opening = trio.Semaphore(JOIN_CONCURRENCY)
    async with trio.open_nursery() as watchers:
        for gw in gateways:
            watchers.start_soon(watch_loop, gw, obs, opening)
        # Every stream opens (TLS, JWT check, bundles) before any gateway reports: each first
        # report turns a lease from pending to healthy and rebuilds every snapshot, so a slow
        # ramp would be a storm of rebuilds measured as if it were the steady state.
        opened = await _streams_open(gateways, budget.clip(budget.settle_s))
        ready = sum(gw.stream_ready.is_set() for gw in gateways)
        progress(f"{ready} streams open after {opened:.1f} s")
        stop = trio.Event()
        async with trio.open_nursery() as reporters:
            for gw in gateways:
                reporters.start_soon(report_loop, gw, obs, 1.0, rng.random(), stop)
            await _steady_then_flip(server, gateways, obs, result, budget)
            stop.set()
            # bounded drain of the reports in flight
            reporters.cancel_scope.deadline = trio.current_time() + max(2.0, budget.clip(30))
        if budget.clip(budget.saturate_s) >= 2:
            await _saturation(server, gateways, obs, result, budget)
        else:
            result.notes.append("saturation not measured: the time bound was reached")
        watchers.cancel_scope.cancel()
    result.errors.update(report=obs.report_errors, watch=obs.watch_errors, ack=obs.ack_errors)
    result.notes.extend(f"first errors: {sample}" for sample in obs.error_samples)
