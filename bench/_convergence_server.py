"""The federation under test: one ``isthmus federation serve`` subprocess on 127.0.0.1.

:class:`FederationProcess` writes a ``federation.yaml`` (listen port 0, a temporary state
directory, SQLite in it unless a store URL is given), starts the real command with its output in
``<dir>/federation.log``, waits (bounded) for the lines that print its URL and TLS CA
fingerprint, and stops it on exit (SIGINT, then SIGKILL after a grace period). Join tokens are
written straight into the federation's store, as ``isthmus federation token create`` does, but
for all simulated clusters in one go.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from federation.service import create_join_token
from federation.store import open_store, sqlite_url_for_state_dir

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_URL_LINE = re.compile(r"federation listening on (\S+)")
_FINGERPRINT_LINE = re.compile(r"TLS CA fingerprint (\S+)")


class BenchError(RuntimeError):
    """A benchmark step failed; the message names the step and the log to read."""


@dataclass(frozen=True)
class ServerSettings:
    """What the benchmark sets in ``federation.yaml`` (everything else: the defaults)."""

    report_interval_s: float = 1.0
    long_poll_s: float = 30.0
    store_url: str | None = None
    profile_path: Path | None = None
    switch_interval_s: float | None = None  # experiment: sys.setswitchinterval in the server
    server_tree: Path | None = None  # run the server from this source tree (A/B)


def isthmus_argv(
    profile_path: Path | None = None, switch_interval_s: float | None = None
) -> list[str]:
    """``python -m isthmus`` with this interpreter, optionally under ``cProfile`` (which sees
    the main thread only: the event loop, not the store's worker threads) or with a shorter
    GIL switch interval (an experiment: how much the store thread waits for the GIL)."""
    if switch_interval_s is not None:
        code = (
            f"import sys; sys.setswitchinterval({switch_interval_s!r}); sys.argv[0] = 'isthmus'; "
            "from isthmus.cli import main; main()"
        )
        return [sys.executable, "-c", code]
    if profile_path is None:
        return [sys.executable, "-m", "isthmus"]
    return [sys.executable, "-m", "cProfile", "-o", str(profile_path), "-m", "isthmus"]


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` from ``/proc`` (0.0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class FederationProcess:
    """One federation replica as a subprocess; a context manager that always stops it."""

    def __init__(self, workdir: Path, settings: ServerSettings) -> None:
        self.workdir = workdir
        self.settings = settings
        self.state_dir = workdir / "federation"
        self.log_path = workdir / "federation.log"
        self.config_path = workdir / "federation.yaml"
        self.url = ""
        self.fingerprint = ""
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise BenchError("federation: not started")
        return self._proc.pid

    @property
    def store_url(self) -> str:
        return self.settings.store_url or sqlite_url_for_state_dir(self.state_dir)

    def _write_config(self) -> None:
        doc = {
            "listen_host": "127.0.0.1",
            "listen_port": 0,
            "state_dir": str(self.state_dir),
            "store_url": self.store_url,
            "report_interval_s": self.settings.report_interval_s,
            "long_poll_s": self.settings.long_poll_s,
        }
        self.config_path.write_text(json.dumps(doc, indent=2) + "\n")  # JSON is YAML

    def start(self, timeout_s: float = 30.0) -> None:
        """Start and wait until the URL and fingerprint are printed; BenchError otherwise."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if self.settings.server_tree is not None:
            inherited = env.get("PYTHONPATH")
            tree = str(self.settings.server_tree.resolve())
            env["PYTHONPATH"] = tree + (os.pathsep + inherited if inherited else "")
        argv = [
            *isthmus_argv(self.settings.profile_path, self.settings.switch_interval_s),
            *("federation", "serve", "--config", str(self.config_path)),
        ]
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.workdir
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            url, fingerprint = _URL_LINE.search(text), _FINGERPRINT_LINE.search(text)
            if url and fingerprint:
                self.url, self.fingerprint = url.group(1), fingerprint.group(1)
                return
            if self._proc.poll() is not None:
                raise BenchError(f"federation exited with {self._proc.returncode}: {self.tail()}")
            time.sleep(0.05)
        raise BenchError(f"federation did not print its URL within {timeout_s:.0f}s: {self.tail()}")

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return f"{self.log_path}:\n" + "\n".join(text.splitlines()[-lines:])

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def stop(self, grace_s: float = 5.0) -> None:
        """SIGINT (the command's clean stop), SIGKILL after ``grace_s``."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=grace_s)

    def __enter__(self) -> FederationProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


async def create_tokens(server: FederationProcess, clusters: list[str]) -> dict[str, str]:
    """One single-use join token per cluster, stored in the federation's store (like
    ``isthmus federation token create``, without a process per token). Returns name -> token."""
    tokens: dict[str, str] = {}
    now = time.time()
    async with open_store(server.store_url) as store:
        for name in clusters:
            token, record = create_join_token(
                federation_url=server.url,
                ca_sha256=server.fingerprint,
                cluster=name,
                now=now,
                ttl_s=3600.0,
            )
            await store.create_join_token(
                record.token_id, record.cluster, record.digest, record.expires_at
            )
            tokens[name] = token.encode()
    return tokens
