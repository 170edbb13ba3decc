"""A federation "replica" for the failover test: ``python -m tests.integration.store.replica_process
DSN NAME``.

Campaigns for leadership ``placement``; prints ``LEADER <name>`` when it wins. Meanwhile it
appends an event every 20 ms and prints ``WROTE <id>`` after each commit, so the test knows
exactly which writes were acknowledged. Stops by itself after 60 s (bounded).
"""

from __future__ import annotations

import sys

import trio

from federation.store import open_store

RUN_SECONDS = 60.0


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def main(dsn: str, name: str) -> None:
    async with open_store(dsn) as store:

        async def lead() -> None:
            say(f"LEADER {name}")
            await trio.sleep_forever()

        with trio.move_on_after(RUN_SECONDS):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(store.run_as_leader, "placement", lead)
                for n in range(int(RUN_SECONDS / 0.02)):
                    event_id = await store.append_event("write", name, {"n": n}, at=float(n))
                    say(f"WROTE {event_id}")
                    await trio.sleep(0.02)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], sys.argv[2])
