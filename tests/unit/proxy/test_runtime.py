"""tune_gc: start-up objects are frozen and young collections become rare."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from proxy import tune_gc


@pytest.fixture
def restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restore_gc")
def test_tune_gc_freezes_start_up_objects_and_raises_only_the_young_threshold() -> None:
    _, gen1, gen2 = gc.get_threshold()
    tune_gc(10_000)
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (10_000, gen1, gen2)
