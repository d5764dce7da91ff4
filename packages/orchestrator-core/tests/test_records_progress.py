"""Progress writes of a direct run are spaced by an interval: a deliberation that ends within
it writes its record twice (created, finished), a longer one about once per interval; an
explicit flush and the finished record are never held back."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

import pytest
from core_support import HANG_GUARD, WatchedStore, cancelled, until

from orchestrator_core import orchestrator as orchestrator_module
from orchestrator_core.events import ProposalGenerated
from orchestrator_core.models import Phase, Proposal, Task
from orchestrator_core.orchestrator import DeliberationRequest
from orchestrator_core.records import DeliberationRecord, RecordStatus, SQLiteStore
from orchestrator_core.records.store import DeliberationStore
from orchestrator_core.records.writer import RecordWriter
from orchestrator_core.testing import ScriptedBackend


class CountedWrites(WatchedStore):
    """The real store, noting when each progress write began (the loop's clock) and how many
    creations and final writes it was asked for."""

    def __init__(self, store: DeliberationStore) -> None:
        super().__init__(store)
        self.creates = 0
        self.progress_at: list[float] = []
        self.finals = 0
        self.progress_stored = 0

    async def create(self, record: DeliberationRecord) -> DeliberationRecord | None:
        self.creates += 1
        created: DeliberationRecord | None = await self._store.create(record)
        return created

    async def update(self, record: DeliberationRecord) -> bool:
        if record.status.finished:
            self.finals += 1
        else:
            self.progress_at.append(asyncio.get_running_loop().time())
        written = await super().update(record)
        self.progress_stored += not record.status.finished
        return written


def proposal(n: int) -> Proposal:
    return Proposal(f"dev-{n}-v0", f"dev-{n}", "DEV", f"proposal {n}")


async def opened(path: Path) -> tuple[CountedWrites, DeliberationRecord]:
    store = SQLiteStore(path)
    await store.open()
    record = DeliberationRecord("d1", "deliberate", "DEV", Task("DEV", "x"), RecordStatus.RUNNING, time.time())
    await store.create(record)
    return CountedWrites(store), record


async def test_a_deliberation_that_ends_within_the_interval_writes_its_record_twice(
    make_orchestrator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(orchestrator_module, "PROGRESS_INTERVAL_SECONDS", 3600.0)  # however slow the machine
    orchestrator = await make_orchestrator()
    counted = CountedWrites(orchestrator.store)
    orchestrator.store = counted

    outcome = await orchestrator.deliberate(DeliberationRequest(Task("DEV", "Write fizzbuzz"), rounds=1))

    assert (counted.creates, counted.progress_at, counted.finals) == (1, [], 1)
    record = await orchestrator.get_record(outcome.deliberation_id)
    assert record.status is RecordStatus.SUCCEEDED
    assert len(record.proposals) == 6  # 3 proposals and their revisions: all of it, from the final write
    assert [(p.phase, p.round) for p in record.phases] == [
        ("generate", 0),
        ("critique", 1),
        ("revise", 1),
        ("check", 0),
    ]


async def test_a_longer_run_writes_its_progress_at_most_once_per_interval(tmp_path: Path) -> None:
    store, record = await opened(tmp_path / "records.sqlite3")
    interval = 0.05
    writer = RecordWriter(store, record, progress_interval=interval)
    started = asyncio.get_running_loop().time()
    writer.start()
    n = 0
    while len(store.progress_at) < 3:  # events keep coming, a millisecond apart
        n += 1
        writer.observe(ProposalGenerated(proposal(n)))
        await asyncio.sleep(0.001)
        assert asyncio.get_running_loop().time() - started < HANG_GUARD, "no progress was written"
    stored = await store.get("d1")
    final = await writer.finish(RecordStatus.SUCCEEDED)
    await store.close()

    moments = [started, *store.progress_at]
    assert all(later - earlier >= interval for earlier, later in itertools.pairwise(moments))
    assert n > 3 * 5  # many events, three writes
    assert stored is not None
    assert 0 < len(stored.proposals) <= n
    assert len(final.proposals) == n


async def test_a_flush_and_the_finished_record_are_not_held_back(tmp_path: Path) -> None:
    store, record = await opened(tmp_path / "records.sqlite3")
    writer = RecordWriter(store, record, progress_interval=3600)
    writer.start()
    async with asyncio.timeout(HANG_GUARD):  # a held-back write would wait an hour
        writer.observe(ProposalGenerated(proposal(1)))
        await writer.flush()
        flushed = await store.get("d1")
        writer.observe(ProposalGenerated(proposal(2)))
        await asyncio.sleep(0.01)  # the background task is waiting out its interval now
        final = await writer.finish(RecordStatus.SUCCEEDED)
    stored = await store.get("d1")
    await store.close()

    assert flushed is not None
    assert flushed.proposals == (proposal(1),)
    assert (len(store.progress_at), store.finals) == (1, 1)  # the flush's write, then the final one
    assert stored == final
    assert final.proposals == (proposal(1), proposal(2))


async def test_a_running_record_shows_the_run_within_the_interval(make_orchestrator: Any) -> None:
    """Agents that never finish their revisions: the record read while the run waits holds
    the proposals and critiques made before, written by the spaced progress writes."""
    orchestrator = await make_orchestrator(ScriptedBackend(defaults={"hang_in": frozenset({Phase.REVISE})}))
    counted = CountedWrites(orchestrator.store)
    orchestrator.store = counted
    run = asyncio.create_task(orchestrator.deliberate(DeliberationRequest(Task("DEV", "Write fizzbuzz"), rounds=1)))
    await until(lambda: counted.progress_stored > 0, "a progress write while the deliberation ran")
    page = await orchestrator.list_records(status=RecordStatus.RUNNING)
    (running,) = page.records
    await cancelled(run)
    record = await orchestrator.get_record(running.deliberation_id)

    assert (len(running.proposals), len(running.critiques)) == (3, 3)
    assert record.status is RecordStatus.CANCELLED
