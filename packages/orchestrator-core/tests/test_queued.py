"""Queued deliberations in one process and across two sharing PostgreSQL: submit returns at
once, a consumer runs the record, watch replays and follows it, cancel stops it, and a worker
that lost its record stops writing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from core_support import HANG_GUARD, MakeOrchestrator, started_orchestrators, until
from queued_support import (
    ScriptedDelivery,
    consuming,
    record_when,
    replay,
    request,
    stop,
    watched,
)

from orchestrator_core.errors import (
    AlreadyFinished,
    InvalidRequest,
    NoCouncil,
    NotFound,
)
from orchestrator_core.events import DeliberationFinished, RankingReady
from orchestrator_core.models import Phase, Task
from orchestrator_core.orchestrator import DeliberationRequest
from orchestrator_core.records import RecordStatus
from orchestrator_core.testing import ScriptedBackend, ScriptedCheck


@pytest.fixture
async def make_shared(postgres_schema_url: str) -> AsyncIterator[MakeOrchestrator]:
    """Started orchestrators sharing one PostgreSQL database (replicas)."""
    async with started_orchestrators(lambda n: {"database_url": postgres_schema_url}) as make:
        yield make


async def test_submit_returns_a_queued_record_at_once(make_orchestrator: MakeOrchestrator) -> None:
    backend = ScriptedBackend()
    orchestrator = await make_orchestrator(backend)
    record = await orchestrator.submit(request(rounds=1), timeout=60)
    assert (record.status, record.kind, record.queued) == (RecordStatus.QUEUED, "deliberate", True)
    assert not record.status.finished
    assert record.deadline_at == record.created_at + 60
    assert [seat.agent_id for seat in record.council] == ["dev-1", "dev-2", "dev-3"]
    assert all(agent.calls == [] for agent in backend.created)  # nothing ran
    stored = await orchestrator.get_record(record.deliberation_id)
    assert (stored.status, stored.deadline_at) == (RecordStatus.QUEUED, record.deadline_at)
    status = await orchestrator.status_with_queue()
    assert (status.queue.pending, status.queue.in_flight) == (1, 0)


async def test_submit_validates_as_deliberate_does(make_orchestrator: MakeOrchestrator) -> None:
    orchestrator = await make_orchestrator()
    with pytest.raises(InvalidRequest, match="task is required"):
        await orchestrator.submit(request(""))
    with pytest.raises(NoCouncil):
        await orchestrator.submit(DeliberationRequest(Task(role="QA", description="x")))
    with pytest.raises(InvalidRequest, match="top_k must not be negative"):
        await orchestrator.submit(request(), top_k=-1)
    assert (await orchestrator.status_with_queue()).queue.pending == 0


async def test_a_consumer_runs_it_to_the_outcome_deliberate_gives(make_orchestrator: MakeOrchestrator) -> None:
    check = ScriptedCheck(score_of=lambda p: 0.9 if p.author_id == "dev-2" else 0.3)
    orchestrator = await make_orchestrator(None, check)
    direct = await orchestrator.deliberate(request(rounds=1))
    submitted = await orchestrator.submit(request(rounds=1))
    consumer = await consuming(orchestrator)
    try:
        events = await watched(orchestrator, submitted.deliberation_id)
    finally:
        await stop(consumer)
    record = await orchestrator.get_record(submitted.deliberation_id)
    assert (record.status, record.owner, record.error) == (RecordStatus.SUCCEEDED, orchestrator.owner, "")
    assert record.outcome is not None
    shape = [(r.proposal.author_id, r.proposal.content, r.rank, r.score) for r in record.outcome.results]
    assert shape == [(r.proposal.author_id, r.proposal.content, r.rank, r.score) for r in direct.results]
    assert record.outcome.rounds == direct.rounds == 1
    assert events == replay(record)
    assert events[-2] == (len(events) - 1, RankingReady(record.outcome))
    assert events[-1] == (len(events), DeliberationFinished("succeeded"))


async def test_an_orchestration_is_queued_with_the_settings_top_k(make_orchestrator: MakeOrchestrator) -> None:
    orchestrator = await make_orchestrator(ScriptedBackend(defaults={"choice": 2}), ScriptedCheck())
    submitted = await orchestrator.submit(request(), top_k=0)
    assert (submitted.kind, submitted.top_k) == ("orchestrate", orchestrator.settings.selection_top_k)
    consumer = await consuming(orchestrator)
    try:
        await watched(orchestrator, submitted.deliberation_id)
    finally:
        await stop(consumer)
    record = await orchestrator.get_record(submitted.deliberation_id)
    assert record.status is RecordStatus.SUCCEEDED
    assert record.selection is not None
    assert record.outcome is not None
    assert (record.selection.selected_by, record.selection.winner) == ("architect-1", record.outcome.results[1])


async def test_watch_live_from_the_start_and_from_a_resume_point(make_orchestrator: MakeOrchestrator) -> None:
    orchestrator = await make_orchestrator(None, ScriptedCheck())
    submitted = await orchestrator.submit(request(rounds=2))
    live = asyncio.get_running_loop().create_task(watched(orchestrator, submitted.deliberation_id))
    consumer = await consuming(orchestrator)
    try:
        followed = await live
    finally:
        await stop(consumer)
    record = await orchestrator.get_record(submitted.deliberation_id)
    assert followed == replay(record)
    assert await watched(orchestrator, submitted.deliberation_id) == followed
    assert await watched(orchestrator, submitted.deliberation_id, after=5) == followed[5:]
    assert [n for n, _ in followed] == list(range(1, len(followed) + 1))
    with pytest.raises(NotFound):
        await watched(orchestrator, "0" * 32)


async def test_an_idempotent_submit_returns_the_first_record(make_orchestrator: MakeOrchestrator) -> None:
    orchestrator = await make_orchestrator(None, ScriptedCheck())
    first = await orchestrator.submit(request(request_id="job-1"))
    again = await orchestrator.submit(request(request_id="job-1"))
    assert again.deliberation_id == first.deliberation_id
    assert (await orchestrator.status_with_queue()).queue.pending == 1  # queued once
    with pytest.raises(InvalidRequest, match="already used for a different request"):
        await orchestrator.submit(request("Write fizzbuzz in Rust", request_id="job-1"))
    consumer = await consuming(orchestrator)
    try:
        # a direct call with the same request_id waits for the queued one and answers with it
        outcome = await asyncio.wait_for(orchestrator.deliberate(request(request_id="job-1")), HANG_GUARD)
    finally:
        await stop(consumer)
    assert outcome.deliberation_id == first.deliberation_id


async def test_cancelling_a_queued_record_ends_it_before_any_worker_runs_it(
    make_orchestrator: MakeOrchestrator,
) -> None:
    backend = ScriptedBackend()
    orchestrator = await make_orchestrator(backend)
    submitted = await orchestrator.submit(request())
    cancelled = await orchestrator.cancel(submitted.deliberation_id)
    assert (cancelled.status, cancelled.error_kind) == (RecordStatus.CANCELLED, "Cancelled")
    assert cancelled.finished_at is not None
    delivery = ScriptedDelivery(submitted.deliberation_id)
    await orchestrator.run_queued(delivery)
    assert delivery.acked
    assert all(agent.calls == [] for agent in backend.created)
    with pytest.raises(AlreadyFinished, match="already cancelled"):
        await orchestrator.cancel(submitted.deliberation_id)
    with pytest.raises(NotFound):
        await orchestrator.cancel("0" * 32)
    assert (await watched(orchestrator, submitted.deliberation_id))[-1] == (
        1, DeliberationFinished("cancelled", "cancelled", "Cancelled"),
    )


async def test_cancelling_a_running_record_stops_its_run(make_orchestrator: MakeOrchestrator) -> None:
    backend = ScriptedBackend(defaults={"hang_in": frozenset({Phase.GENERATE})})
    orchestrator = await make_orchestrator(backend)
    submitted = await orchestrator.submit(request())
    delivery = ScriptedDelivery(submitted.deliberation_id)
    run = asyncio.get_running_loop().create_task(orchestrator.run_queued(delivery))
    await until(lambda: sum(1 for a in backend.created if a.calls) == 3, "agents called")
    record = await orchestrator.cancel(submitted.deliberation_id)
    assert (record.status, record.error_kind) == (RecordStatus.CANCELLED, "Cancelled")
    await asyncio.wait_for(run, HANG_GUARD)
    assert (delivery.acked, delivery.nakked) == (True, False)


async def test_a_cancel_from_another_replica_stops_the_run_and_its_watch_ends(
    make_shared: MakeOrchestrator,
) -> None:
    backend = ScriptedBackend(defaults={"hang_in": frozenset({Phase.GENERATE})})
    worker = await make_shared(backend)
    front = await make_shared(backend)
    submitted = await front.submit(request())
    delivery = ScriptedDelivery(submitted.deliberation_id)
    run = asyncio.get_running_loop().create_task(worker.run_queued(delivery))
    await record_when(front, submitted.deliberation_id, lambda r: r.status is RecordStatus.RUNNING, "taken")
    asked = await front.cancel(submitted.deliberation_id)
    assert asked.cancel_requested
    events = await watched(front, submitted.deliberation_id)
    assert events[-1][1] == DeliberationFinished("cancelled", "cancelled", "Cancelled")
    await asyncio.wait_for(run, HANG_GUARD)
    assert delivery.acked


async def test_a_replica_watches_what_another_submitted_and_ran(make_shared: MakeOrchestrator) -> None:
    worker = await make_shared(None, ScriptedCheck())
    watcher = await make_shared(None, ScriptedCheck())
    submitted = await worker.submit(request(rounds=1))
    follow = asyncio.get_running_loop().create_task(watched(watcher, submitted.deliberation_id))
    consumer = await consuming(worker)
    try:
        events = await follow
    finally:
        await stop(consumer)
    record = await watcher.get_record(submitted.deliberation_id)
    assert record.status is RecordStatus.SUCCEEDED
    assert events == replay(record)


