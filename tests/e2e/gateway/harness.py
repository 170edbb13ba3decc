"""Real processes for federated-gateway tests: ``isthmus federation serve``, ``isthmus gateway
run --join``, demo backends in the test's nursery, traffic through a gateway's outbound port.

Every process writes its output to a file under the test's directory (a full pipe must never
stall a gateway) and is SIGKILLed when the :class:`World` closes. Every wait is a poll with a
deadline that names what did not happen.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import ssl
import subprocess
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import trio
import yaml

from federation.service.auth import ADMIN_TOKEN_FILE
from isthmus.runner import ClusterSpec, ServiceSpec, write_local_federation
from isthmus.runner.demo_backend import serve_demo_backend
from tests.integration.gateway.harness import free_ports

ISTHMUS = [sys.executable, "-m", "isthmus"]
#: Report interval of the federation and of every gateway (the lease is 3 of them).
INTERVAL = 0.25
SERVICE = "hello.demo"


@dataclass
class Gateway:
    """One cluster: its generated files, ports, backend port (if it exports) and process."""

    name: str
    spec: ClusterSpec
    config: Path
    directory: Path
    bundle_file: Path
    state_dir: Path
    backend_port: int | None
    proc: trio.Process | None = None
    starts: int = 0

    @property
    def trust_domain(self) -> str:
        return self.spec.domain


async def wait_for(what: str, check: Callable[[], Awaitable[bool]], timeout_s: float) -> float:
    """Poll ``check`` every 50 ms until true; return the seconds it took, or fail naming it."""
    started = trio.current_time()
    with trio.move_on_after(timeout_s):
        while True:
            if await check():
                return trio.current_time() - started
            await trio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


@dataclass
class Traffic:
    """Sequential requests through a gateway's outbound listener; counts answers by cluster."""

    outbound_port: int
    answers: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.answers.values())

    async def one(self, client: httpx.AsyncClient, i: int) -> None:
        try:
            response = await client.get(f"http://{SERVICE}.global/{i}")
        except httpx.HTTPError as err:
            self.failures.append(f"request {i}: {err!r}")
            return
        if response.status_code != 200:
            self.failures.append(f"request {i}: {response.status_code} {response.text[:200]}")
        else:
            self.answers[response.json()["cluster"]] += 1

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        proxy = f"http://127.0.0.1:{self.outbound_port}"
        async with httpx.AsyncClient(proxy=proxy, timeout=10) as client:
            task_status.started()
            for i in range(10**6):
                await self.one(client, i)
                await trio.sleep(0.01)

    async def burst(self, count: int) -> Counter[str]:
        before = Counter(self.answers)
        proxy = f"http://127.0.0.1:{self.outbound_port}"
        async with httpx.AsyncClient(proxy=proxy, timeout=10) as client:
            for i in range(count):
                await self.one(client, i)
        return self.answers - before


