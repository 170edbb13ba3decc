"""``isthmus federation serve`` stops cleanly on Ctrl-C (SIGINT) and SIGTERM: it drains, exits
0 and prints no traceback (regression: trio wrapped KeyboardInterrupt in an ExceptionGroup)."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_federation_cli import ISTHMUS, free_port


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_serve_drains_and_exits_zero_on_signal(tmp_path: Path, signum: signal.Signals) -> None:
    config = tmp_path / "federation.yaml"
    port = free_port()
    config.write_text(f"listen_port: {port}\nstate_dir: {tmp_path / 'state'}\n")
    proc = subprocess.Popen(
        [*ISTHMUS, "federation", "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "ISTHMUS_HOME": str(tmp_path / "home")},
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "federation listening on" in first, proc.stderr.read() if proc.stderr else ""
        with pytest.raises(httpx.HTTPError):  # the port answers (TLS to an unpinned client)
            httpx.get(f"https://127.0.0.1:{port}/healthz", timeout=5)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "ExceptionGroup" not in err, err
    assert f"received {signum.name}: draining" in err
    assert "federation stopped" in out
    with pytest.raises(httpx.ConnectError):  # nothing listens any more
        httpx.get(f"https://127.0.0.1:{port}/healthz", timeout=5, verify=False)
