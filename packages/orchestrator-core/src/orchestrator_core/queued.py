"""Queued deliberations: submitted at once, run by whichever worker the queue delivers them to,
watched and cancelled from any process sharing the record store.

The record is the job and the event log. :meth:`QueuedRuns.submit` validates the request
as a direct run does, stores a QUEUED record holding everything a run needs (its budget as
``deadline_at``) and publishes its id. :meth:`QueuedRuns.run_queued` runs one delivery: it
takes the record over in the store (so a worker that lost it writes nothing more), runs it
with what an earlier attempt completed (:class:`~orchestrator_core.journal.Journal`), keeps
the delivery alive, and acks it once the record is final. While it runs it reads its record
every :data:`POLL_SECONDS` (or on a change notice): a cancel request stops it CANCELLED;
the record taken over by another worker (or a write of it refused) stops it writing
nothing. On its own process's shutdown it hands the delivery back (nak), leaving the record
RUNNING with its progress for the next worker to resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, cast

from orchestrator_core.deadlines import call_deadline
from orchestrator_core.deliberation import UsageMeter
from orchestrator_core.errors import AlreadyFinished, DeadlineExceeded, InvalidRequest, NotFound, cause_kind
from orchestrator_core.events import DeliberationEvent
from orchestrator_core.finishing import finish, finish_failed, named_backend
from orchestrator_core.journal import Journal
from orchestrator_core.models import AgentCall, AgentFailure, CallOutcome, Phase
from orchestrator_core.plugin_calls import counting_failures
from orchestrator_core.record_events import events_of, finished_event
from orchestrator_core.records.idempotency import hold
from orchestrator_core.records.model import DeliberationRecord, RecordStatus
from orchestrator_core.records.opening import new_record
from orchestrator_core.records.store import DeliberationStore
from orchestrator_core.records.writer import RecordWriter
from orchestrator_core.telemetry import DeliberationScope
from orchestrator_core.validation import DeliberationRequest, Plan, normalised_task, plan
from orchestrator_core.work_queue import Delivery, WorkQueue

if TYPE_CHECKING:
    from orchestrator_core.orchestrator import Orchestrator

POLL_SECONDS = 0.5
"""How often a watcher, and a running worker, read the record when no change notice came."""

CANCEL_WAIT_SECONDS = 10.0
"""How long a cancel waits for a run of this process to write its CANCELLED record."""

WORKER_LOST_KIND = "WorkerLost"
WORKER_AGENT_ID = "worker"
"""The agent id of the failure entry saying a worker was lost (no council agent has it)."""

log = logging.getLogger(__name__)

StopReason = Literal["", "cancel", "lost", "hand-back"]


@dataclass
class _Run:
    """One queued run in this process."""

    deliberation_id: str
    task: asyncio.Task[None] | None = None
    reason: StopReason = ""
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    finishing: bool = False
    """The run is writing its final record (a final record read meanwhile is its own)."""

    def stop(self, reason: StopReason) -> None:
        """Stop the run for ``reason`` (the first reason given wins). Called from the run's
        own task (its final write refused), it only notes the reason: the run is ending."""
        if self.reason or self.task is None or self.task.done():
            return
        self.reason = reason
        if self.task is not asyncio.current_task():
            self.task.cancel()


class _OwnedStore:
    """The store as a queued run's record writer sees it: a write the store refuses (another
    worker took the record over) stops the run, and each accepted write tells watchers. On a
    hand-back the final write keeps the record RUNNING, its progress stored for the next worker."""

    def __init__(self, store: DeliberationStore, queue: WorkQueue, run: _Run) -> None:
        self._store = store
        self._queue = queue
        self._run = run
        self.dropping = False
        """The run lost its record: nothing is written."""

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def update(self, record: DeliberationRecord) -> bool:
        if self.dropping:
            return False
        if self._run.reason == "hand-back" and record.status.finished:
            record = replace(
                record, status=RecordStatus.RUNNING, finished_at=None, error="", error_kind="", handed_back=True,
                calls=completed_calls(record),
            )
        if not await self._store.update(record):
            self.dropping = True
            log.warning("deliberation %s was taken over by another worker; this run stops", record.deliberation_id)
            self._run.stop("lost")
            return False
        await _announce(self._queue, record)
        return True


class QueuedRuns:
    """Submit, run, cancel and watch queued deliberations for one :class:`Orchestrator`."""

    def __init__(self, orchestrator: Orchestrator, queue: WorkQueue) -> None:
        self._orchestrator = orchestrator
        self.queue = queue
        self._runs: dict[str, _Run] = {}

    # -- submitting -----------------------------------------------------------

    async def submit(
        self, request: DeliberationRequest, *, top_k: int | None = None, timeout: float | None = None
    ) -> DeliberationRecord:
        o = self._orchestrator
        if top_k is not None and top_k < 0:
            raise InvalidRequest(f"top_k must not be negative; got {top_k}")
        task = normalised_task(request.task, o.settings)
        council = o._council_for(task.role)
        checked = plan(request, task, o.settings, council.size)
        agents = named_backend(council.agents(checked.num_agents), council.settings.backend)
        budget = o._budget(checked.task, timeout)
        resolved_top_k = None if top_k is None else top_k or o.settings.selection_top_k
        record = new_record(checked, council, agents, resolved_top_k, o.owner)
        record = replace(
            record, status=RecordStatus.QUEUED, queued=True, deadline_at=record.created_at + budget
        )
        holder = await hold(o.store, record) if record.request_id else await o.store.create(record)
        if holder is not None:
            return holder
        try:
            await self.queue.publish(record.deliberation_id)
        except BaseException as exc:  # no worker will ever see it: it must not wait QUEUED for ever
            now = time.time()
            unsent = replace(
                record, status=RecordStatus.FAILED, finished_at=now, updated_at=now,
                error=f"the work queue did not take it: {exc}", error_kind="QueueUnavailable",
            )
            with contextlib.suppress(Exception):
                await asyncio.shield(o.store.update(unsent))
            raise
        return record

    # -- running --------------------------------------------------------------

    async def run_queued(self, delivery: Delivery) -> None:
        o = self._orchestrator
        deliberation_id = delivery.deliberation_id
        record = await o.store.get(deliberation_id)
        if record is None or record.status.finished:
            await delivery.ack()
            return
        running_here = self._runs.get(deliberation_id)
        if running_here is not None:  # delivered again while this process still runs it
            await self._keep_alive_until(running_here.ended, delivery)
            after = await o.store.get(deliberation_id)
            await (delivery.ack() if after is None or after.status.finished else delivery.nak())
            return
        if delivery.attempt > self.queue.max_deliver:
            await self._fail_lost(deliberation_id, delivery.attempt)
            await delivery.ack()
            return
        run = _Run(deliberation_id)
        self._runs[deliberation_id] = run  # before the take: a second delivery here waits for this one
        try:
            taken = await o.store.take(deliberation_id, o.owner)
        except BaseException:
            self._runs.pop(deliberation_id, None)
            run.ended.set()
            raise
        if taken is None:
            self._runs.pop(deliberation_id, None)
            run.ended.set()
            await delivery.ack()
            return
        if delivery.attempt > 1 and record.status is RecordStatus.RUNNING:
            taken = replace(
                taken, failures=(*taken.failures, _resumption_note(taken, delivery.attempt)),
                calls=completed_calls(taken), handed_back=False,
            )
        owned = _OwnedStore(o.store, self.queue, run)
        run.task = asyncio.get_running_loop().create_task(self._execute(taken, run, owned))
        try:
            with o._counted():
                try:
                    await self._supervise(run, delivery)
                except asyncio.CancelledError:  # this process stops: hand the work back
                    run.stop("hand-back")
                    with contextlib.suppress(asyncio.CancelledError):
                        await asyncio.shield(run.task)
                    await delivery.nak()
                    raise
            if run.reason == "hand-back":
                await delivery.nak()
            elif run.reason != "lost":  # a lost run's message is its new worker's to ack
                await delivery.ack()
        finally:
            self._runs.pop(deliberation_id, None)
            run.ended.set()

    async def _supervise(self, run: _Run, delivery: Delivery) -> None:
        """Wait for the run, keeping the delivery alive and stopping the run when its record
        asks for a cancel or was taken over."""
        assert run.task is not None
        o = self._orchestrator
        keep_alive = o.settings.queue_ack_wait_seconds / 3
        last_alive = time.monotonic()
        async with _Notices(self.queue, run.deliberation_id) as notices:
            while not run.task.done():
                await notices.wait(min(POLL_SECONDS, keep_alive), run.task)
                if run.task.done():
                    break
                if time.monotonic() - last_alive >= keep_alive:
                    await delivery.in_progress()
                    last_alive = time.monotonic()
                try:
                    current = await o.store.get(run.deliberation_id)
                except Exception as exc:  # the database may come back; the run goes on meanwhile
                    log.warning("could not read deliberation %s: %s", run.deliberation_id, exc)
                    continue
                if _lost(current, o.owner, run):
                    run.stop("lost")
                elif current is not None and current.cancel_requested:
                    run.stop("cancel")
        await asyncio.wait([run.task])  # it never raises; a cancellation here is this process's own

    async def _execute(self, record: DeliberationRecord, run: _Run, owned: _OwnedStore) -> None:
        """Run the record to its end and write it, as a direct run does (never raises)."""
        o = self._orchestrator
        top_k = record.top_k if record.kind == "orchestrate" else None
        checked = Plan(record.task, record.num_agents, record.rounds, record.request_id)
        started = time.monotonic()
        meter = UsageMeter()
        scope = DeliberationScope(record.deliberation_id, record.kind, record.role, record.num_agents, record.rounds)
        with o.telemetry.deliberation(scope):
            writer = RecordWriter(cast(DeliberationStore, owned), record, started_at=time.time())
            writer.start()

            async def failed(status: RecordStatus, error: str, kind: str, cause: str = "") -> None:
                run.finishing = True
                await finish_failed(o.statistics, writer, scope, status, started, meter, error, kind, cause)

            try:
                council = o._council_for(record.role)
                agents = named_backend(council.agents(record.num_agents), council.settings.backend)
                remaining = (record.deadline_at or time.time() + o.settings.deliberation_timeout_seconds) - time.time()
                if remaining <= 0:
                    raise TimeoutError
                with call_deadline(remaining), counting_failures(o.plugin_failures):
                    async with asyncio.timeout(remaining):
                        _, selection = await o._deliberate(
                            writer, checked, agents, top_k, meter, journal=Journal.from_record(record),
                            checkpoint=writer.flush,
                        )
            except (asyncio.CancelledError, Exception) as exc:
                if run.reason in ("lost", "hand-back"):  # the record is another worker's to finish
                    owned.dropping = run.reason == "lost"
                    await asyncio.shield(writer.finish(RecordStatus.CANCELLED))  # see _OwnedStore
                elif isinstance(exc, TimeoutError):
                    await failed(RecordStatus.FAILED, "deadline exceeded", DeadlineExceeded.__name__)
                elif isinstance(exc, asyncio.CancelledError):
                    await failed(RecordStatus.CANCELLED, "cancelled", "Cancelled")
                else:
                    await failed(RecordStatus.FAILED, str(exc), type(exc).__name__, cause_kind(exc))
            else:
                run.finishing = True
                await asyncio.shield(
                    finish(o.statistics, writer, scope, RecordStatus.SUCCEEDED, started, meter.total,
                           selection=selection)
                )

    async def _fail_lost(self, deliberation_id: str, attempt: int) -> None:
        o = self._orchestrator
        taken = await o.store.take(deliberation_id, o.owner)
        if taken is None:
            return
        error = (
            f"worker lost: delivery {attempt} exceeds ORCH_QUEUE_MAX_DELIVER ({self.queue.max_deliver}); "
            "the deliberation was not finished by any worker it was delivered to"
        )
        final = taken.finished(RecordStatus.FAILED, time.time(), error=error, error_kind=WORKER_LOST_KIND)
        if await o.store.update(final):
            await _announce(self.queue, final)

    async def _keep_alive_until(self, ended: asyncio.Event, delivery: Delivery) -> None:
        keep_alive = self._orchestrator.settings.queue_ack_wait_seconds / 3
        while not ended.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(keep_alive):
                    await ended.wait()
            if not ended.is_set():
                await delivery.in_progress()

    async def consume(self, concurrency: int) -> None:
        await self.queue.consume(self.run_queued, concurrency)

    async def hand_back_all(self) -> None:
        """Stop every run of this process (its shutdown): each stores its progress and hands
        its delivery back; returns once they have."""
        runs = list(self._runs.values())
        for run in runs:
            run.stop("hand-back")
        for run in runs:
            await run.ended.wait()

    # -- cancelling and watching ----------------------------------------------

    async def cancel(self, deliberation_id: str) -> DeliberationRecord:
        o = self._orchestrator
        record = await o.get_record(deliberation_id)
        if record.status.finished:
            raise AlreadyFinished(_finished_message(record))
        if not record.queued:
            raise InvalidRequest(
                f"deliberation {record.deliberation_id} runs inside the call that started it (it was not "
                "submitted); cancel that call instead"
            )
        now = await o.store.request_cancel(record.deliberation_id)
        if now is None:
            raise NotFound(f"no deliberation has id {deliberation_id!r}")
        if now.status.finished and now.status is not RecordStatus.CANCELLED:
            raise AlreadyFinished(_finished_message(now))
        run = self._runs.get(now.deliberation_id)
        if run is not None:
            run.stop("cancel")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CANCEL_WAIT_SECONDS):
                    await run.ended.wait()
            now = await o.get_record(now.deliberation_id)
        else:
            await _announce(self.queue, now)
        return now

    async def watch(
        self, deliberation_id: str, after_sequence: int = 0
    ) -> AsyncIterator[tuple[int, DeliberationEvent]]:
        o = self._orchestrator
        if after_sequence < 0:
            raise InvalidRequest(f"after_sequence must not be negative; got {after_sequence}")
        record = await o.get_record(deliberation_id)
        sent = after_sequence
        async with _Notices(self.queue, record.deliberation_id) as notices:
            while True:
                events = events_of(record)
                for index in range(sent, len(events)):
                    yield index + 1, events[index]
                sent = max(sent, len(events))
                if record.status.finished:
                    yield len(events) + 1, finished_event(record)
                    return
                await notices.wait(POLL_SECONDS)
                record = await o.get_record(record.deliberation_id)


def completed_calls(record: DeliberationRecord) -> tuple[AgentCall, ...]:
    """The record's calls without those cut short: a resumed run makes them again, so the
    record ends as an uninterrupted run's would."""
    return tuple(call for call in record.calls if call.outcome is not CallOutcome.CANCELLED)


