"""Proxy CPU per request, in isolation (a development tool, not the HAProxy comparison).

    .venv/bin/python -m bench._proxy_micro [--mode hop|pair|h1] [--seconds 6] [--repeat 3]

``hop``: h2load ─h2c─▶ proxy (outbound listener, header validation on) ─h2c─▶ HAProxy 200.
``h1``: the same with an HTTP/1.1 client (h2load --h1) and an HTTP/1.1 backend.
``pair``: h2load ─h2c─▶ A ══mTLS h2 (validation off)══▶ B (inbound) ─▶ HAProxy 200
(``--backend http1``, the default as in ``bench/dataplane.py``, or ``h2c``).

Each proxy is a child process pinned (taskset) to CPU 0, load (h2load, HAProxy) to CPU 1.
The figure that matters is CPU µs per request of each proxy (utime+stime from
``/proc/<pid>/stat`` over the measured run), since the machine is shared. Bounded: every
h2load run lasts ``--seconds``; every child is killed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

AUTHORITY = "echo.bench.global"
HZ = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port} after {timeout}s")


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


# -- the proxy child ------------------------------------------------------------------------


def _tls(pki: Path, server: bool) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    name = "b" if server else "a"
    ctx.load_cert_chain(pki / f"{name}.crt", pki / f"{name}.key")
    ctx.load_verify_locations(pki / "ca.pem")
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.set_alpn_protocols(["h2"])
    if not server:
        ctx.check_hostname = False
    return ctx


def serve(args: argparse.Namespace) -> None:
    import trio

    from proxy import tune_gc
    from proxy.engine import ForwardingEngine
    from proxy.listeners import PeerIdentity, serve_listener
    from proxy.routes import Endpoint, Locality, PriorityGroup, Route, RoutingTable
    from proxy.upstream import PoolSettings, open_upstream_pools

    pki = Path(args.pki) if args.pki else None
    kind = args.upstream_kind
    endpoint = Endpoint(
        "ep", "127.0.0.1", args.upstream_port, kind, Locality("b" if kind == "peer" else "a")
    )
    route = Route("echo.bench", (PriorityGroup((endpoint,)),), allowed_sources=frozenset({"*"}))
    table = RoutingTable(1, "a" if args.listener == "outbound" else "b", {"echo.bench": route})

    async def main() -> None:
        async with open_upstream_pools(
            client_context_for=lambda _ep: _tls(pki, server=False),  # type: ignore[arg-type]
            verify_peer=lambda _ep, _obj: None,
            settings=PoolSettings(),
        ) as pools:
            engine = ForwardingEngine(table, upstream=pools, rng=random.Random(1))
            async with trio.open_nursery() as nursery:
                if args.listener == "outbound":
                    await nursery.start(
                        lambda task_status: serve_listener(
                            engine, kind="outbound", port=args.port, task_status=task_status
                        )
                    )
                else:
                    await nursery.start(
                        lambda task_status: serve_listener(
                            engine,
                            kind="inbound",
                            port=args.port,
                            ssl_context=_tls(pki, server=True),  # type: ignore[arg-type]
                            verify_peer=lambda _obj: PeerIdentity("a", "a-identity"),
                            validate_inbound_headers=False,
                            task_status=task_status,
                        )
                    )
                tune_gc()  # what the gateway should do after start-up
                if args.profile and os.environ.get("MICRO_CPROFILE"):
                    import cProfile

                    prof2 = cProfile.Profile()
                    await trio.sleep(1.5)
                    prof2.enable()
                    await trio.sleep(args.profile)
                    prof2.disable()
                    prof2.dump_stats(args.profile_out + ".prof")
                    nursery.cancel_scope.cancel()
                elif args.profile:
                    from pyinstrument import Profiler  # pip install pyinstrument (dev only)

                    prof = Profiler(interval=0.0005, async_mode="disabled")
                    await trio.sleep(1.5)  # past the warm-up run
                    prof.start()
                    await trio.sleep(args.profile)
                    prof.stop()
                    text = prof.output_text(show_all=True)
                    await trio.Path(args.profile_out).write_text(text)
                    nursery.cancel_scope.cancel()

    trio.run(main)


# -- the driver -----------------------------------------------------------------------------


def _make_pki(directory: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.integration.proxy.certs import make_ca

    ca = make_ca(directory)
    for name in ("a", "b"):
        leaf = ca.issue(name, f"spiffe://{name}.test/ns/isthmus/sa/gateway")
        leaf.cert_path.rename(directory / f"{name}.crt")
        leaf.key_path.rename(directory / f"{name}.key")
    shutil.copy(ca.ca_path, directory / "ca.pem")


def _haproxy_cfg(h2c_port: int, h1_port: int) -> str:
    return f"""global
    nbthread 1
defaults
    mode http
    timeout client 30s
    timeout server 30s
    timeout connect 5s
frontend fe
    bind 127.0.0.1:{h1_port}
    bind 127.0.0.1:{h2c_port} proto h2
    http-request return status 200 content-type text/plain string "ok"
