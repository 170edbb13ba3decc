"""Processes of the data-plane benchmark: start (optionally pinned with ``taskset``), wait for a
port, read CPU time from ``/proc``, stop.

Every process the benchmark starts is a :class:`Proc` owned by a :class:`ProcGroup`; leaving
the group's ``with`` block stops them all (SIGTERM, SIGKILL after a grace period), so nothing
outlives the run even when a part fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """A benchmark step failed; the message names the process or tool and its log file."""


def pinned(argv: Sequence[str], cpus: str | None) -> list[str]:
    """``argv`` prefixed with ``taskset -c cpus`` when pinning is asked for and possible."""
    if cpus and shutil.which("taskset"):
        return ["taskset", "-c", cpus, *argv]
    return list(argv)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    task_dir = Path(f"/proc/{pid}/task")
    with contextlib.suppress(OSError):
        for task in task_dir.iterdir():
            with contextlib.suppress(OSError):
                text = (task / "children").read_text()
                found.extend(int(item) for item in text.split())
    return found


def process_tree(pid: int) -> list[int]:
    """``pid`` and its live descendants (``--workers N`` runs N children)."""
    tree: list[int] = []
    todo = [pid]
    while todo and len(tree) < 1024:
        current = todo.pop()
        tree.append(current)
        todo.extend(_children(current))
    return tree


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, in seconds (0 when it is gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = text[text.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (bound together, then released)."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def wait_port(port: int, *, timeout_s: float, proc: Proc | None = None) -> None:
    """Wait until 127.0.0.1:port accepts a connection; raise :class:`BenchError` on timeout or
    when ``proc`` exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.popen.poll() is not None:
            raise BenchError(
                f"{proc.name} exited with code {proc.popen.returncode}; see {proc.log}"
            )
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise BenchError(f"nothing listens on 127.0.0.1:{port} after {timeout_s:.0f} s")


@dataclass
class Proc:
    """A started process, its name and the file its stdout and stderr go to."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def cpu_seconds(self) -> float:
        """CPU time used so far by the process and its live descendants."""
        return sum(cpu_seconds(pid) for pid in process_tree(self.popen.pid))

    def move_to(self, cpus: str | None) -> None:
        """Re-pin every thread of the process and its descendants (no-op without pinning)."""
        if not cpus or shutil.which("taskset") is None:
            return
        for pid in process_tree(self.popen.pid):
            argv = ["taskset", "-a", "-pc", cpus, str(pid)]
            subprocess.run(argv, capture_output=True, timeout=10, check=False)

    def stop(self, grace_s: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``grace_s``; a no-op when already gone."""
        if self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(grace_s)
        except subprocess.TimeoutExpired:
            for pid in reversed(process_tree(self.popen.pid)):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            self.popen.wait(grace_s)


class ProcGroup:
    """Owns the processes of one topology; stops them (in reverse order) on exit."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: list[Proc] = []

    def start(
        self, name: str, argv: Sequence[str], *, cpus: str | None, env: dict[str, str] | None = None
    ) -> Proc:
        """Start ``argv`` (pinned to ``cpus``) with output to ``<logs>/<name>.log``."""
        log = self.logs / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                pinned(argv, cpus),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def __enter__(self) -> ProcGroup:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()


def run_tool(
    argv: Sequence[str],
    *,
    cpus: str | None,
    timeout_s: float,
    what: str,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a measuring tool to completion (pinned, ``env`` added to ours), raising
    :class:`BenchError` naming ``what`` on a non-zero exit or when it exceeds ``timeout_s``."""
    try:
        done = subprocess.run(
            pinned(argv, cpus),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            env={**os.environ, **env} if env else None,
        )
    except subprocess.TimeoutExpired as err:
        raise BenchError(f"{what} did not finish within {timeout_s:.0f} s") from err
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-600:]
        raise BenchError(f"{what} exited with code {done.returncode}: {tail}")
    return done
