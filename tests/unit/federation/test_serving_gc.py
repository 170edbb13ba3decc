"""A serving process makes full garbage collections rare (they froze the event loop for up to
a second at a time with 1,000 gateways connected)."""

from __future__ import annotations

import gc

from federation.service.server import SERVING_GC_THRESHOLDS, tune_gc_for_serving


def test_young_collections_are_rare_in_a_serving_process() -> None:
    before = gc.get_threshold()
    try:
        tune_gc_for_serving()
        assert gc.get_threshold() == SERVING_GC_THRESHOLDS
        assert gc.isenabled()  # cyclic garbage is still collected
    finally:
        gc.set_threshold(*before)
