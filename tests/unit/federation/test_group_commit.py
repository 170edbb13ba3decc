"""Group commit: concurrent writes share one flush, each caller returns once its batch is done."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing

from federation.store.errors import StoreError, StoreUnavailable
from federation.store.group_commit import GroupCommit


def run(afn: object) -> None:
    trio.run(afn, clock=trio.testing.MockClock(autojump_threshold=0))  # type: ignore[arg-type]


def _recorded_slow_flush() -> tuple[list[list[int]], Callable[[list[int]], Awaitable[None]]]:
    """A flush that takes a while (a commit, on the mock clock) and records each batch."""
    flushed: list[list[int]] = []

    async def flush(items: list[int]) -> None:
        await trio.sleep(0.01)
        flushed.append(list(items))

    return flushed, flush


def test_writes_arriving_during_a_commit_go_together_in_the_next() -> None:
    flushed, flush = _recorded_slow_flush()

    async def main() -> None:
        commits = GroupCommit(flush)
        returned: dict[int, int] = {}

        async def write(n: int) -> None:
            await commits.submit(n)
            returned[n] = len(flushed)  # how many batches were durable when it returned

        async with trio.open_nursery() as nursery:
            nursery.start_soon(write, 0)
            await trio.sleep(0.001)  # 0 is committing now
            for n in range(1, 50):
                nursery.start_soon(write, n)
        assert [sorted(batch) for batch in flushed] == [[0], list(range(1, 50))]
        assert returned[0] >= 1 and all(returned[n] == 2 for n in range(1, 50))
        assert (commits.batches, commits.items) == (2, 50)

    run(main)


def test_a_lone_write_is_not_delayed() -> None:
    async def flush(items: list[int]) -> None:
        pass

    async def main() -> None:
        commits = GroupCommit(flush)
        started = trio.current_time()
        await commits.submit(1)
        assert trio.current_time() == started

    run(main)


def test_every_caller_of_a_failed_batch_gets_an_error_and_the_next_batch_commits() -> None:
    calls: list[list[str]] = []

    async def flush(items: list[str]) -> None:
        calls.append(list(items))
        await trio.sleep(0.01)
        if "bad" in items:
            raise StoreUnavailable("database went away")

    async def main() -> None:
        commits = GroupCommit(flush)
        errors: list[BaseException] = []

        async def write(item: str) -> None:
            try:
                await commits.submit(item)
            except StoreError as err:
                errors.append(err)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(write, "bad")
            nursery.start_soon(write, "bad-company")
        assert len(errors) == 2 and all(isinstance(e, StoreUnavailable) for e in errors)
        assert errors[0] is not errors[1]
        await commits.submit("good")
        assert calls[-1] == ["good"]

    run(main)


def test_a_cancelled_committer_still_finishes_its_batch() -> None:
    flushed, flush = _recorded_slow_flush()

    async def main() -> None:
        commits = GroupCommit(flush)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(commits.submit, 1)
            nursery.start_soon(commits.submit, 2)
            await trio.sleep(0.005)
            nursery.cancel_scope.cancel()  # both callers, the committer among them
        assert [sorted(batch) for batch in flushed] == [[1, 2]]
        await commits.submit(3)
        assert flushed[-1] == [3]

    run(main)


@pytest.mark.parametrize("failure", [ValueError("bug"), StoreError("constraint")])
def test_unexpected_errors_become_store_errors(failure: Exception) -> None:
    async def flush(items: list[int]) -> None:
        raise failure

    async def main() -> None:
        with pytest.raises(StoreError) as caught:
            await GroupCommit(flush).submit(1)
        assert caught.value.__cause__ is failure

    run(main)


def test_submit_many_puts_its_items_in_one_batch_in_order() -> None:
    flushed, flush = _recorded_slow_flush()

    async def main() -> None:
        commits = GroupCommit(flush)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(commits.submit, 0)
            await trio.sleep(0.001)  # 0 is committing now
            nursery.start_soon(commits.submit_many, [3, 2, 1])
            nursery.start_soon(commits.submit, 4)
        # the tasks start in either order; submit_many's items stay together, in order
        assert flushed in ([[0], [3, 2, 1, 4]], [[0], [4, 3, 2, 1]])
        assert (commits.batches, commits.items) == (2, 5)

    run(main)


def test_submit_many_commits_at_once_when_it_may_and_submit_lets_others_join() -> None:
    flushed: list[list[int]] = []

    async def flush(items: list[int]) -> None:  # an inline commit: no checkpoint
        flushed.append(list(items))

    async def main() -> None:
        commits = GroupCommit(flush)
        with trio.testing.assert_no_checkpoints():  # no scheduler pass before the commit
            await commits.submit_many([1, 2])
        with trio.testing.assert_checkpoints():  # same-tick callers may join a single submit
            await commits.submit(3)
        assert flushed == [[1, 2], [3]]

    run(main)
