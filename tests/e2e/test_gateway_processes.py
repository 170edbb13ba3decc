"""Real ``isthmus gateway run`` processes (one with ``--workers 2``) in separate trust domains,
real demo backends, real mTLS on 127.0.0.1; and ``isthmus up`` as a user runs it."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import trio

from isthmus.runner import ClusterSpec, ServiceSpec, write_local_federation
from isthmus.runner.demo_backend import serve_demo_backend
from isthmus.runner.up import PortInUse, check_ports_free, cluster_ports, default_clusters
from tests.integration.gateway.harness import free_ports

ISTHMUS = [sys.executable, "-m", "isthmus"]


@asynccontextmanager
async def process(args: Sequence[str], **env: str) -> AsyncIterator[trio.Process]:
    """Start ``isthmus args``; on exit make sure it is gone (SIGKILL after 10 s)."""
    proc = await trio.lowlevel.open_process(
        [*ISTHMUS, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **env},
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        with trio.move_on_after(10):
            await proc.wait()


async def wait_ready(admin_port: int, timeout_s: float = 15.0) -> None:
    async with httpx.AsyncClient(timeout=1) as client:
        with trio.fail_after(timeout_s):
            while True:
                try:
                    if (
                        await client.get(f"http://127.0.0.1:{admin_port}/readyz")
                    ).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await trio.sleep(0.1)


async def stop(proc: trio.Process, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> int:
    proc.send_signal(sig)
    with trio.fail_after(timeout_s):
        return await proc.wait()


def free_run(count: int = 3) -> int:
    """A port p with p .. p + count - 1 all free (the supervisor serves the merged admin API
    on admin_port, worker k its own on admin_port + 1 + k)."""
    for _ in range(50):
        first = free_ports(1)[0]
        try:
            for port in range(first + 1, first + count):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise AssertionError("no free run of adjacent ports")


async def test_gateway_processes_cross_clusters_and_stop_cleanly(tmp_path: Path) -> None:
    ports = free_ports(8)
    east = ClusterSpec("east", "aws", "us-east-1", ports[0], ports[1], ports[2])
    west = ClusterSpec("west", "gcp", "europe-west1", ports[3], ports[4], free_run())
    services = [ServiceSpec("catalog.shop", {"west": (f"127.0.0.1:{ports[6]}",)})]
    configs = write_local_federation(tmp_path, [east, west], services, now=datetime.now(UTC))
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_demo_backend, "west", "127.0.0.1", ports[6])
        async with (
            process(["gateway", "run", "--config", str(configs["west"]), "--workers", "2"]) as gw_w,
            process(["gateway", "run", "--config", str(configs["east"])]) as gw_e,
        ):
            await wait_ready(east.admin_port)
            await wait_ready(west.admin_port)  # the supervisor: every worker is ready
            async with httpx.AsyncClient(proxy=f"http://127.0.0.1:{east.outbound_port}") as client:
                answers = [
                    (await client.get(f"http://catalog.shop.global/{i}")).json()["cluster"]
                    for i in range(20)
                ]
            assert answers == ["west"] * 20
            async with httpx.AsyncClient(timeout=5) as admin:
                merged = (await admin.get(f"http://127.0.0.1:{west.admin_port}/metrics")).text
                per_worker = [
                    (await admin.get(f"http://127.0.0.1:{west.admin_port + k}/metrics")).text
                    for k in (1, 2)
                ]
            inbound = 'destination_service="catalog.shop",response_code="200",source_cluster="east"'
            assert f"{inbound}}} 20.0" in merged  # summed over both workers
            assert all("isthmus_requests_total" in text for text in per_worker)
            assert await stop(gw_e) == 0
            assert await stop(gw_w) == 0
            err = (await gw_e.stderr.receive_some(65536)).decode()  # type: ignore[union-attr]
            assert "gateway east ready" in err
            out = (await gw_e.stdout.receive_some(65536)).decode()  # type: ignore[union-attr]
            assert '"service":"catalog.shop"' in out and '"cluster":"west"' in out
        nursery.cancel_scope.cancel()


def free_offset() -> int:
    """A --port-offset whose eight ports are all free right now."""
    for _ in range(50):
        offset = random.randrange(1000, 30000)
        try:
            check_ports_free(cluster_ports(default_clusters(offset)))
        except PortInUse:
            continue
        return offset
    raise AssertionError("no free port offset found")


async def test_workers_drain_and_exit_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    ports = free_ports(3)
    solo = ClusterSpec("solo", "aws", "us-east-1", ports[0], ports[1], free_run())
    configs = write_local_federation(tmp_path, [solo], [], now=datetime.now(UTC))
    async with process(["gateway", "run", "--config", str(configs["solo"]), "-w", "2"]) as sup:
        await wait_ready(solo.admin_port)
        sup.kill()
        await sup.wait()
        async with httpx.AsyncClient(timeout=0.5) as client:
            with trio.fail_after(10):
                for port in (solo.admin_port + 1, solo.admin_port + 2):
                    while True:
                        try:
                            await client.get(f"http://127.0.0.1:{port}/healthz")
                        except httpx.ConnectError:
                            break  # the worker's admin port is closed: it exited
                        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.TimeoutException):
                            pass  # accepted, then dropped mid-drain: still exiting, ask again
                        await trio.sleep(0.1)


async def test_sighup_reloads_the_routing_file(tmp_path: Path) -> None:
    ports = free_ports(3)
    solo = ClusterSpec("solo", "aws", "us-east-1", ports[0], ports[1], ports[2])
    configs = write_local_federation(tmp_path, [solo], [], now=datetime.now(UTC))
    with configs["solo"].open("a") as config:
        config.write("reload_poll_s: 3600\n")  # only SIGHUP can trigger the reload
    routing = tmp_path / "solo" / "routing.yaml"
    async with process(["gateway", "run", "--config", str(configs["solo"])]) as gw:
        await wait_ready(solo.admin_port)
        routing.write_text(routing.read_text().replace("version: 1", "version: 7"))
        gw.send_signal(signal.SIGHUP)
        async with httpx.AsyncClient(timeout=1) as client:
            with trio.fail_after(5):
                while True:
                    doc = (await client.get(f"http://127.0.0.1:{solo.admin_port}/config")).json()
                    if doc["table"]["version"] == 7:
                        break
                    await trio.sleep(0.05)
        assert await stop(gw) == 0


async def test_isthmus_up_names_a_busy_port_and_the_way_out(tmp_path: Path) -> None:
    offset = free_offset()
    busy = default_clusters(offset)[0].spec.outbound_port
    listener = await trio.open_tcp_listeners(busy, host="127.0.0.1")
    async with process(["up", "--port-offset", str(offset)], ISTHMUS_HOME=str(tmp_path)) as up:
        with trio.fail_after(10):
            code = await up.wait()
        err = (await up.stderr.receive_some(65536)).decode()  # type: ignore[union-attr]
    await listener[0].aclose()
    assert code == 1
    assert f"port {busy}" in err and "--port-offset" in err
    assert "Traceback" not in err
