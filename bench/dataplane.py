"""Data-plane benchmark: ``python -m bench.dataplane [--quick] [--only PARTS]`` (``make
bench-dataplane``).

Builds the same two-hop topology twice on 127.0.0.1 — two isthmus gateways (``isthmus gateway
run``) and two HAProxy 2.6 instances, each pair with mTLS HTTP/2 (TLS 1.3) between A and B and the
same SVIDs and CAs — and drives both with the same ``h2load`` command (h2c into A's outbound
listener). Parts (``--only``, comma-separated; default all):

- ``rps``: req/s at full load, proxy CPU µs per request (``/proc/<pid>/stat`` utime+stime of A
  and B) and the resulting req/s per core per hop;
- ``latency``: p50/p99 at full load and at a fixed 2,000 req/s (``h2load --rps``);
- ``hop``: each hop measured on its own (:mod:`bench._hops`): B with h2load presenting alpha's
  SVID (an ``LD_PRELOAD`` shim compiled on the fly; needs gcc and libssl-dev, else B is skipped
  with a note) over mTLS straight at B's inbound listener, and A with h2c into a second A
  whose peer is HAProxy B: req/s, CPU per request, p99 at 2,000 req/s;
- ``tunnel``: 2 GiB through a CONNECT tunnel across both gateways vs HAProxy in TCP mode with
  TLS between its two instances;
- ``handshakes``: new TLS 1.3 mTLS handshakes per second against B's inbound listener, and B's
  CPU per handshake;
- ``workers``: one gateway hop with ``--workers 2`` vs ``--workers 1``.

Installs nothing: without ``haproxy`` and ``h2load`` it says what to install and exits 2.
Every run is bounded in time; every process it starts is stopped when it ends.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench import _capacity as capacity
from bench import _hops as hops
from bench import _parts as parts
from bench._h2load import build_client_cert_shim
from bench._procs import BenchError, ProcGroup
from bench._report import Report
from bench._topology import Pinning, build, start_haproxy, start_isthmus, start_shared

PARTS = ("rps", "latency", "hop", "tunnel", "handshakes", "workers")
REQUIRED_TOOLS = {"haproxy": "haproxy", "h2load": "nghttp2-client"}


def missing_tools() -> list[str]:
    """The apt packages whose tools are not on PATH."""
    return [package for tool, package in REQUIRED_TOOLS.items() if shutil.which(tool) is None]


def pinning(requested: str) -> Pinning:
    """``auto``: proxies on CPU 0, load on CPU 1 when there are at least 2 CPUs; ``none``:
    no pinning; ``P:L``: explicit CPU lists."""
    if requested == "none":
        return Pinning(None, None)
    if requested == "auto":
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2 or shutil.which("taskset") is None:
            return Pinning(None, None)
        return Pinning(str(cpus[0]), ",".join(str(c) for c in cpus[1:]))
    proxies, _, load = requested.partition(":")
    return Pinning(proxies or None, load or None)


@dataclass(frozen=True)
class Plan:
    """What to run and how hard."""

    chosen: frozenset[str]
    settings: parts.Settings
    pin: Pinning
    backend_h2c: bool


def _parse(argv: list[str] | None) -> tuple[Plan, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.dataplane", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--only", default=",".join(PARTS), help=f"comma-separated: {','.join(PARTS)}"
    )
    parser.add_argument("--quick", action="store_true", help="short smoke run (seconds per part)")
    parser.add_argument("--duration", type=float, default=None, help="seconds per h2load run")
    parser.add_argument("--clients", type=int, default=8, help="h2load connections at full load")
    parser.add_argument("--streams", type=int, default=16, help="h2load streams per connection")
    parser.add_argument("--tunnel-bytes", type=int, default=None, help="bytes through the tunnel")
    parser.add_argument("--pin", default="auto", help="auto | none | PROXY_CPUS:LOAD_CPUS")
    parser.add_argument("--backend", choices=("http1", "h2c"), default="http1")
    parser.add_argument("--json", type=Path, default=None, help="also write results as JSON")
    parser.add_argument("--markdown", type=Path, default=None, help="also write a Markdown table")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs)")
    args = parser.parse_args(argv)
    chosen = frozenset(p.strip() for p in args.only.split(",") if p.strip())
    unknown = sorted(chosen - set(PARTS))
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    settings = parts.Settings.for_run(
        quick=args.quick,
        duration_s=args.duration,
        clients=args.clients,
        streams=args.streams,
        tunnel_bytes=args.tunnel_bytes,
    )
    return Plan(chosen, settings, pinning(args.pin), args.backend == "h2c"), args


def tool_versions() -> str:
    """First line of ``haproxy -v`` and ``h2load --version``."""
    found = []
    for argv in (["haproxy", "-v"], ["h2load", "--version"]):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        found.append((done.stdout or done.stderr).strip().splitlines()[0].split(" - ")[0])
    return "; ".join(found)


def _header(plan: Plan) -> list[str]:
    load1, _, _ = os.getloadavg()
    return [
        tool_versions(),
        f"date {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} CPUs; "
        f"load average at start {load1:.2f}",
        f"pinning: {plan.pin.describe()}",
        f"h2load: {plan.settings.describe()}; backend {'h2c' if plan.backend_h2c else 'HTTP/1.1'}",
    ]


def run(plan: Plan, root: Path) -> Report:
    """Build both topologies under ``root`` and run the chosen parts."""
    report = Report(notes=_header(plan))
    for line in report.notes:
        print(line, flush=True)
    topo = build(root / "topology", backend_h2c=plan.backend_h2c)
    logs = root / "logs"
    logs.mkdir()
    with ProcGroup(logs) as shared:
        backend = start_shared(shared, topo, plan.pin)
        if plan.chosen & {"rps", "latency", "hop", "tunnel", "handshakes"}:
            with ProcGroup(logs) as group:
                sut = parts.Pair(
                    start_isthmus(group, topo, plan.pin), start_haproxy(group, topo, plan.pin)
                )
                shim = build_client_cert_shim(root) if "hop" in plan.chosen else None
                ctx = parts.Ctx(topo, sut, plan.settings, plan.pin, plan.chosen, report, shim)
                parts.warm_up(ctx)
                if plan.chosen & {"rps", "latency"}:
                    parts.full_load(ctx)
                if "latency" in plan.chosen:
                    parts.fixed_rate(ctx)
                if "hop" in plan.chosen:
                    hops.hops(ctx)
                if "tunnel" in plan.chosen:
                    capacity.tunnel(ctx)
                if "handshakes" in plan.chosen:
                    capacity.handshakes(ctx)
        if "workers" in plan.chosen:
            capacity.workers(topo, plan.settings, logs, report, backend)
    return report


def main(argv: list[str] | None = None) -> int:
    plan, args = _parse(argv)
    missing = missing_tools()
    if missing:
        print(
            "bench-dataplane needs haproxy (2.6) and h2load; install them first:\n"
            f"    sudo apt-get install -y {' '.join(missing)}",
            file=sys.stderr,
        )
        return 2
    root = Path(tempfile.mkdtemp(prefix="isthmus-bench-dataplane-"))
    started = time.monotonic()
    try:
        report = run(plan, root)
    except BenchError as err:
        print(f"\nbenchmark failed: {err}\nconfigs and logs kept in {root}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted; configs and logs kept in {root}", file=sys.stderr)
        return 130
    print()
    print(report.table())
    print(f"\n({time.monotonic() - started:.0f} s)")
    if args.json is not None:
        args.json.write_text(json.dumps(report.as_dict(), indent=2) + "\n", encoding="utf-8")
    if args.markdown is not None:
        notes = "\n".join(f"- {note}" for note in report.notes)
        args.markdown.write_text(f"{report.markdown()}\n\n{notes}\n", encoding="utf-8")
    if args.keep:
        print(f"configs and logs kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
