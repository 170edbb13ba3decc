"""``isthmus up`` as a user runs it: a real process with the bundled three-cloud example.

One run, in the order a user would go: every service answers from every cluster; a second
``isthmus up`` is refused with a clear message; ``isthmus drill kill-cluster`` costs the traffic
generator no request and moves traffic within 2 s; ``heal`` brings the cluster back and traffic
fails back after the placement window; SIGINT stops everything and frees every port.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from isthmus.runner.config import UpConfig
from isthmus.runner.up import PortInUse, check_ports_free, default_config

ISTHMUS = [sys.executable, "-m", "isthmus"]
KILLED = "gcp-euw1"
SOURCE = "aws-use1"  # catalog.shop never runs in aws: its requests always cross clouds
SERVICE = "catalog.shop"

pytestmark = pytest.mark.e2e


def free_offset(config: UpConfig) -> int:
    """A port offset whose every port is free (never 0: a developer's own `isthmus up`)."""
    for _ in range(50):
        offset = random.randrange(1000, 25000)
        try:
            check_ports_free(config.ports(offset))
        except PortInUse:
            continue
        return offset
    raise AssertionError("no free port offset found")


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ISTHMUS, *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def state(env: dict[str, str]) -> dict[str, Any]:
    shown = cli(env, "drill", "status", "--output", "json")
    assert shown.returncode == 0, shown.stderr
    data: dict[str, Any] = json.loads(shown.stdout)
    return data


def flows(data: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(f["source"], f["service"]): f for f in data["traffic"]}


async def wait_banner(out: Path, proc: trio.Process, timeout_s: float) -> str:
    with trio.move_on_after(timeout_s):
        while True:
            text = out.read_text(errors="replace")
            if "Ctrl-C stops everything" in text:
                return text
            if proc.returncode is not None:
                raise AssertionError(f"isthmus up exited early: {text[-3000:]}")
            await trio.sleep(0.1)
    raise AssertionError(f"isthmus up not ready after {timeout_s}s: {out.read_text()[-3000:]}")


async def every_service_from_every_cluster(config: UpConfig, offset: int) -> None:
    for cluster in config.clusters:
        proxy = f"http://127.0.0.1:{cluster.spec(offset).outbound_port}"
        async with httpx.AsyncClient(proxy=proxy, timeout=10) as client:
            for service in config.services:
                response = await client.get(f"http://{service.name}.global/")
                assert response.status_code == 200, (cluster.name, service.name, response.text)
                assert response.json()["cluster"] in {c.name for c in config.clusters}


async def wait_for(what: str, check: Any, timeout_s: float) -> None:
    with trio.move_on_after(timeout_s):
        while True:
            if check():
                return
            await trio.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


async def test_up_crosses_clouds_survives_a_kill_heals_and_stops_cleanly(tmp_path: Path) -> None:
    config = default_config()
    offset = free_offset(config)
    env = {**os.environ, "ISTHMUS_HOME": str(tmp_path)}
    out = tmp_path / "up.out"
    started = time.monotonic()
    with out.open("wb") as sink:
        proc = await trio.lowlevel.open_process(
            [*ISTHMUS, "up", "--fast", "--port-offset", str(offset)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        banner = await wait_banner(out, proc, 40)
        print(f"isthmus up ready in {time.monotonic() - started:.1f}s (process start included)")
        assert f"curl -x http://127.0.0.1:{15001 + offset} http://{SERVICE}.global/" in banner
        assert "/ui/login?ticket=" in banner
        assert "token=" not in banner  # the admin token never reaches the terminal
        await every_service_from_every_cluster(config, offset)

        second = cli(env, "up", "--port-offset", str(offset))
        assert second.returncode == 1
        assert "already running" in second.stderr and f"pid {proc.pid}" in second.stderr

        await trio.sleep(2)  # some traffic before the drill
        before = flows(state(env))
        assert before[(SOURCE, SERVICE)]["answered_by"].get(KILLED, 0) > 0
        drill = cli(env, "drill", "kill-cluster", KILLED)
        # from when the drill reports the kill done: starting the CLI alone took > 2 s under load
        killed_at = time.time()
        assert drill.returncode == 0 and f"killed cluster {KILLED}" in drill.stdout, drill.stderr
        await trio.sleep(4)
        after = flows(state(env))
        for (source, service), flow in after.items():
            if source != KILLED:
                assert flow["failed"] == 0, (source, service, flow["errors"])
        late = [c for t, c in after[(SOURCE, SERVICE)]["recent"] if t >= killed_at + 2.0]
        assert late and KILLED not in late, late
        assert all(late), "a request failed after the kill"
        # `isthmus status` with no --config finds the federation of the running `up`
        shown = cli(env, "status", "--output", "json")
        assert shown.returncode == 0, shown.stderr
        leases = {row["cluster"]: row["lease"] for row in json.loads(shown.stdout)["clusters"]}
        assert leases[KILLED] == "unreachable"
        assert all(lease == "healthy" for name, lease in leases.items() if name != KILLED)
        assert len(leases) == 3

        healed_at = time.time()
        heal = cli(env, "drill", "heal")
        assert heal.returncode == 0 and f"restarted {KILLED}" in heal.stdout, heal.stderr

        def failed_back() -> bool:
            recent = flows(state(env))[(SOURCE, SERVICE)]["recent"]
            return any(t > healed_at and c == KILLED for t, c in recent)

        await wait_for(f"traffic from {SOURCE} to fail back to {KILLED}", failed_back, 30)
        assert proc.returncode is None
        children = subprocess.run(
            ["ps", "--ppid", str(proc.pid), "-o", "pid="],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        assert children == [], "isthmus up runs everything in its own process"
        proc.send_signal(signal.SIGINT)
        with trio.fail_after(15):
            code = await proc.wait()
        assert code == 0, out.read_text()[-3000:]
        check_ports_free(config.ports(offset))  # raises PortInUse naming a port still held
        assert "no isthmus up is running" in cli(env, "drill", "heal").stderr
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