def _resumption_note(record: DeliberationRecord, attempt: int) -> AgentFailure:
    """The failure entry saying why delivery ``attempt`` resumes ``record``."""
    if record.handed_back:
        why = f"worker stopped: it handed the deliberation back, and delivery {attempt} resumes it"
    else:
        why = f"worker lost: delivery {attempt} resumes what its previous worker did not finish"
    return AgentFailure(WORKER_AGENT_ID, Phase.GENERATE, why)


def _lost(current: DeliberationRecord | None, owner: str, run: _Run) -> bool:
    """The record is no longer this run's: gone, taken over, or ended by another hand (a
    lease sweep) before the run wrote its end."""
    if current is None or current.owner != owner or current.status is RecordStatus.QUEUED:
        return True
    return current.status.finished and not run.finishing


def _finished_message(record: DeliberationRecord) -> str:
    return f"deliberation {record.deliberation_id} is already {record.status.value}; there is nothing to cancel"


async def _announce(queue: WorkQueue, record: DeliberationRecord) -> None:
    """Tell watchers the record changed (best effort: they also poll)."""
    try:
        await queue.changed(record.deliberation_id, len(events_of(record)))
    except Exception as exc:
        log.warning("could not announce a change of deliberation %s: %s", record.deliberation_id, exc)


class _Notices:
    """A record's change notices, as an event to wait on with a bound (a notice may be lost:
    the caller reads the record after each wait, notice or not)."""

    def __init__(self, queue: WorkQueue, deliberation_id: str) -> None:
        self._queue = queue
        self._deliberation_id = deliberation_id
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> _Notices:
        self._task = asyncio.get_running_loop().create_task(self._follow())
        await asyncio.sleep(0)  # subscribed before the caller's first read of the record
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _follow(self) -> None:
        try:
            async for _ in self._queue.changes(self._deliberation_id):
                self._changed.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # polling goes on without notices
            log.warning("change notices of deliberation %s stopped: %s", self._deliberation_id, exc)

    async def wait(self, seconds: float, also: asyncio.Future[Any] | None = None) -> None:
        """Until a notice, ``also`` is done, or ``seconds`` have passed."""
        waiter: asyncio.Future[Any] = asyncio.ensure_future(self._changed.wait())
        waited = [waiter] if also is None else [waiter, also]
        try:
            await asyncio.wait(waited, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        self._changed.clear()
