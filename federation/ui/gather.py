"""Reads what the dashboard shows from the store and the service (the I/O half of the view).

:class:`DashboardSource` borrows a :class:`~federation.service.core.FederationService` (and
through it the store); it owns only a small window of recent events, fetched incrementally so a
long-running federation never re-reads its whole timeline.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from pydantic import ValidationError

from federation.model.api import HealthReport
from federation.service.core import FederationService
from federation.store import EventRecord
from federation.ui.state import EVENTS_LIMIT, HISTORY_LIMIT, StateInputs, build_state

#: Events fetched per store call, and calls per refresh (bounded work per document).
_PAGE = 500
_MAX_PAGES = 20


class DashboardSource:
    """Builds dashboard documents; safe to share between requests of one app."""

    def __init__(self, service: FederationService) -> None:
        self.service = service
        self._events: deque[EventRecord] = deque(maxlen=EVENTS_LIMIT)
        self._last_event_id = 0

    async def _refresh_events(self) -> None:
        for _ in range(_MAX_PAGES):
            page = await self.service.store.list_events(self._last_event_id, _PAGE)
            self._events.extend(page)
            if page:
                self._last_event_id = max(self._last_event_id, page[-1].id)
            if len(page) < _PAGE:
                return

    async def inputs(self) -> StateInputs:
        """Everything :func:`~federation.ui.state.build_state` needs, read now."""
        store = self.service.store
        status = await self.service.status()
        clusters = await store.list_clusters()
        reports = {}
        for record in await store.list_reports():
            try:
                reports[record.cluster] = HealthReport.model_validate_json(record.report)
            except ValidationError:
                continue  # a report the model no longer accepts: show the cluster without it
        snapshots = {}
        for cluster in clusters:
            served = self.service.publisher.current(cluster.name)
            if served is not None:
                snapshots[cluster.name] = served.body.decode()
        history = {
            bundle.trust_domain: await store.bundle_history(bundle.trust_domain, HISTORY_LIMIT)
            for bundle in await store.list_bundles()
        }
        await self._refresh_events()
        return StateInputs(
            now=self.service.clock(),
            status=status,
            clusters=clusters,
            reports=reports,
            snapshots=snapshots,
            decisions=await store.list_decisions(),
            bundle_history=history,
            events=tuple(self._events),
        )

    async def state(self) -> dict[str, Any]:
        """The dashboard document (see :func:`~federation.ui.state.build_state`)."""
        return build_state(await self.inputs())
