"""The worker supervisor behind ``isthmus gateway run --workers N`` with real processes."""

import sys
from pathlib import Path

import pytest
import trio

from gateway import workers
from gateway.workers import WorkerCrashLoop, supervise_workers


async def test_a_worker_that_keeps_dying_stops_the_supervisor_with_its_exit_code(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(workers, "RESTART_DELAY_S", 0.01)
    command = [sys.executable, "-c", "raise SystemExit(3)"]
    with pytest.raises(ExceptionGroup) as err, trio.fail_after(30):
        await supervise_workers(lambda index: command, 2, grace_s=1.0)
    assert err.group_contains(WorkerCrashLoop, match="exited with code 3")


async def test_a_crashed_worker_is_restarted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(workers, "RESTART_DELAY_S", 0.01)
    marker = tmp_path / "starts"
    # each start appends a byte; the first two starts exit at once, the third stays up
    script = (
        f"import pathlib, time; p = pathlib.Path({str(marker)!r}); "
        "p.write_text((p.read_text() if p.exists() else '') + 'x'); "
        "time.sleep(0 if len(p.read_text()) < 3 else 60)"
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: supervise_workers(lambda i: [sys.executable, "-c", script], 1, grace_s=1.0)
        )
        with trio.fail_after(20):
            while True:
                if marker.exists() and len(marker.read_text()) >= 3:
                    break
                await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
