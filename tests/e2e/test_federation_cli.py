"""Real processes: ``isthmus federation serve``, ``token create``, a join over HTTPS, ``status``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from federation.service import JoinToken, pinned_client_context
from federation.trust import CertificateAuthority, TrustBundle, TrustDomain

ISTHMUS = [sys.executable, "-m", "isthmus"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ISTHMUS, *args], check=False, capture_output=True, text=True, env=env, timeout=60
    )


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str], str]]:
    config = tmp_path / "federation.yaml"
    port = free_port()
    config.write_text(
        f"listen_port: {port}\nstate_dir: {tmp_path / 'state'}\nreport_interval_s: 0.5\n"
    )
    env = {**os.environ, "ISTHMUS_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen(
        [*ISTHMUS, "federation", "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # blocks until bound (or the process died)
        assert "federation listening on https://127.0.0.1:" in first, (
            proc.stderr.read() if proc.stderr else ""
        )
        yield config, env, f"https://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def join_body(token: str) -> dict[str, object]:
    td = TrustDomain("e2e.isthmus.test")
    ca = CertificateAuthority.create(td, now=datetime.now(UTC))
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    bundle = TrustBundle(td, (ca.root,), {"k1": key}, 1)
    return {
        "token": token,
        "trust_domain": td.name,
        "trust_bundle": bundle.to_json(),
        "gateway_addresses": ["127.0.0.1:15443"],
        "locality": {"cloud": "local", "region": "lab", "zone": "a"},
    }


def test_token_join_and_status_through_the_cli(served: tuple[Path, dict[str, str], str]) -> None:
    config, env, url = served
    created = run(
        "federation",
        "token",
        "create",
        "--cluster",
        "e2e",
        "--ttl",
        "10m",
        "--config",
        str(config),
        env=env,
    )
    assert created.returncode == 0, created.stderr
    token_text = created.stdout.strip()
    token = JoinToken.decode(token_text)
    assert token.federation_url == url and token.cluster == "e2e"
    ca_pem = (config.parent / "state" / "tls" / "ca.pem").read_bytes()
    context = pinned_client_context(ca_pem, token.ca_sha256)
    with httpx.Client(base_url=url, verify=context, timeout=10) as client:
        body = join_body(token_text)
        assert client.post("/v1/join", json=body).status_code == 201
        again = client.post("/v1/join", json=body)
        assert again.status_code == 403 and "already used" in again.json()["error"]["message"]
    shown = run("status", "--output", "json", "--config", str(config), env=env)
    assert shown.returncode == 0, shown.stderr
    rows = json.loads(shown.stdout)["clusters"]
    assert [(r["cluster"], r["lease"], r["bundle_sequence"]) for r in rows] == [
        ("e2e", "pending", 1)
    ]
    table = run("status", "--config", str(config), env=env)
    assert table.returncode == 0 and "e2e" in table.stdout and "local/lab/a" in table.stdout


def test_bad_ttl_is_a_usage_error(tmp_path: Path) -> None:
    env = {**os.environ, "ISTHMUS_HOME": str(tmp_path)}
    result = run("federation", "token", "create", "--cluster", "x", "--ttl", "soon", env=env)
    assert result.returncode == 2
    assert "duration" in result.stderr
