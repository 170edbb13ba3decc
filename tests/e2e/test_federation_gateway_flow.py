"""Real processes end to end: a federation, two gateway-side federation clients joining with
tokens from the CLI, reports turning into routes, ACKs in ``isthmus status``; then the
federation is killed (SIGKILL): the clients keep their snapshot, and a client restarted while
the federation is down starts from the snapshot it persisted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_federation_cli import free_port, run

#: A minimal gateway-side process: the real federation client, printing what it applies.
DRIVER = r"""
import json, random, sys, time
from datetime import UTC, datetime
from pathlib import Path
import trio
from federation.client import (ClientStateDir, FederationClient, FederationLink,
                               join_federation, registration_bundle)
from federation.model import EndpointHealth, HealthReport, Locality, ServiceHealth
from federation.trust import CertificateAuthority, TrustDomain

name, state_dir, token, export = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
state = ClientStateDir(state_dir)
key, kid = state.load_or_create_jwt_key()
ca_dir = state_dir / "ca"
if (ca_dir / "ca.pem").exists():
    ca = CertificateAuthority.load(ca_dir)
else:
    ca = CertificateAuthority.create(TrustDomain(f"{name}.e2e.test"), now=datetime.now(UTC))
    ca.save(ca_dir)
bundle = registration_bundle(ca.bundle(), key, kid)
endpoint = EndpointHealth(address="127.0.0.1:8080")
checkout = ServiceHealth(name="checkout.shop", endpoints=(endpoint,), allowed_sources=("*",))
services = (checkout,) if export else ()
seq = 0

def report():
    global seq
    seq += 1
    return HealthReport(sequence=seq, sent_at=time.time(), services=services)

def apply(snapshot, bundles):
    routes = {s.name: [p.weights for p in s.priorities] for s in snapshot.routing.services}
    print("APPLIED", snapshot.version, json.dumps(routes), len(bundles), flush=True)

async def main():
    record = state.load_join()
    if record is None:
        record = await join_federation(token, trust_bundle=bundle,
                                       gateway_addresses=("127.0.0.1:15443",),
                                       locality=Locality(cloud="local", region=name))
        state.save_join(record)
        print("JOINED", flush=True)
    async with FederationClient(record, jwt_key=key, kid=kid, long_poll_s=5) as client:
        link = FederationLink(client, state, own_bundle=bundle, apply=apply, report_source=report,
                              rng=random.Random(), backoff_base_s=0.1, backoff_cap_s=0.5)
        async with trio.open_nursery() as nursery:
            await nursery.start(link.run)
            print("STARTED", "restored" if link.active else "empty", flush=True)

trio.run(main)
"""


class Proc:
    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.popen = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )

    def expect(self, prefix: str, predicate: object = None, limit: int = 200) -> str:
        """Read lines until one starts with ``prefix`` (and satisfies ``predicate``)."""
        assert self.popen.stdout is not None
        for _ in range(limit):
            line = self.popen.stdout.readline()
            if not line:
                err = self.popen.stderr.read() if self.popen.stderr else ""
                raise AssertionError(f"process ended before {prefix!r}: {err[-2000:]}")
            if line.startswith(prefix) and (predicate is None or predicate(line)):  # type: ignore[operator]
                return line
        raise AssertionError(f"no {prefix!r} line within {limit} lines")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for proc in started:
        proc.stop(signal.SIGKILL)


def routes_gcp(line: str) -> bool:
    return json.loads(line.split(" ", 2)[2].rsplit(" ", 1)[0]).get("checkout.shop") == [{"gcp": 1}]


def test_join_route_ack_then_survive_the_federation(tmp_path: Path, procs: list[Proc]) -> None:
    config = tmp_path / "federation.yaml"
    config.write_text(
        f"listen_port: {free_port()}\nstate_dir: {tmp_path / 'state'}\nreport_interval_s: 1.0\n"
        "long_poll_s: 5\n"
    )
    env = {**os.environ, "ISTHMUS_HOME": str(tmp_path / "home")}
    federation = Proc(
        [sys.executable, "-m", "isthmus", "federation", "serve", "--config", str(config)], env
    )
    procs.append(federation)
    federation.expect("federation listening on")
    tokens = {}
    for name in ("aws", "gcp"):
        made = run(
            "federation", "token", "create", "--cluster", name, "--config", str(config), env=env
        )
        assert made.returncode == 0, made.stderr
        tokens[name] = made.stdout.strip()
    gateways = {}
    for name, export in (("gcp", "1"), ("aws", "0")):
        gw = Proc(
            [sys.executable, "-c", DRIVER, name, str(tmp_path / name), tokens[name], export], env
        )
        procs.append(gw)
        gw.expect("JOINED")
        gateways[name] = gw
    routed = gateways["aws"].expect("APPLIED", routes_gcp)
    version = int(routed.split()[1])
    status = json.loads(run("status", "--output", "json", "--config", str(config), env=env).stdout)
    rows = {row["cluster"]: row for row in status["clusters"]}
    assert rows["aws"]["lease"] == rows["gcp"]["lease"] == "healthy"
    assert rows["aws"]["acked_version"] >= version
    # The federation dies hard; the gateway keeps its snapshot (no new APPLIED, still alive).
    federation.stop(signal.SIGKILL)
    assert gateways["aws"].popen.poll() is None
    gateways["aws"].stop(signal.SIGKILL)
    restarted = Proc([sys.executable, "-c", DRIVER, "aws", str(tmp_path / "aws"), "-", "0"], env)
    procs.append(restarted)
    restored = restarted.expect("APPLIED")
    assert int(restored.split()[1]) >= version and routes_gcp(restored)
    assert restarted.expect("STARTED").split()[1] == "restored"
