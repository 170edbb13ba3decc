"""A burst of joins makes one rebuild after it pauses, never later than the bound."""

from __future__ import annotations

import trio
import trio.testing

from federation.service.rebuild_pacing import JoinPacer


def run(afn: object) -> None:
    trio.run(afn, clock=trio.testing.MockClock(autojump_threshold=0))  # type: ignore[arg-type]


def test_no_join_pending_means_no_wait() -> None:
    async def main() -> None:
        assert await JoinPacer().settle() == 0.0

    run(main)


def test_waits_for_the_burst_to_pause() -> None:
    async def main() -> None:
        pacer = JoinPacer(quiet_s=0.05, floor_s=1.0)
        pacer.note_join()

        async def joins() -> None:
            for _ in range(5):  # one join every 30 ms: the burst lasts 150 ms
                await trio.sleep(0.03)
                pacer.note_join()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(joins)
            waited = await pacer.settle()
        assert 0.15 <= waited <= 0.25
        assert not pacer.joined

    run(main)


def test_an_endless_burst_waits_at_most_the_last_rebuilds_duration() -> None:
    async def main() -> None:
        pacer = JoinPacer(quiet_s=0.05, floor_s=0.1, cap_s=2.0, last_rebuild_s=0.7)
        pacer.note_join()
        async with trio.open_nursery() as nursery:

            async def joins() -> None:
                while True:
                    await trio.sleep(0.01)
                    pacer.note_join()

            nursery.start_soon(joins)
            waited = await pacer.settle()
            nursery.cancel_scope.cancel()
        assert 0.7 <= waited <= 0.75
        assert JoinPacer(floor_s=0.1, cap_s=2.0, last_rebuild_s=9.0).max_delay() == 2.0
        assert JoinPacer(floor_s=0.1, cap_s=2.0, last_rebuild_s=0.0).max_delay() == 0.1

    run(main)
