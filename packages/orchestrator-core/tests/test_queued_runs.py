"""Queued runs as a worker makes them: deliveries beyond max_deliver, a lost worker's record
taken over, hand-backs on shutdown and their resumption, deadlines spent in the queue, keep-alives,
and a submission the queue refused."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

import pytest
from core_support import HANG_GUARD, MakeOrchestrator, started_orchestrators, until
from queued_support import (
    ScriptedDelivery,
    consuming,
    record_when,
    request,
    stop,
    taken_run,
    watched,
)

from orchestrator_core.errors import (
    BackendRejected,
    BackendUnavailable,
    InvalidRequest,
    QuorumLost,
)
from orchestrator_core.events import DeliberationFinished
from orchestrator_core.local_queue import LocalQueue
from orchestrator_core.models import CallOutcome, Phase, TaskConstraints
from orchestrator_core.queued import WORKER_AGENT_ID
from orchestrator_core.record_events import events_of
from orchestrator_core.records import RecordStatus
from orchestrator_core.testing import ScriptedBackend, ScriptedCheck


async def test_an_attempt_beyond_max_deliver_fails_the_record(make_orchestrator: MakeOrchestrator) -> None:
    backend = ScriptedBackend()
    orchestrator = await make_orchestrator(backend, queue_max_deliver=3)
    submitted = await orchestrator.submit(request())
    delivery = ScriptedDelivery(submitted.deliberation_id, attempt=4)
    await orchestrator.run_queued(delivery)
    record = await orchestrator.get_record(submitted.deliberation_id)
    assert (record.status, record.error_kind) == (RecordStatus.FAILED, "WorkerLost")
    assert "ORCH_QUEUE_MAX_DELIVER (3)" in record.error
    assert delivery.acked
    assert all(agent.calls == [] for agent in backend.created)


async def test_a_redelivery_takes_over_a_lost_workers_record_and_says_so(
    make_orchestrator: MakeOrchestrator,
) -> None:
    orchestrator = await make_orchestrator(None, ScriptedCheck())
    submitted = await orchestrator.submit(request())
    assert await orchestrator.store.take(submitted.deliberation_id, "a-worker-that-died") is not None
    delivery = ScriptedDelivery(submitted.deliberation_id, attempt=2)
    await orchestrator.run_queued(delivery)
    record = await orchestrator.get_record(submitted.deliberation_id)
    assert (record.status, record.owner) == (RecordStatus.SUCCEEDED, orchestrator.owner)
    notes = [f for f in record.failures if f.agent_id == WORKER_AGENT_ID]
    assert len(notes) == 1
    assert "worker lost" in notes[0].error
    assert delivery.acked


async def test_a_worker_whose_record_was_taken_over_stops_and_writes_nothing(
    make_orchestrator: MakeOrchestrator,
) -> None:
    backend = ScriptedBackend(defaults={"hang_in": frozenset({Phase.GENERATE})})
    orchestrator = await make_orchestrator(backend)
    submitted, delivery, run = await taken_run(orchestrator)
    await until(lambda: sum(1 for a in backend.created if a.calls) == 3, "agents called")
    taken = await orchestrator.store.take(submitted.deliberation_id, "another-worker")
    assert taken is not None
    await asyncio.wait_for(run, HANG_GUARD)
    record = await orchestrator.get_record(submitted.deliberation_id)
    assert (record.status, record.owner, record.calls) == (RecordStatus.RUNNING, "another-worker", taken.calls)
    assert (delivery.acked, delivery.nakked) == (False, False)  # the message is the new worker's
    late = replace(record, owner=orchestrator.owner, error="written late")
    assert await orchestrator.store.update(late) is False
    assert (await orchestrator.get_record(submitted.deliberation_id)).error == ""


async def test_a_shutdown_hands_the_run_back_with_its_record_running(make_orchestrator: MakeOrchestrator) -> None:
    backend = ScriptedBackend(defaults={"hang_in": frozenset({Phase.GENERATE})})
    orchestrator = await make_orchestrator(backend)
    submitted, delivery, run = await taken_run(orchestrator)
    await stop(run)
    assert (delivery.acked, delivery.nakked) == (False, True)
    record = await orchestrator.get_record(submitted.deliberation_id)
    assert (record.status, record.finished_at, record.error) == (RecordStatus.RUNNING, None, "")


async def test_a_record_whose_deadline_passed_in_the_queue_fails(make_orchestrator: MakeOrchestrator) -> None:
    backend = ScriptedBackend()
    orchestrator = await make_orchestrator(backend)
    submitted = await orchestrator.submit(request(constraints=TaskConstraints(timeout_seconds=0.05)))
    while time.time() < submitted.deadline_at:  # the record waits in the queue past its deadline
        await asyncio.sleep(0.01)
    consumer = await consuming(orchestrator)
    try:
        events = await watched(orchestrator, submitted.deliberation_id)
    finally:
        await stop(consumer)
    assert events[-1][1] == DeliberationFinished("failed", "deadline exceeded", "DeadlineExceeded")
    assert all(agent.calls == [] for agent in backend.created)


async def test_queued_records_of_a_stopped_process_are_interrupted_without_a_durable_queue(
    tmp_path: Path,
) -> None:
    """The in-process queue dies with its process: the next one on the file interrupts what it
    left queued (nothing would ever run it), as it does with running records."""
    async with started_orchestrators(lambda n: {"database_path": tmp_path / "records.sqlite3"}) as make:
        first = await make()
        submitted = await first.submit(request())
        second = await make()  # one process owns a SQLite file: the first counts as stopped
        record = await second.get_record(submitted.deliberation_id)
        assert (record.status, record.error_kind) == (RecordStatus.INTERRUPTED, "Interrupted")


async def test_a_handed_back_run_resumes_without_repeating_a_completed_call(
    make_orchestrator: MakeOrchestrator,
) -> None:
    backend = ScriptedBackend(agents={0: {"hang_in": frozenset({Phase.CRITIQUE})}})
    orchestrator = await make_orchestrator(backend, ScriptedCheck())
    submitted = await orchestrator.submit(request(rounds=1))
    first = ScriptedDelivery(submitted.deliberation_id)
    run = asyncio.get_running_loop().create_task(orchestrator.run_queued(first))
    stored = await record_when(orchestrator, submitted.deliberation_id, lambda r: len(r.calls) == 5, "5 calls stored")
    assert [(c.agent_id, c.phase) for c in stored.calls[3:]] == [("dev-2", Phase.CRITIQUE), ("dev-3", Phase.CRITIQUE)]
    await stop(run)  # this process stops: the delivery goes back
    assert first.nakked
    backend.agents = {}  # the next worker's agent dev-1 answers
    resumed = len(backend.created)
    second = ScriptedDelivery(submitted.deliberation_id, attempt=2)
    await asyncio.wait_for(orchestrator.run_queued(second), HANG_GUARD)
    assert second.acked
    assert [a.calls for a in backend.created[resumed:]] == [
        [Phase.CRITIQUE, Phase.REVISE], [Phase.REVISE], [Phase.REVISE],
    ]
    record = await orchestrator.get_record(submitted.deliberation_id)
    assert record.status is RecordStatus.SUCCEEDED
    assert [f.agent_id for f in record.failures] == [WORKER_AGENT_ID]
    assert "worker stopped" in record.failures[0].error  # handed back, not lost
    assert not record.handed_back
    # The call the hand-back cut short is not kept: the record holds the nine an
    # uninterrupted run makes, each once, all completed.
    assert sorted((c.agent_id, c.phase, c.round) for c in record.calls) == sorted(
        (f"dev-{i}", phase, number)
        for i in (1, 2, 3)
        for phase, number in ((Phase.GENERATE, 0), (Phase.CRITIQUE, 1), (Phase.REVISE, 1))
    )
    assert all(c.outcome is CallOutcome.OK for c in record.calls)
    kinds = [type(e).__name__ for e in events_of(record)]
    assert kinds == ["ProposalGenerated"] * 3 + ["CritiqueWritten"] * 3 + ["ProposalRevised"] * 3 + [
        "CheckCompleted"
    ] * 3 + ["RankingReady"]


async def test_closing_hands_back_the_runs_still_going(make_orchestrator: MakeOrchestrator) -> None:
    backend = ScriptedBackend(defaults={"hang_in": frozenset({Phase.GENERATE})})
    orchestrator = await make_orchestrator(backend)
    submitted, delivery, run = await taken_run(orchestrator)
    await asyncio.wait_for(orchestrator.queued.hand_back_all(), HANG_GUARD)  # what close() does after its wait
    await asyncio.wait_for(run, HANG_GUARD)
    assert (delivery.acked, delivery.nakked) == (False, True)
    record = await orchestrator.get_record(submitted.deliberation_id)
    assert (record.status, record.owner, record.error) == (RecordStatus.RUNNING, orchestrator.owner, "")
    assert orchestrator.statistics.in_flight == 0


async def test_a_deliberation_run_by_its_own_call_is_cancelled_by_that_call_only(
    make_orchestrator: MakeOrchestrator,
) -> None:
    backend = ScriptedBackend(defaults={"hang_in": frozenset({Phase.GENERATE})})
    orchestrator = await make_orchestrator(backend)
    call = asyncio.get_running_loop().create_task(orchestrator.deliberate(request()))
    await until(lambda: sum(1 for a in backend.created if a.calls) == 3, "agents called")
    page = await orchestrator.list_records()
    with pytest.raises(InvalidRequest, match="cancel that call instead"):
        await orchestrator.cancel(page.records[0].deliberation_id)
    record = await orchestrator.get_record(page.records[0].deliberation_id)
    assert (record.status, record.cancel_requested) == (RecordStatus.RUNNING, False)
    await stop(call)


async def test_a_delivery_of_a_run_this_process_holds_waits_for_it_and_runs_nothing(
    make_orchestrator: MakeOrchestrator,
) -> None:
    backend = ScriptedBackend(defaults={"hang_in": frozenset({Phase.GENERATE})})
    orchestrator = await make_orchestrator(backend)
    submitted = await orchestrator.submit(request())
    first, again = ScriptedDelivery(submitted.deliberation_id), ScriptedDelivery(submitted.deliberation_id, attempt=2)
    loop = asyncio.get_running_loop()
    runs = [loop.create_task(orchestrator.run_queued(first)), loop.create_task(orchestrator.run_queued(again))]
    await until(lambda: sum(1 for a in backend.created if a.calls) == 3, "agents called")
    await orchestrator.cancel(submitted.deliberation_id)
    await asyncio.wait_for(asyncio.gather(*runs), HANG_GUARD)
    assert (first.acked, again.acked, again.nakked) == (True, True, False)
    assert sum(1 for a in backend.created if a.calls) == 3  # one run, not two
    record = await orchestrator.get_record(submitted.deliberation_id)
    assert record.status is RecordStatus.CANCELLED
    assert [f for f in record.failures if f.agent_id == WORKER_AGENT_ID] == []


async def test_a_run_keeps_its_delivery_alive_while_it_works(make_orchestrator: MakeOrchestrator) -> None:
    backend = ScriptedBackend(defaults={"hang_in": frozenset({Phase.GENERATE})})
    orchestrator = await make_orchestrator(backend, queue_ack_wait_seconds=0.3)
    submitted = await orchestrator.submit(request())
    delivery = ScriptedDelivery(submitted.deliberation_id)
    run = asyncio.get_running_loop().create_task(orchestrator.run_queued(delivery))
    await until(lambda: delivery.kept_alive >= 3, "three in-progress acks")
    await orchestrator.cancel(submitted.deliberation_id)
    await asyncio.wait_for(run, HANG_GUARD)
    assert delivery.acked


class _RefusingQueue(LocalQueue):
    """A work queue that cannot take a message (its server unreachable)."""

    async def publish(self, deliberation_id: str) -> None:
        raise BackendUnavailable("the work queue is unreachable")


async def test_a_submission_the_queue_refused_fails_its_record_and_a_retry_starts_afresh(
    make_orchestrator: MakeOrchestrator,
) -> None:
    orchestrator = await make_orchestrator(ScriptedBackend(), ScriptedCheck())
    working = orchestrator.queue
    orchestrator.queue = orchestrator.queued.queue = _RefusingQueue()
    with pytest.raises(BackendUnavailable):
        await orchestrator.submit(request(request_id="retry-me"))
    listed = await orchestrator.list_records()
    assert [(r.status, r.error_kind) for r in listed.records] == [(RecordStatus.FAILED, "QueueUnavailable")]
    assert "unreachable" in listed.records[0].error
    orchestrator.queue = orchestrator.queued.queue = working
    retried = await orchestrator.submit(request(request_id="retry-me"))
    assert retried.status is RecordStatus.QUEUED
    assert retried.deliberation_id != listed.records[0].deliberation_id


async def test_a_lost_quorum_keeps_its_cause_in_the_record_run_directly_or_queued(
    make_orchestrator: MakeOrchestrator,
) -> None:
    rejected = ScriptedBackend(defaults={"fail_in": {Phase.GENERATE: BackendRejected("model not found")}})
    orchestrator = await make_orchestrator(rejected)
    with pytest.raises(QuorumLost):
        await orchestrator.deliberate(request())
    submitted = await orchestrator.submit(request())
    await asyncio.wait_for(orchestrator.run_queued(ScriptedDelivery(submitted.deliberation_id)), HANG_GUARD)
    page = await orchestrator.list_records()
    assert [(r.queued, r.error_kind, r.error_cause) for r in page.records] == [
        (True, "QuorumLost", "BackendRejected"), (False, "QuorumLost", "BackendRejected"),
    ]
