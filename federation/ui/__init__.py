"""The federation's live dashboard (``/ui``) and its JSON/SSE feeds.

Plain HTML, CSS and JavaScript shipped as package data (no build step, nothing fetched from
elsewhere: works offline). Mount with :func:`ui_routes`; the document it shows is built by
:func:`build_state`. See ``docs/observability.md`` ("Dashboard").
"""

from federation.ui.access import COOKIE_NAME, DashboardAccess
from federation.ui.events import ExternalEvent
from federation.ui.routes import ui_routes
from federation.ui.state import StateInputs, build_state, event_label

__all__ = [
    "COOKIE_NAME",
    "DashboardAccess",
    "ExternalEvent",
    "StateInputs",
    "build_state",
    "event_label",
    "ui_routes",
]
