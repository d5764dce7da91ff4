"""The service's core, free of any transport: requests in, deliberations run and recorded."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from orchestrator_core import __version__
from orchestrator_core.council import Council, CouncilInfo, build_councils, no_council_message
from orchestrator_core.deadlines import call_deadline
from orchestrator_core.deliberation import Checkpoint, DeliberationEngine, UsageMeter
from orchestrator_core.errors import (
    AtCapacity,
    DeadlineExceeded,
    InvalidRequest,
    NoCouncil,
    NotFound,
    NoViableProposal,
    cause_kind,
)
from orchestrator_core.events import (
    AgentCallFinished,
    DeliberationEvent,
    DeliberationStarted,
    EventSink,
    discard_event,
)
from orchestrator_core.finishing import finish, finish_failed, named_backend, replayed
from orchestrator_core.hookspecs import Agent, SelectingAgent
from orchestrator_core.journal import Journal
from orchestrator_core.local_queue import LocalQueue
from orchestrator_core.models import DeliberationOutcome, Selection, Task
from orchestrator_core.plugin_calls import PluginFailureCounters, counting_failures
from orchestrator_core.plugins import FailedPlugin, PluginHost, PluginInfo
from orchestrator_core.queued import QueuedRuns
from orchestrator_core.reachability import Prober
from orchestrator_core.records.idempotency import claim
from orchestrator_core.records.model import (
    DeliberationRecord,
    RecordPage,
    RecordQuery,
    RecordStatus,
)
from orchestrator_core.records.opening import new_record
from orchestrator_core.records.store import DeliberationStore
from orchestrator_core.records.upkeep import RecordUpkeep
from orchestrator_core.records.writer import PROGRESS_INTERVAL_SECONDS, RecordWriter
from orchestrator_core.scoring import Scorer, no_viable_message
from orchestrator_core.selection import select_winner, selector_scope
from orchestrator_core.settings import Settings
from orchestrator_core.statistics import Statistics, StatisticsRecorder
from orchestrator_core.telemetry import NO_TELEMETRY, DeliberationScope, PhaseScope, Telemetry
from orchestrator_core.validation import (
    DeliberationRequest,
    Plan,
    agent_timeout,
    check_time_range,
    checked_record_id,
    checked_role,
    normalised_task,
    plan,
)
from orchestrator_core.watchdog import LoopWatchdog
from orchestrator_core.work_queue import Delivery, QueueDepth, WorkQueue

CLOSE_WAIT_SECONDS = 5.0

__all__ = ["DeliberationRequest", "Orchestration", "Orchestrator", "StatusSnapshot"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Orchestration:
    execution_id: str
    outcome: DeliberationOutcome
    selection: Selection


@dataclass(frozen=True)
class StatusSnapshot:
    version: str
    serving: bool
    uptime_seconds: float
    statistics: Statistics
    councils: tuple[CouncilInfo, ...]
    plugins: tuple[PluginInfo, ...]
    failed_plugins: tuple[FailedPlugin, ...]
    queue: QueueDepth = field(default_factory=QueueDepth)


class Orchestrator:
    def __init__(
        self,
        settings: Settings,
        plugins: PluginHost,
        store: DeliberationStore,
        telemetry: Telemetry = NO_TELEMETRY,
        queue: WorkQueue | None = None,
    ) -> None:
        self.settings = settings
        self.telemetry = telemetry
        """Told of each deliberation, phase, agent call and check (metrics, traces, logs)."""
        self.plugins = plugins
        self.store = store
        self.councils: dict[str, Council] = build_councils(settings, plugins.backends)
        self.plugin_failures = PluginFailureCounters()
        """Failures of the plugins' calls, per plugin object (GetStatus)."""
        self.watchdog = (
            LoopWatchdog(settings.loop_stall_seconds, self.plugin_failures) if settings.loop_stall_seconds > 0 else None
        )
        """Watches the event loop for stalls from a thread; None with ORCH_LOOP_STALL_SECONDS=0."""
        self.engine = DeliberationEngine(
            checks=plugins.checks,
            scorer=Scorer(settings.check_weights, settings.default_check_weight, settings.policy_veto),
            quorum=settings.quorum,
            agent_timeout_seconds=settings.agent_timeout_seconds,
            check_timeout_seconds=settings.check_timeout_seconds,
            heavy_check_slots=asyncio.Semaphore(settings.heavy_check_concurrency),
            failures=self.plugin_failures,
            telemetry=telemetry,
        )
        self.statistics = StatisticsRecorder(settings.latency_window)
        self._idle = asyncio.Event()
        self._idle.set()
        self.owner = uuid.uuid4().hex
        """This process's id on the records it runs (and its lease, with a shared database)."""
        self.queue: WorkQueue = queue if queue is not None else LocalQueue(settings.queue_max_deliver)
        """Carries submitted deliberations to the workers; the in-process queue unless given."""
        self.queued = QueuedRuns(self, self.queue)
        self.upkeep = RecordUpkeep(store, settings, self.owner, queue_redelivers=not isinstance(self.queue, LocalQueue))
        self.prober = Prober(lambda: [c for c in self.councils.values() if c.ready], settings.endpoint_probe_seconds)
        self._started = time.monotonic()
        self._queue_depth = QueueDepth()

    @property
    def ready(self) -> bool:
        return any(council.ready for council in self.councils.values())

    async def start(self) -> None:
        """Open the records, start their upkeep (leases, interrupted records, retention), the
        work queue, the endpoint probes and the loop watchdog."""
        await self.store.open()
        try:
            await self.upkeep.start()
            await self.queue.start()
        except BaseException:
            await self.upkeep.stop()
            await self.store.close()
            raise
        self.prober.start()
        if self.watchdog is not None:
            self.watchdog.start()

    async def close(self, wait_seconds: float = CLOSE_WAIT_SECONDS) -> None:
        """Close the records, once the deliberations still unwinding (e.g. cancelled at the end
        of a shutdown's grace period) have written their final state, or after ``wait_seconds``;
        queued runs still going then hand their deliveries back (nak) for another worker."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_seconds):
                await self._idle.wait()
        await self.queued.hand_back_all()
        await self.queue.close()
        await self.prober.stop()
        await self.upkeep.stop()
        await self.store.close()
        await self.plugins.close_backends()
        if self.watchdog is not None:
            self.watchdog.stop()

    # -- deliberations --------------------------------------------------------

    async def deliberate(
        self,
        request: DeliberationRequest,
        *,
        on_event: EventSink = discard_event,
        timeout: float | None = None,
    ) -> DeliberationOutcome:
        outcome, _ = await self._run(request, None, on_event, timeout)
        return outcome

    async def orchestrate(
        self,
        request: DeliberationRequest,
        *,
        top_k: int = 0,
        on_event: EventSink = discard_event,
        timeout: float | None = None,
    ) -> Orchestration:
        if top_k < 0:
            raise InvalidRequest(f"top_k must not be negative; got {top_k}")
        outcome, selection = await self._run(
            request, top_k or self.settings.selection_top_k, on_event, timeout
        )
        assert selection is not None  # a top_k was given
        return Orchestration(outcome.deliberation_id, outcome, selection)

    async def _run(
        self,
        request: DeliberationRequest,
        top_k: int | None,
        on_event: EventSink,
        timeout: float | None,
    ) -> tuple[DeliberationOutcome, Selection | None]:
        """Run and record one deliberation, and select a winner when ``top_k`` is given.

        A run that fails, is cancelled or times out is recorded with the tokens its agents
        had spent. An orchestration whose ranking holds no viable proposal raises
        NoViableProposal, and its failed record keeps the ranking.

        With a request_id, a call whose id a succeeded record already holds returns that
        record's outcome instead (see :mod:`orchestrator_core.records.idempotency`).
        """
        task = normalised_task(request.task, self.settings)
        council = self._council_for(task.role)
        checked = plan(request, task, self.settings, council.size)
        agents = named_backend(council.agents(checked.num_agents), council.settings.backend)
        budget = self._budget(checked.task, timeout)
        with self._slot():
            record = new_record(checked, council, agents, top_k, self.owner)
            started = time.monotonic()
            answered = await self._create(record, budget)
            if answered is not None:
                return replayed(answered, on_event)
            on_event(DeliberationStarted(record.deliberation_id))
            writer = RecordWriter(self.store, record, on_event, progress_interval=PROGRESS_INTERVAL_SECONDS)
            meter = UsageMeter()
            scope = DeliberationScope(record.deliberation_id, record.kind, record.role, record.num_agents,
                                      record.rounds)
            with self.telemetry.deliberation(scope):
                writer.start()  # its task runs in the scope: its log lines name the deliberation
                try:
                    remaining = budget - (time.monotonic() - started)
                    with call_deadline(remaining), counting_failures(self.plugin_failures):
                        async with asyncio.timeout(remaining):
                            outcome, selection = await self._deliberate(writer, checked, agents, top_k, meter)
                except TimeoutError:
                    await finish_failed(
                        self.statistics, writer, scope, RecordStatus.FAILED, started, meter, "deadline exceeded",
                        DeadlineExceeded.__name__,
                    )
                    raise DeadlineExceeded(f"the deliberation did not finish within {budget:g}s") from None
                except asyncio.CancelledError:
                    await finish_failed(
                        self.statistics, writer, scope, RecordStatus.CANCELLED, started, meter, "cancelled", "Cancelled"
                    )
                    raise
                except Exception as exc:  # NoViableProposal's ranking is in the record already
                    await finish_failed(
                        self.statistics, writer, scope, RecordStatus.FAILED, started, meter, str(exc),
                        type(exc).__name__, cause_kind(exc),
                    )
                    raise
                await asyncio.shield(finish(
                    self.statistics, writer, scope, RecordStatus.SUCCEEDED, started, meter.total, selection=selection
                ))
                return outcome, selection

    async def _create(self, record: DeliberationRecord, budget: float) -> DeliberationRecord | None:
        """Store the new RUNNING record; or, for a request_id already answered, the record
        that answers it (waiting, within ``budget``, while it runs elsewhere)."""
        if not record.request_id:
            await self.store.create(record)
            return None
        try:
            async with asyncio.timeout(budget):
                return await claim(self.store, record)
        except TimeoutError:
            raise DeadlineExceeded(
                f"the first call with request_id {record.request_id!r} did not finish within {budget:g}s"
            ) from None

    async def _deliberate(
        self,
        writer: RecordWriter,
        checked: Plan,
        agents: Sequence[Agent],
        top_k: int | None,
        meter: UsageMeter,
        journal: Journal | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> tuple[DeliberationOutcome, Selection | None]:
        """Deliberate, then (for an orchestration) select among the viable proposals.

        A deliberation without a viable proposal is still a ranking, and Deliberate returns
        it; an orchestration has no winner to give, and raises NoViableProposal.
        """
        outcome = await self.engine.deliberate(
            checked.task, agents, checked.rounds,
            deliberation_id=writer.record.deliberation_id, on_event=writer.observe, usage=meter, journal=journal,
            checkpoint=checkpoint,
        )
        if top_k is None:
            return outcome, None
        if outcome.viable_proposals == 0:
            raise NoViableProposal(no_viable_message(self.engine.scorer, outcome.results), outcome=outcome)
        selector = self._selector()
        record = writer.record
        with self.telemetry.phase(PhaseScope(record.deliberation_id, record.role, "select", 0)):
            selection = await select_winner(
                checked.task, outcome.results, selector, top_k=top_k,
                timeout_seconds=agent_timeout(checked.task, self.settings.agent_timeout_seconds),
                telemetry=self.telemetry, scope=selector_scope(record.deliberation_id, checked.task, selector),
                on_call=lambda call: writer.observe(AgentCallFinished(call)),
            )
        meter.add(selection.usage)
        writer.mark_phase("select")
        return outcome, selection

    def _council_for(self, role: str) -> Council:
        council = self.councils.get(role)
        if council is None:
            raise NoCouncil(no_council_message(role, self.councils))
        if not council.ready:
            raise NoCouncil(council.problem)
        return council

    def _selector(self) -> SelectingAgent | None:
        role = self.settings.selector_role.strip().upper()
        council = self.councils.get(role) if role else None
        if council is None or not council.ready:
            return None
        selector = council.selector()
        if selector is not None:
            named_backend([selector], council.settings.backend)
        return selector

    def _budget(self, task: Task, timeout: float | None) -> float:
        limits = [self.settings.deliberation_timeout_seconds]
        if task.constraints.timeout_seconds > 0:
            limits.append(task.constraints.timeout_seconds)
        if timeout is not None and math.isfinite(timeout):
            if timeout <= 0:
                raise DeadlineExceeded("the deadline had passed before the deliberation started")
            limits.append(timeout)
        return min(limits)

    @contextmanager
    def _slot(self) -> Iterator[None]:
        if self.statistics.in_flight >= self.settings.max_concurrent_deliberations:
            raise AtCapacity(
                f"the service is running {self.statistics.in_flight} deliberations, its limit "
                "(ORCH_MAX_CONCURRENT_DELIBERATIONS); retry later"
            )
        with self._counted():
            yield

    @contextmanager
    def _counted(self) -> Iterator[None]:
        """One deliberation in flight (a queued run's bound is the queue's concurrency)."""
        self.statistics.in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self.statistics.in_flight -= 1
            if self.statistics.in_flight == 0:
                self._idle.set()

    # -- queued deliberations (see orchestrator_core.queued) ------------------

    async def submit(
        self, request: DeliberationRequest, *, top_k: int | None = None, timeout: float | None = None
    ) -> DeliberationRecord:
        """Validate and queue ``request`` (an orchestration when ``top_k`` is given, 0 meaning
        ORCH_SELECTION_TOP_K); returns its QUEUED record at once, or a request_id's holder."""
        return await self.queued.submit(request, top_k=top_k, timeout=timeout)

    async def run_queued(self, delivery: Delivery) -> None:
        await self.queued.run_queued(delivery)

    async def cancel(self, deliberation_id: str) -> DeliberationRecord:
        """Cancel now if queued, else ask its runner to stop (NotFound, AlreadyFinished)."""
        return await self.queued.cancel(deliberation_id)

    def watch(self, deliberation_id: str, after_sequence: int = 0) -> AsyncIterator[tuple[int, DeliberationEvent]]:
        """Numbered events after ``after_sequence``, then live ones, then DeliberationFinished."""
        return self.queued.watch(deliberation_id, after_sequence)

    async def consume(self, concurrency: int) -> None:
        """Run deliveries of the work queue, ``concurrency`` at once, until cancelled."""
        await self.queued.consume(concurrency)

    # -- records and status ---------------------------------------------------

    async def get_record(self, deliberation_id: str) -> DeliberationRecord:
        deliberation_id = checked_record_id(deliberation_id)
        record = await self.store.get(deliberation_id) if deliberation_id else None
        if record is None:
            raise NotFound(f"no deliberation has id {deliberation_id!r}")
        return record

    async def list_records(
        self,
        *,
        role: str = "",
        status: RecordStatus | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> RecordPage:
        """Records newest first. ``created_after`` (inclusive) and ``created_before``
        (exclusive) bound their creation time, in seconds since the Unix epoch."""
        check_time_range(created_after, created_before)
        query = RecordQuery(
            role=checked_role(role), status=status, created_after=created_after, created_before=created_before,
            page_size=page_size, page_token=page_token,
        )
        return await self.store.list(query)

    async def status_with_queue(self) -> StatusSnapshot:
        """:meth:`status` with the work queue's depth read now (the last one read when the
        queue cannot say: the status must not fail with it)."""
        try:
            self._queue_depth = await self.queue.depth()
        except Exception as exc:
            log.warning("could not read the work queue's depth: %s", exc)
        return self.status()

    def status(self) -> StatusSnapshot:
        """The service's state; ``queue`` is the depth last read (see :meth:`status_with_queue`)."""
        return StatusSnapshot(
            version=__version__,
            serving=self.ready,
            uptime_seconds=time.monotonic() - self._started,
            statistics=replace(
                self.statistics.snapshot(),
                loop_stalls=self.watchdog.stalls if self.watchdog is not None else 0,
                longest_loop_stall_seconds=self.watchdog.longest_stall_seconds if self.watchdog is not None else 0.0,
                plugin_failures=self.plugin_failures.snapshot(),
                abandoned_plugin_threads=self.engine.off_loop.abandoned,
            ),
            councils=tuple(council.info() for council in self.councils.values()),
            plugins=self.plugins.plugins,
            failed_plugins=self.plugins.failed,
            queue=self._queue_depth,
        )

