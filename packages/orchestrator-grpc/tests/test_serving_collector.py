"""A serving process's garbage collector: what startup made is frozen out of collections, and
the youngest generation is collected every ALLOCATIONS_PER_COLLECTION allocations."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from orchestrator_grpc.server import ALLOCATIONS_PER_COLLECTION, collect_for_serving


@pytest.fixture
def restored_collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_collector")
def test_serving_freezes_what_startup_made_and_collects_less_often() -> None:
    gc.unfreeze()
    made_at_startup: list[object] = [object()]
    assert any(tracked is made_at_startup for tracked in gc.get_objects())
    collect_for_serving()
    assert gc.get_freeze_count() > 0
    assert not any(tracked is made_at_startup for tracked in gc.get_objects())  # frozen: no collection walks it
    assert gc.get_threshold() == (ALLOCATIONS_PER_COLLECTION, 20, 10)


@pytest.mark.usefixtures("restored_collector")
def test_garbage_in_a_cycle_is_still_collected() -> None:
    collect_for_serving()

    class Node:
        def __init__(self) -> None:
            self.other: Node | None = None

    first, second = Node(), Node()
    first.other, second.other = second, first
    del first, second
    assert gc.collect() >= 2
