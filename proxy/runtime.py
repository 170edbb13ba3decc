"""Process-wide tuning for a proxy worker (call once, after start-up)."""

from __future__ import annotations

import gc

DEFAULT_GEN0_THRESHOLD = 50_000


def tune_gc(gen0_threshold: int = DEFAULT_GEN0_THRESHOLD) -> None:
    """Collect once, ``gc.freeze()`` what start-up built (imports, tables, contexts: never
    rescanned again), and raise the youngest generation's threshold (700 by default).

    A proxied request allocates hundreds of short-lived containers that reference counting
    frees; at the default threshold the cyclic collector still ran every request or two.
    Older generations keep their thresholds, so real cycles are still collected.
    """
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(max(gen0_threshold, 1), gen1, gen2)
