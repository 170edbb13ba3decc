"""When to renew an SVID (pure) and the trio task that renews and swaps it.

Renewal happens at half-life, pulled earlier by up to ``jitter`` of the lifetime so that many
gateways issued at the same moment do not all renew at the same moment.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import trio

from federation.errors import FederationError
from federation.trust.svid import X509Svid

log = logging.getLogger(__name__)

DEFAULT_JITTER = 0.1
DEFAULT_RETRY = timedelta(seconds=10)


def renewal_due(
    not_before: datetime,
    not_after: datetime,
    now: datetime,
    rng: random.Random,
    jitter: float = DEFAULT_JITTER,
) -> datetime:
    """The moment to renew a credential valid from ``not_before`` to ``not_after``.

    That is ``not_before + lifetime * (0.5 - u)`` with ``u`` uniform in ``[0, jitter]`` drawn
    from ``rng``: never later than half-life. Never earlier than ``now`` (an overdue credential
    is renewed at once).
    """
    if not 0.0 <= jitter < 0.5:
        raise ValueError(f"jitter must be in [0, 0.5), got {jitter}")
    lifetime = not_after - not_before
    due = not_before + lifetime * (0.5 - rng.uniform(0.0, jitter))
    return max(due, now)


def _wall_clock() -> datetime:
    return datetime.now(UTC)


async def run_svid_rotation(
    current: X509Svid,
    issue: Callable[[], Awaitable[X509Svid]],
    on_new: Callable[[X509Svid], None],
    *,
    rng: random.Random,
    clock: Callable[[], datetime] = _wall_clock,
    jitter: float = DEFAULT_JITTER,
    retry: timedelta = DEFAULT_RETRY,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Renew ``current`` forever: sleep until :func:`renewal_due`, ``await issue()``, hand the
    new SVID to ``on_new`` (which swaps contexts, e.g. ``TlsCredentials.update``), repeat.

    Never returns; cancel the owning nursery to stop. ``clock`` gives wall time (certificate
    time); sleeping uses trio's clock, so tests drive both with ``MockClock``. A failed issue
    (:class:`FederationError` or ``OSError``) is logged and retried after ``retry``.
    """
    task_status.started()
    svid = current
    while True:
        now = clock()
        due = renewal_due(svid.not_before, svid.not_after, now, rng, jitter)
        await trio.sleep_until(trio.current_time() + (due - now).total_seconds())
        try:
            svid = await issue()
        except (FederationError, OSError) as err:
            log.warning("SVID renewal for %s failed, retrying: %s", svid.spiffe_id, err)
            await trio.sleep(retry.total_seconds())
            continue
        on_new(svid)
