"""The dashboard in real headless Chromium against a real ``isthmus up``, with real drills.

A user's path: open the URL ``isthmus up`` published, see three clusters, run
``isthmus drill kill-cluster`` on a cluster that receives cross-cluster traffic, watch it turn
unreachable while the traffic weights of every other cluster move away from it, run
``isthmus drill heal`` and watch it come back. Debian's ``/usr/bin/chromium`` driven by
Playwright (never ``playwright install``); skipped only where that binary is absent. The
topology is the bundled example with its ports moved below the ephemeral range.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]
ISTHMUS = [sys.executable, "-m", "isthmus"]
READY_S = 60.0

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="no Chromium at /usr/bin/chromium (apt-get install chromium)"
)


#: The bundled example moved below the ephemeral port range (32768+): on a busy machine,
#: connections in TIME-WAIT hold ports there and ``isthmus up`` would find them taken.
_BASES = {"aws-use1": 12000, "gcp-euw1": 17000, "azure-weu": 22000}
_FEDERATION_PORT = 8443
_PORTS = (
    _FEDERATION_PORT,
    *(base + d for base in _BASES.values() for d in (0, 1, 443, *range(100, 110))),
)


def _topology(tmp_path: Path) -> Path:
    """The bundled three-cloud example (``isthmus/runner/default.yaml``) with lower ports."""
    import yaml

    text = resources.files("isthmus.runner").joinpath("default.yaml").read_text()
    config = yaml.safe_load(text)
    config["federation_port"] = _FEDERATION_PORT
    for cluster in config["clusters"]:
        cluster["port_base"] = _BASES[cluster["name"]]
    path = tmp_path / "up.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_offset() -> int:
    """An offset (keeping every port below 32768) whose ports are all free right now."""
    for _ in range(200):
        offset = random.randrange(0, 10000)
        if all(_bindable(port + offset) for port in _PORTS):
            return offset
    raise AssertionError("no free --port-offset for isthmus up")


def _start_up(home: Path, topology: Path, log: Path) -> subprocess.Popen[bytes]:
    """``isthmus up --fast`` on a free port offset; retried if the ports were taken meanwhile."""
    for _ in range(4):
        offset = _free_offset()
        args = [*ISTHMUS, "up", "--fast", "--config", str(topology), "--home", str(home)]
        args += ["--port-offset", str(offset)]
        with log.open("ab") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + READY_S
        while time.monotonic() < deadline and proc.poll() is None:
            if _lock(home).get("dashboard_url"):
                return proc
            time.sleep(0.2)
        _stop(proc)
    raise AssertionError(f"isthmus up did not become ready; log:\n{log.read_text()[-3000:]}")


def _lock(home: Path) -> dict[str, Any]:
    try:
        data = json.loads((home / "up.lock").read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _drill(home: Path, *args: str) -> str:
    done = subprocess.run(
        [*ISTHMUS, "drill", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture
def running_up(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "home"
    home.mkdir()
    proc = _start_up(home, _topology(tmp_path), tmp_path / "up.log")
    try:
        yield home
    finally:
        _stop(proc)


def _weights(page: Any, service: str) -> list[dict[str, Any]]:
    """Every weight bar segment of ``service`` as the page shows it."""
    result: list[dict[str, Any]] = page.eval_on_selector_all(
        f'[data-testid="weight"][data-service="{service}"]',
        "els => els.map(e => ({source: e.dataset.source, destination: e.dataset.destination,"
        " weight: Number(e.dataset.weight)}))",
    )
    return result


def _cross_cluster_target(page: Any) -> tuple[str, str]:
    """A (service, cluster) where the cluster takes traffic from another cluster."""
    for service in page.eval_on_selector_all(
        '[data-testid="placement-row"]', "els => els.map(e => e.dataset.service)"
    ):
        for item in _weights(page, service):
            if item["weight"] > 0 and item["destination"] != item["source"]:
                return service, item["destination"]
    raise AssertionError("no cross-cluster traffic weight on the dashboard")


def _traffic_left(page: Any, service: str, victim: str) -> bool:
    live = [w for w in _weights(page, service) if w["source"] != victim]
    to_victim = [w for w in live if w["destination"] == victim and w["weight"] > 0]
    elsewhere = [w for w in live if w["destination"] != victim and w["weight"] > 0]
    return not to_victim and bool(elsewhere)


def test_dashboard_shows_a_killed_cluster_its_traffic_moving_and_its_return(
    running_up: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    home = running_up
    url = _lock(home)["dashboard_url"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            ignore_https_errors=True,  # the federation's own CA, not the system's
            viewport={"width": 1500, "height": 1000},
            env={**os.environ, "HOME": str(tmp_path)},
        )
        page = browser.new_page()
        try:
            page.goto(url)
            assert page.url.endswith("/ui"), "the login URL should land on /ui"
            clusters = page.locator('[data-testid="cluster"]')
            expect(clusters).to_have_count(3, timeout=15_000)
            expect(page.locator('[data-testid="cluster"][data-state="healthy"]')).to_have_count(
                3, timeout=20_000
            )
            expect(page.locator('[data-testid="conn"]')).to_have_attribute("data-state", "live")
            weights = page.locator('[data-testid="weight"]')
            expect(weights.first).to_be_attached(timeout=20_000)
            service, victim = _cross_cluster_target(page)

            # live updates, no reload: a mark on this document must survive the whole drill
            page.eval_on_selector("body", "body => { body.dataset.mark = 'same-page'; }")
            said = _drill(home, "kill-cluster", victim)
            assert victim in said
            node = page.locator(f'[data-testid="cluster"][data-cluster="{victim}"]')
            expect(node).to_have_attribute("data-state", "unreachable", timeout=15_000)
            expect(node.locator('[data-testid="cluster-state"]')).to_contain_text("UNREACHABLE")
            into = page.locator(f'[data-testid="link"][data-destination="{victim}"]')
            expect(into.first).to_have_attribute("data-state", "down")
            deadline = time.monotonic() + 15
            while not _traffic_left(page, service, victim):
                assert time.monotonic() < deadline, _weights(page, service)
                page.wait_for_timeout(200)
            drill = page.locator('[data-testid="event"][data-kind="drill"]')
            expect(drill.first).to_contain_text(victim, timeout=10_000)
            page.screenshot(path=str(tmp_path / "killed.png"), full_page=True)

            _drill(home, "heal")
            expect(node).to_have_attribute("data-state", "healthy", timeout=20_000)
            up_again = page.locator(
                f'[data-testid="link"][data-destination="{victim}"][data-state="up"]'
            )
            expect(up_again.first).to_be_visible(timeout=15_000)
            expect(page.locator('[data-testid="cluster"][data-state="healthy"]')).to_have_count(3)
            expect(page.locator("body")).to_have_attribute("data-mark", "same-page")
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
            raise
        finally:
            browser.close()
