"""Real processes: a federation declaring services from its config, ``isthmus plan --federation``
and ``isthmus explain`` through the real entry point."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from federation.service import JoinToken, pinned_client_context
from tests.e2e.test_federation_cli import ISTHMUS, free_port, join_body, run


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str], str]]:
    config = tmp_path / "federation.yaml"
    port = free_port()
    config.write_text(
        f"listen_port: {port}\nstate_dir: {tmp_path / 'state'}\nreport_interval_s: 0.5\n"
        "services:\n  - name: checkout.shop\n    replicas: 2\n"
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
        first = proc.stdout.readline()
        assert "federation listening on" in first, proc.stderr.read() if proc.stderr else ""
        yield config, env, f"https://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def test_live_plan_and_explain_through_the_cli(served: tuple[Path, dict[str, str], str]) -> None:
    config, env, url = served
    created = run(
        "federation", "token", "create", "--cluster", "e2e", "--config", str(config), env=env
    )
    assert created.returncode == 0, created.stderr
    token = JoinToken.decode(created.stdout.strip())
    ca_pem = (config.parent / "state" / "tls" / "ca.pem").read_bytes()
    with httpx.Client(
        base_url=url, verify=pinned_client_context(ca_pem, token.ca_sha256), timeout=10
    ) as client:
        assert client.post("/v1/join", json=join_body(created.stdout.strip())).status_code == 201
    deadline = time.monotonic() + 20
    while True:  # the leader plans within its debounce window after the join
        shown = run(
            "plan", "--federation", url, "--output", "json", "--config", str(config), env=env
        )
        assert shown.returncode == 0, shown.stderr
        data = json.loads(shown.stdout)
        if "checkout.shop" in data["placements"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert set(data) >= {"placements", "traffic", "explanations", "unschedulable"}
    # the only cluster never reported: its lease is pending, nothing can be placed
    assert data["placements"]["checkout.shop"] == {}
    assert data["unschedulable"]["checkout.shop"]["missing"] == 2
    assert data["explanations"]["checkout.shop"]["e2e"]["chosen"] is False
    explained = run(
        "explain", "checkout.shop", "--federation", url, "--config", str(config), env=env
    )
    assert explained.returncode == 0, explained.stderr
    assert "checkout.shop" in explained.stdout and "e2e" in explained.stdout
    assert "Unschedulable" in explained.stdout
    unknown = run("explain", "cart.shop", "--federation", url, "--config", str(config), env=env)
    assert unknown.returncode == 1
    assert "no placement decision for 'cart.shop'" in unknown.stderr
    both = run("plan", "--config", str(config), env=env)
    assert both.returncode == 2 and "exactly one of --input or --federation" in both.stderr
