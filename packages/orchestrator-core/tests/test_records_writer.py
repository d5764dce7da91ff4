"""The record writer: events become one coalesced write at a time, and the end is durable."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from core_support import happened, until

from orchestrator_core.events import ProposalGenerated, RankingReady
from orchestrator_core.models import DeliberationOutcome, Proposal, RankedProposal, Selection, Task, TokenUsage
from orchestrator_core.records import DeliberationRecord, RecordStatus, SQLiteStore
from orchestrator_core.records.writer import RecordWriter


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


def test_finishing_a_record_changes_what_is_given_and_keeps_the_rest() -> None:
    record = DeliberationRecord(
        "d1", "deliberate", "DEV", Task("DEV", "x"), RecordStatus.RUNNING, 10.0, usage=TokenUsage(5, 5)
    )
    failed = record.finished(RecordStatus.FAILED, 20.0, error="down", error_kind="QuorumLost")
    assert (failed.status, failed.finished_at, failed.updated_at) == (RecordStatus.FAILED, 20.0, 20.0)
    assert (failed.error, failed.error_kind, failed.usage, failed.selection) == (
        "down", "QuorumLost", TokenUsage(5, 5), None)
    assert record.finished(RecordStatus.CANCELLED, 20.0, usage=TokenUsage(7, 1)).usage == TokenUsage(7, 1)
