"""Queued deliberations in one process and across two sharing PostgreSQL: submit returns at
once, a consumer runs the record, watch replays and follows it, cancel stops it, and a worker
that lost its record stops writing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from core_support import HANG_GUARD, MakeOrchestrator, started_orchestrators, until

from orchestrator_core.errors import (
    AlreadyFinished,
    BackendRejected,
    BackendUnavailable,
    InvalidRequest,
    NoCouncil,
    NotFound,
    QuorumLost,
)
from orchestrator_core.events import DeliberationEvent, DeliberationFinished, RankingReady
from orchestrator_core.local_queue import LocalQueue
from orchestrator_core.models import CallOutcome, Phase, Task, TaskConstraints
from orchestrator_core.orchestrator import DeliberationRequest, Orchestrator
from orchestrator_core.queued import WORKER_AGENT_ID
from orchestrator_core.record_events import events_of
from orchestrator_core.records import DeliberationRecord, RecordStatus
from orchestrator_core.testing import ScriptedBackend, ScriptedCheck


def request(description: str = "Write fizzbuzz", **kwargs: Any) -> DeliberationRequest:
    constraints = kwargs.pop("constraints", TaskConstraints())
    return DeliberationRequest(Task(role="dev", description=description, constraints=constraints), **kwargs)


@dataclass
class ScriptedDelivery:
    """A delivery handed to ``run_queued`` by the test, which then reads how it was settled."""

    deliberation_id: str
    attempt: int = 1
    acked: bool = False
    nakked: bool = False
    kept_alive: int = 0

    async def in_progress(self) -> None:
        self.kept_alive += 1

    async def ack(self) -> None:
        self.acked = True

    async def nak(self) -> None:
        self.nakked = True


@pytest.fixture
async def make_shared(postgres_schema_url: str) -> AsyncIterator[MakeOrchestrator]:
    """Started orchestrators sharing one PostgreSQL database (replicas)."""
    async with started_orchestrators(lambda n: {"database_url": postgres_schema_url}) as make:
        yield make


async def consuming(orchestrator: Orchestrator, concurrency: int = 2) -> asyncio.Task[None]:
    return asyncio.get_running_loop().create_task(orchestrator.consume(concurrency))


async def stop(task: asyncio.Task[Any]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def watched(
    orchestrator: Orchestrator, deliberation_id: str, after: int = 0
) -> list[tuple[int, DeliberationEvent]]:
    async with asyncio.timeout(HANG_GUARD):
        return [item async for item in orchestrator.watch(deliberation_id, after)]


async def record_when(
    orchestrator: Orchestrator, deliberation_id: str, condition: Callable[[DeliberationRecord], bool], what: str
) -> DeliberationRecord:
    """The record once ``condition`` holds of it (read from the store; the bound stops a hang)."""
    try:
        async with asyncio.timeout(HANG_GUARD):
            while True:
                record = await orchestrator.store.get(deliberation_id)
                if record is not None and condition(record):
                    return record
                await asyncio.sleep(0.01)
    except TimeoutError:
        pytest.fail(f"never happened within {HANG_GUARD:g}s: {what}")


def replay(record: DeliberationRecord) -> list[tuple[int, DeliberationEvent]]:
    events = events_of(record)
    finished = DeliberationFinished(record.status.value, record.error, record.error_kind)
    return [(i + 1, event) for i, event in enumerate([*events, finished])]


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
    submitted = await orchestrator.submit(request())
    delivery = ScriptedDelivery(submitted.deliberation_id)
    run = asyncio.get_running_loop().create_task(orchestrator.run_queued(delivery))
    await record_when(orchestrator, submitted.deliberation_id, lambda r: r.status is RecordStatus.RUNNING, "taken")
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
    submitted = await orchestrator.submit(request())
    delivery = ScriptedDelivery(submitted.deliberation_id)
    run = asyncio.get_running_loop().create_task(orchestrator.run_queued(delivery))
    await record_when(orchestrator, submitted.deliberation_id, lambda r: r.status is RecordStatus.RUNNING, "taken")
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
    submitted = await orchestrator.submit(request())
    delivery = ScriptedDelivery(submitted.deliberation_id)
    run = asyncio.get_running_loop().create_task(orchestrator.run_queued(delivery))
    await record_when(orchestrator, submitted.deliberation_id, lambda r: r.status is RecordStatus.RUNNING, "taken")
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
