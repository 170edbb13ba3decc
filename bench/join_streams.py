"""What joins cost while the joined gateways keep their snapshot streams open.

    .venv/bin/python bench/join_streams.py --clusters 100
    .venv/bin/python bench/join_streams.py --clusters 100 --compare /tmp/base   # A/B, alternating

Starts one real federation (``isthmus federation serve``, TLS 1.3 + HTTP/2, SQLite) and joins
``--clusters`` simulated gateways, ``--concurrency`` at a time; each opens its snapshot stream
right after its join (as a real gateway does), reads it without parsing and ACKs each version.
Every join changes the bundle set, so every open stream is sent the change. Prints, from the
first join until the streams are quiet: wall time, the federation process's CPU seconds (utime +
stime from /proc) and the bytes of bundle and of routing messages the gateways received.
``--compare DIR`` runs the same in a child whose ``federation`` (server and client) is DIR's (a
tree holding ``federation/``). Every phase is bounded (``--max-seconds``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

#: Quiet period that ends a run: no stream received anything for this long.
QUIET_S = 2.0


@dataclass
class Totals:
    bundles: int = 0
    routing: int = 0
    last_at: float = 0.0
    joined: int = 0


async def _run(clusters: int, concurrency: int, max_seconds: float) -> dict[str, float]:
    import trio

    from bench._convergence_gateways import (
        SimGateway,
        connections_for,
        join_one,
        make_identity,
        shared_clients,
    )
    from bench._convergence_server import FederationProcess, ServerSettings, create_tokens
    from federation.client import fetch_pinned_ca
    from federation.service import pinned_client_context

    totals = Totals()

    async def read(gw: SimGateway, nursery: trio.Nursery) -> None:
        assert gw.client is not None
        stream = await gw.client.open_stream(nursery, after=-1, bundles=gw.bundles)
        while True:
            line = await stream.duplex.receive_line()
            totals.last_at = time.monotonic()
            if line.startswith(b'{"type":"bundles'):
                totals.bundles += len(line)
            elif line.startswith((b'{"type":"snapshot","version":', b'{"type":"delta","version":')):
                totals.routing += len(line)
                start = line.index(b'"version":') + len(b'"version":')
                # ACK it as a gateway does: later versions may then come as routing deltas
                await stream.send_ack(int(line[start : line.index(b",", start)]), True)

    with (
        tempfile.TemporaryDirectory() as tmp,
        FederationProcess(Path(tmp), ServerSettings()) as server,
    ):
        identities = [make_identity(i) for i in range(clusters)]
        tokens = await create_tokens(server, [ident.name for ident in identities])
        ca_pem = (await fetch_pinned_ca(server.url, server.fingerprint)).decode()
        verify = pinned_client_context(ca_pem.encode(), server.fingerprint)
        clients = shared_clients(server.url, verify, connections_for(clusters), 30.0)
        gateways = [
            SimGateway(ident, clients[i % len(clients)]) for i, ident in enumerate(identities)
        ]
        limiter = trio.Semaphore(concurrency)
        cpu0, started = server.cpu_seconds(), time.monotonic()
        totals.last_at = started

        async def one(gw: SimGateway, nursery: trio.Nursery) -> None:
            async with limiter:
                await join_one(gw, tokens[gw.name], ca_pem, server.fingerprint, 30.0)
            totals.joined += 1
            await read(gw, nursery)

        with trio.move_on_after(max_seconds):
            async with trio.open_nursery() as nursery:
                for gw in gateways:
                    nursery.start_soon(one, gw, nursery)
                while totals.joined < clusters or time.monotonic() - totals.last_at < QUIET_S:  # noqa: ASYNC110 - a timestamp
                    await trio.sleep(0.2)
                nursery.cancel_scope.cancel()
        elapsed = max(0.0, totals.last_at - started)
        cpu = server.cpu_seconds() - cpu0
        for client in clients:
            await client.aclose()
    return {
        "clusters": clusters,
        "joined": totals.joined,
        "seconds": round(elapsed, 1),
        "server_cpu_s": round(cpu, 1),
        "bundle_mib": round(totals.bundles / 2**20, 1),
        "routing_mib": round(totals.routing / 2**20, 1),
    }


def _child(args: argparse.Namespace, tree: str | None) -> dict[str, float]:
    code = "import runpy, sys; sys.argv = sys.argv[1:]; "
    env = dict(os.environ)
    if tree is not None:
        code += f"sys.path.insert(0, {tree!r}); "
        env["PYTHONPATH"] = tree + os.pathsep + env.get("PYTHONPATH", "")
    code += "runpy.run_path(sys.argv[0], run_name='__main__')"
    argv = [
        sys.executable, "-c", code, __file__, "--clusters", str(args.clusters),
        "--concurrency", str(args.concurrency), "--max-seconds", str(args.max_seconds), "--json",
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=True, env=env)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-seconds", type=float, default=300.0)
    parser.add_argument("--compare", metavar="DIR", help="another tree to A/B against")
    parser.add_argument("--runs", type=int, default=1, help="alternating runs per tree")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # for ``bench``
    if args.json:
        import trio

        print(json.dumps(trio.run(_run, args.clusters, args.concurrency, args.max_seconds)))
        return
    trees: list[str | None] = [None] if args.compare is None else [args.compare, None]
    for _ in range(args.runs):
        for tree in trees:
            print(f"{tree or 'this tree'}: {_child(args, tree)}", flush=True)


if __name__ == "__main__":
    main()