class World:
    """A federation and gateways in ``root``; use inside a nursery (backends run there)."""

    def __init__(self, root: Path, nursery: trio.Nursery, *, missed_intervals: int = 3) -> None:
        self.root = root
        self.nursery = nursery
        self.env = {**os.environ, "ISTHMUS_HOME": str(root / "home")}
        self.fed_port = free_ports(1)[0]
        self.fed_state = root / "federation"
        self.fed_config = root / "federation.yaml"
        self.fed_config.write_text(
            f"listen_port: {self.fed_port}\nstate_dir: {self.fed_state}\n"
            f"report_interval_s: {INTERVAL}\nlong_poll_s: 5\nmissed_intervals: {missed_intervals}\n"
        )
        self.federation: trio.Process | None = None
        self.fed_starts = 0
        self.gateways: dict[str, Gateway] = {}

    # -- processes ---------------------------------------------------------------------------
    async def _spawn(self, args: list[str], log: str) -> trio.Process:
        out = open(self.root / f"{log}.out", "ab")  # noqa: SIM115 - the child owns it
        err = open(self.root / f"{log}.err", "ab")  # noqa: SIM115
        try:
            return await trio.lowlevel.open_process(
                [*ISTHMUS, *args], stdout=out, stderr=err, env=self.env
            )
        finally:
            out.close()
            err.close()

    def log(self, name: str) -> str:
        return (self.root / f"{name}.err").read_text(errors="replace")

    async def start_federation(self) -> None:
        self.fed_starts += 1
        self.federation = await self._spawn(
            ["federation", "serve", "--config", str(self.fed_config)], "federation"
        )

        async def listening() -> bool:
            try:
                async with httpx.AsyncClient(verify=False, timeout=1) as client:
                    url = f"https://127.0.0.1:{self.fed_port}/v1/federation/ca.pem"
                    return (await client.get(url)).status_code == 200
            except httpx.HTTPError:
                return False

        await wait_for("the federation to listen", listening, 20)

    async def stop(self, proc: trio.Process | None, sig: int = signal.SIGKILL) -> None:
        if proc is not None and proc.returncode is None:
            proc.send_signal(sig)
            with trio.fail_after(15):
                await proc.wait()

    async def close(self) -> None:
        for gw in self.gateways.values():
            if gw.proc is not None and gw.proc.returncode is None:
                gw.proc.send_signal(signal.SIGCONT)
            await self.stop(gw.proc)
        await self.stop(self.federation)

    async def cli(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return await trio.run_process([*ISTHMUS, *args], capture_stdout=True,
                                      capture_stderr=True, check=False, env=self.env)  # fmt: skip

    async def token(self, cluster: str, ttl: str = "10m") -> str:
        made = await self.cli(
            "federation", "token", "create", "--cluster", cluster, "--ttl", ttl,
            "--config", str(self.fed_config),
        )  # fmt: skip
        assert made.returncode == 0, made.stderr.decode()
        return made.stdout.decode().strip()

    async def status(self) -> dict[str, dict[str, Any]]:
        """``isthmus status --output json``, by cluster (the command a user runs)."""
        shown = await self.cli("status", "--output", "json", "--config", str(self.fed_config))
        assert shown.returncode == 0, shown.stderr.decode()
        return {row["cluster"]: row for row in json.loads(shown.stdout)["clusters"]}

    async def status_now(self) -> dict[str, dict[str, Any]]:
        """The same rows straight from ``GET /v1/status`` (cheap enough to poll)."""
        token = (self.fed_state / ADMIN_TOKEN_FILE).read_text().strip()
        context = ssl.create_default_context(cafile=str(self.fed_state / "tls" / "ca.pem"))
        url = f"https://127.0.0.1:{self.fed_port}/v1/status"
        async with httpx.AsyncClient(verify=context, timeout=5) as client:
            response = await client.get(url, headers={"authorization": f"Bearer {token}"})
        response.raise_for_status()
        return {row["cluster"]: row for row in response.json()["clusters"]}

    # -- gateways ----------------------------------------------------------------------------
    async def add_gateway(self, name: str, *, exports: bool) -> Gateway:
        """Generate a cluster's CA, SVID and config (federated mode); start its backend."""
        inbound, outbound, admin, backend = free_ports(4)
        spec = ClusterSpec(name, "local", f"region-{name}", inbound, outbound, admin)
        services = [ServiceSpec(SERVICE, {name: (f"127.0.0.1:{backend}",)})] if exports else []
        root = self.root / name
        config = write_local_federation(
            root, [spec], services, now=datetime.now(UTC), drain_timeout_s=1.0,
            probe_interval_s=0.2,
        )[name]  # fmt: skip
        doc = yaml.safe_load(config.read_text())
        doc["federation"] = {
            "state_dir": str(root / "state"),
            "report_interval_s": INTERVAL,
            "long_poll_s": 5,
            "backoff_base_s": 0.1,
            "backoff_cap_s": 0.5,
            "capacity": 100,
        }
        config.write_text(yaml.safe_dump(doc))
        if exports:
            await self.nursery.start(serve_demo_backend, name, "127.0.0.1", backend)
        gw = Gateway(
            name, spec, config, config.parent, root.resolve() / "bundles" / f"{spec.domain}.json",
            root / "state", backend if exports else None,
        )  # fmt: skip
        self.gateways[name] = gw
        return gw

    async def start_gateway(self, gw: Gateway, token: str | None = None) -> None:
        gw.starts += 1
        args = ["gateway", "run", "--config", str(gw.config)]
        gw.proc = await self._spawn([*args, "--join", token] if token else args, gw.name)

    async def admin(self, gw: Gateway, path: str) -> httpx.Response:
        async with httpx.AsyncClient(timeout=2) as client:
            return await client.get(f"http://127.0.0.1:{gw.spec.admin_port}{path}")

    async def wait_ready(self, gw: Gateway) -> None:
        async def ready() -> bool:
            assert gw.proc is not None
            if gw.proc.returncode is not None:
                raise AssertionError(f"gateway {gw.name} exited: {self.log(gw.name)[-2000:]}")
            try:
                return (await self.admin(gw, "/readyz")).status_code == 200
            except httpx.HTTPError:
                return False

        await wait_for(f"gateway {gw.name} to be ready", ready, 30)

    async def config_doc(self, gw: Gateway) -> dict[str, Any]:
        doc: dict[str, Any] = (await self.admin(gw, "/config")).json()
        return doc

    async def route_levels(self, gw: Gateway) -> list[set[str]]:
        """The clusters of each priority level of the service in ``gw``'s active table."""
        try:
            table = (await self.config_doc(gw))["table"]
        except httpx.HTTPError:
            return []
        route = table["routes"].get(SERVICE)
        if route is None:
            return []
        return [
            {ep["locality"]["cluster"] for ep in level["endpoints"]}
            for level in route["priorities"]
        ]

    async def wait_levels(self, gw: Gateway, wanted: list[set[str]], timeout_s: float) -> float:
        async def matches() -> bool:
            return await self.route_levels(gw) == wanted

        return await wait_for(f"{gw.name} to route {SERVICE} via {wanted}", matches, timeout_s)

    # -- simulating a compromised federation ---------------------------------------------------
    def bundle_row(self, trust_domain: str) -> tuple[int, str, str | None]:
        with sqlite3.connect(self.fed_state / "federation.db") as db:
            row = db.execute(
                "SELECT sequence, bundle, signed_update FROM bundles WHERE trust_domain = ?",
                (trust_domain,),
            ).fetchone()
        assert row is not None, trust_domain
        return int(row[0]), str(row[1]), row[2]

    def write_bundle_row(self, trust_domain: str, row: tuple[int, str, str | None]) -> None:
        """Overwrite a bundle straight in the store, bypassing every check of the API."""
        with sqlite3.connect(self.fed_state / "federation.db") as db:
            db.execute(
                "UPDATE bundles SET sequence = ?, bundle = ?, signed_update = ? "
                "WHERE trust_domain = ?",
                (*row, trust_domain),
            )
