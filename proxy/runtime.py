"""Process-wide tuning for a proxy worker (call once, after start-up)."""

from __future__ import annotations

import gc

# A young collection's pause grows with the threshold: at 50,000 a gateway whose requests
# left reference cycles paused 15-25 ms every ~3,000 requests (two-hop p99 20-22 ms at 2,000
# req/s); at 5,000, 7 ms, for the same CPU (bench/_tail.py --rt --mode pair, docs/benchmarks.md).
DEFAULT_GEN0_THRESHOLD = 5_000


def tune_gc(gen0_threshold: int = DEFAULT_GEN0_THRESHOLD) -> None:
    """Collect once, ``gc.freeze()`` what start-up built (imports, tables, contexts: never
    rescanned again), and raise the youngest generation's threshold (700 by default).

    A proxied request allocates hundreds of short-lived containers that reference counting
    frees; at the default threshold the cyclic collector still ran every request or two.
    The threshold counts allocations net of deallocations, so without reference cycles a
    collection is rare at any threshold; with cycles (an error path, a closed connection)
    a lower one collects less at a time: shorter pauses. Older generations keep their
    thresholds, so real cycles are still collected.
    """
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(max(gen0_threshold, 1), gen1, gen2)
