"""The record writer: events become one coalesced write at a time, the end is durable, a
flush stores what was there when it began, a refused write stops the run, and a resumed
record keeps its phase timings."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from core_support import happened, until

from orchestrator_core.events import CritiqueWritten, ProposalGenerated, ProposalRevised, RankingReady
from orchestrator_core.models import (
    Critique,
    DeliberationOutcome,
    Proposal,
    RankedProposal,
    Selection,
    Task,
    TokenUsage,
)
from orchestrator_core.records import DeliberationRecord, RecordStatus, SQLiteStore
from orchestrator_core.records.model import PhaseTiming
from orchestrator_core.records.writer import RecordLost, RecordWriter


class GatedStore(SQLiteStore):
    """A test double around the real SQLite store: the first progress write waits for ``gate``."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()
        self.progress_writes: list[int] = []

    async def update(self, record: DeliberationRecord) -> None:
        if not record.status.finished:
            self.progress_writes.append(len(record.proposals))
            self.entered.set()
            await self.gate.wait()
        await super().update(record)


def proposal(n: int) -> Proposal:
    return Proposal(f"dev-{n}-v0", f"dev-{n}", "DEV", f"proposal {n}")


async def test_a_burst_of_events_costs_one_write_and_the_end_is_durable(tmp_path: Path) -> None:
    store = GatedStore(tmp_path / "records.sqlite3")
    await store.open()
    record = DeliberationRecord("d1", "deliberate", "DEV", Task("DEV", "x"), RecordStatus.RUNNING, time.time())
    await store.create(record)
    forwarded: list[object] = []
    writer = RecordWriter(store, record, forwarded.append)
    writer.start()

    writer.observe(ProposalGenerated(proposal(1)))
    await happened(store.entered, "the first progress write began")  # in flight, held at the gate
    for n in range(2, 11):
        writer.observe(ProposalGenerated(proposal(n)))
    store.gate.set()
    await until(lambda: len(store.progress_writes) >= 2, "the latest state was written once more")
    final = await writer.finish(RecordStatus.SUCCEEDED)
    await store.close()

    assert store.progress_writes == [1, 10]  # nine events while a write was in flight: one more write
    assert len(forwarded) == 10
    reopened = SQLiteStore(tmp_path / "records.sqlite3")
    await reopened.open()
    try:
        assert await reopened.get("d1") == final
    finally:
        await reopened.close()
    assert final.status is RecordStatus.SUCCEEDED
    assert [p.author_id for p in final.proposals] == [f"dev-{n}" for n in range(1, 11)]
    assert [(p.phase, p.round) for p in final.phases] == [("generate", 0)]


async def test_the_outcome_is_recorded_once_from_the_ranking_event(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "records.sqlite3")
    await store.open()
    record = DeliberationRecord("d1", "orchestrate", "DEV", Task("DEV", "x"), RecordStatus.RUNNING, time.time())
    await store.create(record)
    ranked = RankedProposal(proposal(1), (), score=1.0, rank=1, viable=True)
    outcome = DeliberationOutcome("d1", Task("DEV", "x"), (ranked,), (), TokenUsage(3, 2), 0.5, 0)
    selection = Selection(ranked, (ranked,), "the only one", "score", TokenUsage(1, 1))
    writer = RecordWriter(store, record)
    writer.start()

    writer.observe(RankingReady(outcome))
    final = await writer.finish(RecordStatus.SUCCEEDED, usage=TokenUsage(4, 3), selection=selection)
    try:
        assert await store.get("d1") == final
    finally:
        await store.close()

    assert (final.outcome, final.selection, final.usage) == (outcome, selection, TokenUsage(4, 3))


async def test_the_outcome_is_read_without_building_the_record(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "records.sqlite3")
    record = DeliberationRecord("d1", "deliberate", "DEV", Task("DEV", "x"), RecordStatus.RUNNING, time.time())
    ranked = RankedProposal(proposal(1), (), score=1.0, rank=1, viable=True)
    outcome = DeliberationOutcome("d1", Task("DEV", "x"), (ranked,), (), TokenUsage(3, 2), 0.5, 0)
    writer = RecordWriter(store, record)
    assert writer.outcome is None

    writer.observe(RankingReady(outcome))
    assert writer.outcome == outcome
    assert writer.record.outcome == outcome  # built now
    assert writer.outcome == outcome


def test_finishing_a_record_changes_what_is_given_and_keeps_the_rest() -> None:
    record = DeliberationRecord(
        "d1", "deliberate", "DEV", Task("DEV", "x"), RecordStatus.RUNNING, 10.0, usage=TokenUsage(5, 5)
    )
    failed = record.finished(RecordStatus.FAILED, 20.0, error="down", error_kind="QuorumLost")
    assert (failed.status, failed.finished_at, failed.updated_at) == (RecordStatus.FAILED, 20.0, 20.0)
    assert (failed.error, failed.error_kind, failed.usage, failed.selection) == (
        "down", "QuorumLost", TokenUsage(5, 5), None)
    assert record.finished(RecordStatus.CANCELLED, 20.0, usage=TokenUsage(7, 1)).usage == TokenUsage(7, 1)


