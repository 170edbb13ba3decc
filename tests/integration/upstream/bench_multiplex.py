"""Req/s of many small requests multiplexed over ONE mTLS peer connection (not a test).

    .venv/bin/python -m tests.integration.upstream.bench_multiplex [requests] [concurrency]

The h2 test server runs in a child process; the client's CPU time per request is printed
too (the machine's other load shares the cores).
"""

from __future__ import annotations

import multiprocessing
import sys
import time

import trio

from federation.trust import tls as trust_tls
from proxy.upstream import PoolSettings, UpstreamRequest, open_upstream_pools
from tests.helpers.pki import bundle_set, issue_svid
from tests.integration.upstream.conftest import CAS, GATEWAY_B, Pki, peer
from tests.integration.upstream.servers import H2Server


def run_server(port_queue: multiprocessing.Queue[int]) -> None:
    bundles = bundle_set(*CAS)
    server_ctx = trust_tls.server_context(issue_svid(CAS[1], GATEWAY_B), bundles, ["h2"])
    server = H2Server(ssl_context=server_ctx)

    async def serve() -> None:
        async with trio.open_nursery() as nursery:
            port_queue.put(await nursery.start(server.serve))

    trio.run(serve)


async def main(total: int, concurrency: int, port: int) -> None:
    bundles = bundle_set(*CAS)
    client_ctx = trust_tls.client_context(
        issue_svid(CAS[0], "spiffe://a.test/ns/isthmus/sa/gateway"), bundles, ["h2"]
    )
    pki = Pki(client_ctx, client_ctx, [])
    async with trio.open_nursery() as nursery:
        async with open_upstream_pools(
            client_context_for=lambda _: client_ctx,
            verify_peer=pki.verify_peer,
            settings=PoolSettings(peer_connections=1),
        ) as pools:
            endpoint = peer(port)
            req = UpstreamRequest(b"GET", b"https", b"svc.ns.global", b"/hello", [])
            remaining = total

            async def worker() -> None:
                nonlocal remaining
                while remaining > 0:
                    remaining -= 1
                    response = await pools.request(endpoint, req)
                    async for _ in response.body:
                        pass

            start, cpu = time.perf_counter(), time.process_time()
            async with trio.open_nursery() as workers:
                for _ in range(concurrency):
                    workers.start_soon(worker)
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
            connections = pools.connection_count(endpoint)
        nursery.cancel_scope.cancel()
    print(
        f"{total} requests, concurrency {concurrency}, {connections} connection(s): "
        f"{total / elapsed:,.0f} req/s ({elapsed:.2f} s), client CPU "
        f"{cpu / total * 1e6:.0f} us/request"
    )


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    c = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    ports: multiprocessing.Queue[int] = multiprocessing.Queue()
    child = multiprocessing.Process(target=run_server, args=(ports,), daemon=True)
    child.start()
    try:
        trio.run(main, n, c, ports.get(timeout=30))
    finally:
        child.terminate()
        child.join(5)
