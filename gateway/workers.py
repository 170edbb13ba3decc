"""Supervising N gateway worker processes that share the listening ports (``SO_REUSEPORT``).

The parent runs no listener itself. It starts every worker, forwards SIGTERM / SIGINT to each
(each worker then drains: GOAWAY, in-flight requests finish, then it exits), and restarts a
worker that dies unexpectedly, at most :data:`MAX_RESTARTS` times per :data:`RESTART_WINDOW_S`;
beyond that it stops every worker and raises :class:`WorkerCrashLoop`.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from collections.abc import Awaitable, Callable, Sequence

import trio

from gateway.errors import GatewayError

log = logging.getLogger(__name__)

MAX_RESTARTS = 5
RESTART_WINDOW_S = 60.0
RESTART_DELAY_S = 0.5


class WorkerCrashLoop(GatewayError):
    """A worker kept dying; the message names it and its last exit code."""


def _deliver_cancel(grace_s: float) -> Callable[[trio.Process], Awaitable[None]]:
    async def deliver(process: trio.Process) -> None:
        process.terminate()
        with trio.move_on_after(grace_s):
            await process.wait()
            return
        log.warning("worker pid %s did not drain within %.0f s; killing it", process.pid, grace_s)
        process.kill()

    return deliver


async def _run_worker(
    index: int, command: Sequence[str], grace_s: float, restarts: list[float]
) -> None:
    while True:
        # Own session: a terminal's Ctrl-C reaches only the parent, which forwards exactly one
        # SIGTERM (a second signal would make the worker skip its drain).
        result = await trio.run_process(
            list(command),
            check=False,
            stdin=subprocess.DEVNULL,
            deliver_cancel=_deliver_cancel(grace_s),
            start_new_session=True,
        )
        now = trio.current_time()
        restarts[:] = [t for t in restarts if now - t < RESTART_WINDOW_S] + [now]
        if len(restarts) > MAX_RESTARTS:
            raise WorkerCrashLoop(
                f"gateway worker {index} exited with code {result.returncode}; "
                f"{len(restarts)} worker exits within {RESTART_WINDOW_S:.0f} s, giving up"
            )
        log.error("gateway worker %s exited with code %s; restarting", index, result.returncode)
        await trio.sleep(RESTART_DELAY_S)


async def _serve_merged_admin(
    admin: tuple[str, int],
    workers: int,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    from gateway.admin import bind_admin_socket, serve_admin
    from gateway.aggregate import WorkersAdminApp

    host, port = admin
    app = WorkersAdminApp(host, [port + 1 + k for k in range(workers)])
    await serve_admin(app, bind_admin_socket(host, port), trio.Event(), task_status=task_status)


async def stop_when_orphaned(
    parent_pid: int, stop: Callable[[], None], *, poll_s: float = 1.0
) -> None:
    """For a worker: call ``stop`` (drain) once the supervising parent is gone (the worker was
    re-parented), so a SIGKILLed supervisor does not leave workers behind. Returns after."""
    while os.getppid() == parent_pid:  # noqa: ASYNC110 - no event exists for a parent exit
        await trio.sleep(poll_s)
    log.warning("supervisor (pid %s) is gone; draining", parent_pid)
    stop()


async def supervise_workers(
    command_for: Callable[[int], Sequence[str]],
    workers: int,
    *,
    grace_s: float,
    admin: tuple[str, int] | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``workers`` processes (``command_for(i)``) until SIGTERM/SIGINT, then stop them
    (SIGTERM, SIGKILL after ``grace_s``) and return. Must run on the main thread.

    ``admin=(host, port)``: serve the merged admin API there (:mod:`gateway.aggregate`); worker
    *k* must serve its own on ``port + 1 + k``."""
    restarts: list[float] = []
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            if admin is not None:
                await nursery.start(_serve_merged_admin, admin, workers)
            for index in range(workers):
                nursery.start_soon(_run_worker, index, command_for(index), grace_s, restarts)
            task_status.started()
            async for signum in signals:
                log.info("%s: stopping %d gateway workers", signal.Signals(signum).name, workers)
                nursery.cancel_scope.cancel()
                break