async def test_flush_waits_for_the_write_in_flight_then_stores_what_came_after(tmp_path: Path) -> None:
    store = GatedStore(tmp_path / "records.sqlite3")
    await store.open()
    record = DeliberationRecord("d1", "deliberate", "DEV", Task("DEV", "x"), RecordStatus.RUNNING, time.time())
    await store.create(record)
    written: list[int] = []
    writer = RecordWriter(store, record, on_write=lambda r: written.append(len(r.proposals)))
    writer.start()

    writer.observe(ProposalGenerated(proposal(1)))
    await happened(store.entered, "the first progress write began")  # in flight, held at the gate
    writer.observe(ProposalGenerated(proposal(2)))
    flushed = asyncio.create_task(writer.flush())
    writer.observe(ProposalGenerated(proposal(3)))  # the next write takes it too
    store.gate.set()
    await flushed
    stored = await store.get("d1")
    final = await writer.finish(RecordStatus.SUCCEEDED)
    await store.close()

    assert stored is not None
    assert [p.author_id for p in stored.proposals] == ["dev-1", "dev-2", "dev-3"]
    assert store.progress_writes == [1, 3]  # one write after the one in flight, of all there was
    assert written == [1, 3, 3]  # each accepted write, the finished one included
    assert final.status is RecordStatus.SUCCEEDED


async def test_flush_with_nothing_new_writes_nothing(tmp_path: Path) -> None:
    store = GatedStore(tmp_path / "records.sqlite3")
    await store.open()
    record = DeliberationRecord("d1", "deliberate", "DEV", Task("DEV", "x"), RecordStatus.RUNNING, time.time())
    await store.create(record)
    store.gate.set()
    writer = RecordWriter(store, record)  # not started: flush writes by itself
    await writer.flush()
    writer.observe(ProposalGenerated(proposal(1)))
    await writer.flush()
    await writer.flush()
    stored = await store.get("d1")
    await store.close()
    assert store.progress_writes == [1]
    assert stored is not None
    assert stored.proposals == (proposal(1),)


class RefusingStore(SQLiteStore):
    """The real store, refusing every write (another worker took the record over)."""

    async def update(self, record: DeliberationRecord) -> bool:
        return False


async def test_a_refused_write_sets_lost_and_flush_raises(tmp_path: Path) -> None:
    store = RefusingStore(tmp_path / "records.sqlite3")
    await store.open()
    record = DeliberationRecord("d1", "deliberate", "DEV", Task("DEV", "x"), RecordStatus.RUNNING, time.time())
    await store.create(record)
    written: list[DeliberationRecord] = []
    writer = RecordWriter(store, record, on_write=written.append)
    writer.start()
    writer.observe(ProposalGenerated(proposal(1)))
    try:
        with pytest.raises(RecordLost):
            await writer.flush()
        assert writer.lost.is_set()
        with pytest.raises(RecordLost):
            await writer.flush()  # nothing new, still lost
        await writer.finish(RecordStatus.CANCELLED)
    finally:
        await store.close()
    assert written == []


def timing(phase: str, round_number: int, started: float, finished: float) -> PhaseTiming:
    return PhaseTiming(phase, round_number, started, finished)


async def test_a_resumed_record_keeps_its_phases_and_goes_on_with_the_one_it_was_in(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "records.sqlite3")
    await store.open()
    earlier = (timing("generate", 0, 100.0, 110.0), timing("critique", 1, 110.0, 115.0))
    record = DeliberationRecord(
        "d1", "deliberate", "DEV", Task("DEV", "x"), RecordStatus.RUNNING, 100.0, phases=earlier
    )
    await store.create(record)
    resumed_at = time.time()
    writer = RecordWriter(store, record)
    writer.start()
    writer.observe(CritiqueWritten(Critique("dev-2", "dev-3-v0", "dev-3", "hm", 1)))  # critique 1 goes on
    writer.observe(ProposalRevised(Proposal("dev-3-v1", "dev-3", "DEV", "better", 1)))
    final = await writer.finish(RecordStatus.SUCCEEDED)
    await store.close()

    generate, critique, revise = final.phases
    assert generate == earlier[0]
    assert (critique.phase, critique.round, critique.started_at) == ("critique", 1, 110.0)
    assert critique.finished_at >= resumed_at
    assert (revise.phase, revise.round) == ("revise", 1)
    assert critique.finished_at <= revise.started_at <= revise.finished_at


async def test_a_resumed_record_starts_its_next_phase_when_the_resumed_run_does(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "records.sqlite3")
    await store.open()
    earlier = (timing("generate", 0, 100.0, 110.0),)
    record = DeliberationRecord(
        "d1", "deliberate", "DEV", Task("DEV", "x"), RecordStatus.RUNNING, 100.0, phases=earlier
    )
    await store.create(record)
    resumed_at = time.time()
    writer = RecordWriter(store, record)
    writer.start()
    writer.observe(CritiqueWritten(Critique("dev-2", "dev-3-v0", "dev-3", "hm", 1)))
    final = await writer.finish(RecordStatus.SUCCEEDED)
    await store.close()

    generate, critique = final.phases
    assert generate == earlier[0]
    assert (critique.phase, critique.round) == ("critique", 1)
    assert critique.started_at >= resumed_at


class FlakyStore(SQLiteStore):
    """The real store, whose progress writes fail while ``down`` (the database unreachable)."""

    down = True

    async def update(self, record: DeliberationRecord) -> bool:
        if self.down and not record.status.finished:
            raise OSError("connection refused")
        return bool(await super().update(record) is not False)


async def test_a_flush_whose_write_fails_lets_the_run_go_on_and_the_next_write_stores_it_all(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FlakyStore(tmp_path / "records.sqlite3")
    await store.open()
    record = DeliberationRecord("d1", "deliberate", "DEV", Task("DEV", "x"), RecordStatus.RUNNING, time.time())
    await store.create(record)
    writer = RecordWriter(store, record)
    writer.observe(ProposalGenerated(proposal(1)))
    await writer.flush()  # logged, not raised: the database may come back
    store.down = False
    writer.observe(ProposalGenerated(proposal(2)))
    await writer.flush()
    stored = await store.get("d1")
    await store.close()
    assert "could not write the progress of deliberation d1: connection refused" in caplog.text
    assert not writer.lost.is_set()
    assert stored is not None
    assert stored.proposals == (proposal(1), proposal(2))
