"""Public wire models are importable from ``federation.model`` itself."""

from __future__ import annotations

import federation.model
from federation.model import LinkStats
from federation.model.api import LinkStats as ApiLinkStats


def test_link_stats_is_re_exported() -> None:
    assert LinkStats is ApiLinkStats
    assert "LinkStats" in federation.model.__all__