"""


class Children:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self, argv: list[str], cpu: str | None, cwd: str | None = None
    ) -> subprocess.Popen[bytes]:
        if cpu is not None and shutil.which("taskset"):
            argv = ["taskset", "-c", cpu, *argv]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, cwd=cwd)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)


def _proxy_argv(
    listener: str, port: int, kind: str, upstream: int, pki: Path, extra: list[str]
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bench._proxy_micro",
        "--serve",
        "--listener",
        listener,
        "--port",
        str(port),
        "--upstream-kind",
        kind,
        "--upstream-port",
        str(upstream),
        "--pki",
        str(pki),
        *extra,
    ]


def _h2load(
    port: int, seconds: int, clients: int, streams: int, h1: bool, cpu: str | None
) -> tuple[int, str]:
    # h2load's timed mode (-D) never ends with --h1 (nghttp2 1.52): count requests instead
    amount = ["-n", str(int(seconds) * 1500)] if h1 else ["-D", str(int(seconds))]
    argv = ["h2load", "-c", str(clients), "-m", str(streams), "-t", "1", *amount]
    argv += ["-H", f":authority: {AUTHORITY}", *(["--h1"] if h1 else [])]
    argv.append(f"http://127.0.0.1:{port}/")
    if cpu is not None and shutil.which("taskset"):
        argv = ["taskset", "-c", cpu, *argv]
    res = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=seconds + 30)
    out = res.stdout + res.stderr
    done = 0
    for line in out.splitlines():
        if line.startswith("requests:"):
            parts = line.split()
            done = int(parts[parts.index("succeeded,") - 1])
    return done, out


@contextlib.contextmanager
def topology(args: argparse.Namespace) -> Iterator[list[tuple[int, list[tuple[str, int]]]]]:
    children = Children()
    with tempfile.TemporaryDirectory(prefix="isthmus-micro-") as tmp:
        root = Path(tmp)
        _make_pki(root)
        h2c, h1 = _free_port(), _free_port()
        (root / "haproxy.cfg").write_text(_haproxy_cfg(h2c, h1))
        try:
            children.start(["haproxy", "-f", str(root / "haproxy.cfg")], args.load_cpu)
            _wait_port(h2c)
            extra = (
                ["--profile", str(args.profile), "--profile-out", args.profile_out]
                if args.profile
                else []
            )
            setups = []
            for label, cwd in (("", None), ("base ", args.compare)):
                if label and not cwd:
                    continue
                front = _free_port()
                if args.mode == "pair":
                    inbound = _free_port()
                    b = children.start(
                        _proxy_argv(
                            "inbound",
                            inbound,
                            args.backend,
                            h1 if args.backend == "http1" else h2c,
                            root,
                            extra if args.profile_b else [],
                        ),
                        args.proxy_cpu,
                        cwd,
                    )
                    _wait_port(inbound)
                    a = children.start(
                        _proxy_argv(
                            "outbound",
                            front,
                            "peer",
                            inbound,
                            root,
                            [] if args.profile_b else extra,
                        ),
                        args.proxy_cpu,
                        cwd,
                    )
                    proxies = [(label + "A", a.pid), (label + "B", b.pid)]
                else:
                    kind, up = ("http1", h1) if args.mode == "h1" else ("h2c", h2c)
                    a = children.start(
                        _proxy_argv("outbound", front, kind, up, root, extra), args.proxy_cpu, cwd
                    )
                    proxies = [(label + "proxy", a.pid)]
                _wait_port(front)
                setups.append((front, proxies))
            yield setups
        finally:
            children.stop()


def drive(args: argparse.Namespace) -> None:
    with topology(args) as setups:
        h1 = args.mode == "h1"
        for front, _ in setups:
            _h2load(front, 1, args.clients, args.streams, h1, args.load_cpu)  # warm up pools
        for run, (front, proxies) in ((r, s) for r in range(args.repeat) for s in setups):
            before = {name: _cpu_ticks(pid) for name, pid in proxies}
            start = time.monotonic()
            done, out = _h2load(front, args.seconds, args.clients, args.streams, h1, args.load_cpu)
            wall = time.monotonic() - start
            if done == 0:
                print(out)
                raise SystemExit("no request succeeded")
            cpu = {name: (_cpu_ticks(pid) - before[name]) / HZ for name, pid in proxies}
            per = "  ".join(f"{name} {cpu[name] / done * 1e6:6.1f} us/req" for name, _ in proxies)
            print(f"run {run + 1}: {done} ok in ~{wall:.1f}s ({done / wall:,.0f} req/s)  {per}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=("hop", "pair", "h1"), default="hop")
    p.add_argument(
        "--backend", choices=("http1", "h2c"), default="http1", help="B's backend (pair)"
    )
    p.add_argument("--seconds", type=int, default=6)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--streams", type=int, default=16)
    p.add_argument("--proxy-cpu", default="0")
    p.add_argument("--load-cpu", default="1")
    p.add_argument(
        "--compare", default="", help="also run the proxy from this source tree, alternating"
    )
    p.add_argument("--profile", type=float, default=0.0, help="cProfile the front proxy for N s")
    p.add_argument("--profile-b", action="store_true", help="profile B instead of A (pair)")
    p.add_argument("--profile-out", default="/tmp/isthmus-micro.txt")
    # child mode
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--listener", default="outbound", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--upstream-kind", default="h2c", help=argparse.SUPPRESS)
    p.add_argument("--upstream-port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--pki", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        serve(args)
    else:
        drive(args)


if __name__ == "__main__":
    main()
