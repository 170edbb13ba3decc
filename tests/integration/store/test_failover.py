"""HA on PostgreSQL: kill the leader replica with SIGKILL while another replica keeps writing."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from federation.store import open_store

REPO = Path(__file__).resolve().parents[3]


class Replica:
    """A replica subprocess whose stdout lines are collected as they arrive."""

    def __init__(self, process: trio.Process, name: str) -> None:
        self.process = process
        self.name = name
        self.lines: list[str] = []
        self._arrived = trio.Event()

    async def collect(self) -> None:
        assert self.process.stdout is not None
        buffer = b""
        async for chunk in self.process.stdout:
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            self.lines.extend(line.decode() for line in complete)
            self._arrived.set()
            self._arrived = trio.Event()

    async def wait_for(self, predicate: Callable[[list[str]], bool], seconds: float) -> None:
        with trio.fail_after(seconds):
            while not predicate(self.lines):
                await self._arrived.wait()

    def written(self) -> list[int]:
        return [int(line.split()[1]) for line in self.lines if line.startswith("WROTE ")]

    def leads(self) -> bool:
        return f"LEADER {self.name}" in self.lines


@asynccontextmanager
async def replica(nursery: trio.Nursery, dsn: str, name: str) -> AsyncIterator[Replica]:
    command = [sys.executable, "-m", "tests.integration.store.replica_process", dsn, name]
    process = await trio.lowlevel.open_process(command, cwd=REPO, stdout=subprocess.PIPE)
    running = Replica(process, name)
    nursery.start_soon(running.collect)
    try:
        yield running
    finally:
        if process.returncode is None:
            process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()


async def test_survivor_takes_over_without_losing_writes(postgres_dsn: str) -> None:
    async with open_store(postgres_dsn):
        pass  # migrate once up front, so both replicas start on a ready schema
    async with trio.open_nursery() as nursery:
        async with replica(nursery, postgres_dsn, "alpha") as alpha:
            await alpha.wait_for(lambda lines: "LEADER alpha" in lines, 20)
            async with replica(nursery, postgres_dsn, "beta") as beta:
                await beta.wait_for(lambda _: len(beta.written()) >= 10, 20)
                assert not beta.leads(), "two leaders at once"
                alpha.process.send_signal(signal.SIGKILL)
                killed_at = time.monotonic()
                await beta.wait_for(lambda lines: "LEADER beta" in lines, 10)
                failover = time.monotonic() - killed_at
                writes_at_takeover = len(beta.written())
                await beta.wait_for(lambda _: len(beta.written()) >= writes_at_takeover + 10, 10)
                await alpha.process.wait()
        nursery.cancel_scope.cancel()

    assert alpha.process.returncode == -signal.SIGKILL
    assert failover < 5.0, f"failover took {failover:.2f} s"
    acknowledged = alpha.written() + beta.written()
    async with open_store(postgres_dsn) as store:
        stored = {event.id: event.subject for event in await store.list_events(limit=100_000)}
    lost = [event_id for event_id in acknowledged if event_id not in stored]
    assert not lost, f"acknowledged writes missing after failover: {lost}"
    assert {stored[i] for i in alpha.written()} == {"alpha"}
    assert len(alpha.written()) >= 10 and len(beta.written()) >= 20
    print(f"failover in {failover:.2f} s, {len(acknowledged)} acknowledged writes, none lost")
