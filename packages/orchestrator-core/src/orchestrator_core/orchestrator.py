"""The service's core, free of any transport: requests in, deliberations run and recorded."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

from orchestrator_core import __version__
from orchestrator_core.breaker import GuardedAgent
from orchestrator_core.council import Council, CouncilInfo, build_councils, no_council_message
from orchestrator_core.deadlines import call_deadline
from orchestrator_core.deliberation import DeliberationEngine, UsageMeter
from orchestrator_core.errors import (
    AtCapacity,
    DeadlineExceeded,
    InvalidRequest,
    NoCouncil,
    NotFound,
    NoViableProposal,
)
from orchestrator_core.events import AgentCallFinished, DeliberationStarted, EventSink, RankingReady, discard_event
from orchestrator_core.hookspecs import Agent, SelectingAgent
from orchestrator_core.models import DeliberationOutcome, Selection, Task, TokenUsage
from orchestrator_core.plugin_calls import PluginFailureCounters, counting_failures
from orchestrator_core.plugins import FailedPlugin, PluginHost, PluginInfo
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
from orchestrator_core.records.writer import RecordWriter
from orchestrator_core.scoring import Scorer, no_viable_message
from orchestrator_core.selection import select_winner, selector_scope
from orchestrator_core.settings import Settings
from orchestrator_core.statistics import Statistics, StatisticsRecorder
from orchestrator_core.telemetry import NO_TELEMETRY, DeliberationScope, PhaseScope, Telemetry
from orchestrator_core.validation import (
    DeliberationRequest,
    Plan,
    agent_timeout,
    checked_record_id,
    checked_role,
    normalised_task,
    plan,
)
from orchestrator_core.watchdog import LoopWatchdog

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


class Orchestrator:
    def __init__(
        self,
        settings: Settings,
        plugins: PluginHost,
        store: DeliberationStore,
        telemetry: Telemetry = NO_TELEMETRY,
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
        self.upkeep = RecordUpkeep(store, settings, self.owner)
        self.prober = Prober(lambda: [c for c in self.councils.values() if c.ready], settings.endpoint_probe_seconds)
        self._started = time.monotonic()

    @property
    def ready(self) -> bool:
        return any(council.ready for council in self.councils.values())

    async def start(self) -> None:
        """Open the records, start their upkeep (leases, interrupted records, retention), the
        endpoint probes and the loop watchdog."""
        await self.store.open()
        try:
            await self.upkeep.start()
        except BaseException:
            await self.store.close()
            raise
        self.prober.start()
        if self.watchdog is not None:
            self.watchdog.start()

    async def close(self, wait_seconds: float = CLOSE_WAIT_SECONDS) -> None:
        """Close the records, once the deliberations still unwinding (e.g. cancelled at the end
        of a shutdown's grace period) have written their final state, or after ``wait_seconds``."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_seconds):
                await self._idle.wait()
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
        agents = _named_backend(council.agents(checked.num_agents), council.settings.backend)
        budget = self._budget(checked.task, timeout)
        with self._slot():
            record = new_record(checked, council, agents, top_k, self.owner)
            started = time.monotonic()
            answered = await self._create(record, budget)
            if answered is not None:
                return self._replay(answered, on_event)
            on_event(DeliberationStarted(record.deliberation_id))
            writer = RecordWriter(self.store, record, on_event)
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
                    await self._finish_failed(
                        writer, scope, RecordStatus.FAILED, started, meter, "deadline exceeded",
                        DeadlineExceeded.__name__,
                    )
                    raise DeadlineExceeded(f"the deliberation did not finish within {budget:g}s") from None
                except asyncio.CancelledError:
                    await self._finish_failed(
                        writer, scope, RecordStatus.CANCELLED, started, meter, "cancelled", "Cancelled"
                    )
                    raise
                except Exception as exc:  # NoViableProposal's ranking is in the record already
                    await self._finish_failed(
                        writer, scope, RecordStatus.FAILED, started, meter, str(exc), type(exc).__name__
                    )
                    raise
                await asyncio.shield(
                    self._finish(writer, scope, RecordStatus.SUCCEEDED, started, meter.total, selection=selection)
                )
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

    @staticmethod
    def _replay(
        record: DeliberationRecord, on_event: EventSink
    ) -> tuple[DeliberationOutcome, Selection | None]:
        if record.outcome is None:  # pragma: no cover - a succeeded record has its outcome
            raise RuntimeError(f"record {record.deliberation_id} succeeded without an outcome")
        on_event(RankingReady(record.outcome))
        return record.outcome, record.selection

    async def _deliberate(
        self,
        writer: RecordWriter,
        checked: Plan,
        agents: Sequence[Agent],
        top_k: int | None,
        meter: UsageMeter,
    ) -> tuple[DeliberationOutcome, Selection | None]:
        """Deliberate, then (for an orchestration) select among the viable proposals.

        A deliberation without a viable proposal is still a ranking, and Deliberate returns
        it; an orchestration has no winner to give, and raises NoViableProposal.
        """
        outcome = await self.engine.deliberate(
            checked.task, agents, checked.rounds,
            deliberation_id=writer.record.deliberation_id, on_event=writer.observe, usage=meter,
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

    async def _finish(
        self,
        writer: RecordWriter,
        scope: DeliberationScope,
        status: RecordStatus,
        started: float,
        usage: TokenUsage,
        *,
        selection: Selection | None = None,
        error: str = "",
        error_kind: str = "",
    ) -> None:
        """Count the run and the tokens it spent, then write its finished record (durable
        when this returns). The record has the outcome already, from the ranking event."""
        record = writer.record
        scope.status, scope.error_kind, scope.usage = status.value, error_kind, usage
        if record.outcome is not None:
            scope.rounds_run, scope.viable_proposals = record.outcome.rounds, record.outcome.viable_proposals
        self.statistics.record(
            role=record.role,
            orchestration=record.kind == "orchestrate",
            seconds=time.monotonic() - started,
            failed=status is not RecordStatus.SUCCEEDED,
            usage=usage,
        )
        await writer.finish(status, usage=usage, selection=selection, error=error, error_kind=error_kind)

    async def _finish_failed(
        self,
        writer: RecordWriter,
        scope: DeliberationScope,
        status: RecordStatus,
        started: float,
        meter: UsageMeter,
        error: str,
        error_kind: str,
    ) -> None:
        """Like :meth:`_finish`, for a run that failed: a failure to write the record is
        logged, and the run's own error is what the caller gets.

        The write is shielded: the caller's cancellation (a client's deadline passing just as
        the run's own timeout fired) must not leave the record running for ever."""

        async def write() -> None:
            try:
                await self._finish(writer, scope, status, started, meter.total, error=error, error_kind=error_kind)
            except Exception as exc:
                log.error("could not record deliberation %s as %s: %s", writer.record.deliberation_id, status, exc)

        await asyncio.shield(write())

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
            _named_backend([selector], council.settings.backend)
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
        self.statistics.in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self.statistics.in_flight -= 1
            if self.statistics.in_flight == 0:
                self._idle.set()

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
        for name, value in (("created_after", created_after), ("created_before", created_before)):
            if value is not None and not math.isfinite(value):
                raise InvalidRequest(f"{name} must be a finite number of seconds since the Unix epoch")
        if created_after is not None and created_before is not None and created_after > created_before:
            raise InvalidRequest(
                f"created_after ({created_after:g}) is later than created_before ({created_before:g})"
            )
        query = RecordQuery(
            role=checked_role(role),
            status=status,
            created_after=created_after,
            created_before=created_before,
            page_size=page_size,
            page_token=page_token,
        )
        return await self.store.list(query)

    def status(self) -> StatusSnapshot:
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
        )


def _named_backend(agents: list[GuardedAgent], backend: str) -> list[GuardedAgent]:
    """The council's agents, each naming its backend (for errors and failure counts)."""
    for agent in agents:
        if not agent.backend:
            agent.backend = backend
    return agents
