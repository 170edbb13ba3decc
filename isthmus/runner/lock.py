"""The ``isthmus up`` lock file: one running federation per state directory.

``<home>/up.lock`` is held with ``fcntl.flock`` for the life of ``isthmus up`` (the kernel
releases it when the process dies, however it dies). It holds JSON — pid, the control URL and
its bearer token, the federation and dashboard URLs — written once everything is ready, so
``isthmus drill`` and a second ``isthmus up`` can find the running one. Mode 0600: the token
is in it.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from isthmus.errors import IsthmusError

LOCK_NAME = "up.lock"


class UpAlreadyRunning(IsthmusError):
    """Another ``isthmus up`` holds the lock of this state directory."""


class UpNotRunning(IsthmusError):
    """No ``isthmus up`` runs for this state directory (drills have nothing to act on)."""


def _describe(info: dict[str, Any]) -> str:
    parts = [f"pid {info.get('pid', '?')}"]
    if info.get("dashboard_url"):
        parts.append(f"dashboard {info['dashboard_url']}")
    return ", ".join(parts)


def read_lock_info(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class UpLock:
    """The held lock; :meth:`publish` writes what others need to reach this ``isthmus up``."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd

    def publish(self, info: dict[str, Any]) -> None:
        data = json.dumps({"pid": os.getpid(), **info}, indent=2).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)


@contextmanager
def hold_up_lock(home: Path) -> Iterator[UpLock]:
    """Hold ``<home>/up.lock`` for the block. Raises :class:`UpAlreadyRunning` (naming the
    other process and how to stop it) when another ``isthmus up`` holds it."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            info = read_lock_info(path)
            raise UpAlreadyRunning(
                f"isthmus up is already running for {home} ({_describe(info)}); use it, stop "
                f"it with Ctrl-C in its terminal (or kill {info.get('pid', '<pid>')}), or run "
                "another with ISTHMUS_HOME=<other dir> and --port-offset N"
            ) from err
        os.fchmod(fd, 0o600)
        os.ftruncate(fd, 0)
        lock = UpLock(path, fd)
        lock.publish({"state": "starting"})
        try:
            yield lock
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)


def running_up(home: Path) -> dict[str, Any]:
    """What the running ``isthmus up`` of ``home`` published. Raises :class:`UpNotRunning`."""
    path = home / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError as err:
        raise UpNotRunning(
            f"no isthmus up is running for {home}; start one with 'isthmus up'"
        ) from err
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            info = read_lock_info(path)
            if "control_url" not in info:
                raise UpNotRunning(
                    f"isthmus up for {home} is still starting; try again in a few seconds"
                ) from None
            return info
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    raise UpNotRunning(f"no isthmus up is running for {home}; start one with 'isthmus up'")
