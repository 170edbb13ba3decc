"""The leader's maintenance loop: bounded retention of timeline events and join tokens.

Events (one per lease change, NACK, join, failover, ...) and join tokens (one per join) are
never read back once old, but used to stay forever. The elected leader prunes, every
``interval_s``, events older than ``events_s`` and tokens used or expired more than
``tokens_s`` ago (:meth:`~federation.store.Store.prune`, one transaction). A store error is
logged and retried at the next interval; it never stops the leader's other work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import trio

from federation.store import Store, StoreError

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Retention:
    """How long old events and spent join tokens are kept, and how often the leader prunes."""

    events_s: float = 7 * 86400.0
    tokens_s: float = 86400.0
    interval_s: float = 300.0


async def run_maintenance(
    store: Store,
    clock: Callable[[], float],
    retention: Retention,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Prune at once, then every ``retention.interval_s``, until cancelled (never returns)."""
    task_status.started()
    while True:
        now = clock()
        try:
            counts = await store.prune(
                events_before=now - retention.events_s, tokens_before=now - retention.tokens_s
            )
        except StoreError as err:
            _log.warning("pruning old events and join tokens failed, retrying later: %s", err)
        else:
            if counts.events or counts.tokens:
                _log.info(
                    "pruned %d old events and %d spent join tokens", counts.events, counts.tokens
                )
        await trio.sleep(retention.interval_s)
