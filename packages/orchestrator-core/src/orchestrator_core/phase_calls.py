"""The agent calls of a deliberation's phases: made at once, each product emitted as its call
ends, failures taking their agent out while a quorum remains; journaled calls taken instead
of made; a checkpoint awaited after each completed call.

A phase's calls start together; the one whose failure leaves fewer agents than the quorum
cancels the others and :class:`~orchestrator_core.errors.QuorumLost` is raised. Each call's
product (what the phase's :data:`Made` takes into the deliberation: a proposal, a critique) or its
failure is emitted right after the call itself, so a record following the events holds every
completed call even when the run stops mid-phase, and the checkpoint (e.g.
:meth:`~orchestrator_core.records.writer.RecordWriter.flush`) makes it durable before the
result is used. A call in the :class:`~orchestrator_core.journal.Journal` is not made: its
reply or failure is taken as the original was, and nothing is emitted (the record has it).

Each call is made as :func:`~orchestrator_core.agent_calls.call_agent` makes one (its checks
of the reply and its failures are the same functions), with two differences that cost less per
call: a phase's calls, which start together with the same timeout, share one deadline
(:class:`~orchestrator_core.deadlines.SharedDeadline`, one timer for the deliberation's phases
in turn) instead of a :class:`~orchestrator_core.plugin_calls.Budget` each, and each call is
one coroutine in a task of its own.
"""

from __future__ import annotations

import asyncio
import time
from asyncio import current_task
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import NoReturn, TypeVar

from orchestrator_core.agent_calls import (
    AGENT_TIMEOUT_SETTING,
    TASK_AGENT_TIMEOUT,
    AgentCallFailed,
    accepted,
    backend_of,
    failure_of,
    named_call,
    record_of,
)
from orchestrator_core.deadlines import SharedDeadline, call_deadline
from orchestrator_core.errors import AgentError
from orchestrator_core.events import AgentCallFinished, AgentFailed, DeliberationEvent, EventSink
from orchestrator_core.hookspecs import Agent, identity_of
from orchestrator_core.journal import Journal, JournaledCall
from orchestrator_core.models import AgentFailure, AgentReply, Phase, Proposal, Task, TokenUsage
from orchestrator_core.plugin_calls import entered, left
from orchestrator_core.quorum import quorum_lost
from orchestrator_core.telemetry import AgentCallScope, Telemetry
from orchestrator_core.validation import agent_timeout

T = TypeVar("T")

Checkpoint = Callable[[], Awaitable[None]]
"""Makes what the events so far told durable (e.g. :meth:`RecordWriter.flush`)."""


async def run_concurrently(calls: Sequence[Awaitable[T]]) -> list[T]:
    """Await every call at once; cancelling the caller cancels them all."""
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(call if asyncio.iscoroutine(call) else _as_coroutine(call)) for call in calls]
    return [task.result() for task in tasks]


async def _as_coroutine(call: Awaitable[T]) -> T:
    return await call


class UsageMeter:
    """The tokens one deliberation has spent so far, for the caller to read however it ends.

    It sums plain counts (a :class:`TokenUsage` per call added would be built and dropped
    at every call) and makes the total when read."""

    __slots__ = ("_completion", "_prompt")

    def __init__(self) -> None:
        self._prompt = self._completion = 0

    @property
    def total(self) -> TokenUsage:
        return TokenUsage(self._prompt, self._completion)

    def add(self, usage: TokenUsage) -> None:
        self._prompt += usage.prompt_tokens
        self._completion += usage.completion_tokens


@dataclass
class Member:
    """One agent of the council, its latest proposal, and whether it still takes part."""

    agent: Agent
    model: str = ""
    """The model the agent was configured with, for its calls' records and telemetry."""
    backend: str = ""
    """The backend that made the agent (:func:`backend_of`), named by its calls."""
    proposal: Proposal | None = None
    active: bool = True
    agent_id: str = field(init=False)
    """The agent's id (read a few times per call: kept rather than asked of the agent)."""

    def __post_init__(self) -> None:
        self.agent_id = self.agent.agent_id

    @property
    def latest(self) -> Proposal:
        if self.proposal is None:  # pragma: no cover - active members always have one
            raise RuntimeError(f"{self.agent_id} has no proposal")
        return self.proposal


CallOf = Callable[[Member], Awaitable[AgentReply]]
"""A phase's agent call, made for each member in turn (e.g. ``member.agent.generate(task)``)."""

Made = Callable[[Member, AgentReply], DeliberationEvent]
"""Takes a member's reply into the deliberation (its proposal, the feedback) and returns the
event saying so. A phase has one for all its calls, as it has one :data:`CallOf`: nothing is
built per call to say what the call is."""


class _QuorumGone(Exception):
    """Raised inside a phase by the call whose failure lost the quorum; cancels the rest."""


class _CheckpointFailed(Exception):
    """Raised inside a phase when the checkpoint failed (its error is the cause); cancels the
    rest, and the checkpoint's own error leaves the run."""


class PhaseCalls:
    """The council of one deliberation and the calls its phases make."""

    def __init__(
        self,
        deliberation_id: str,
        task: Task,
        agents: Sequence[Agent],
        *,
        quorum: int,
        timeout_seconds: float,
        telemetry: Telemetry,
        emit: EventSink,
        meter: UsageMeter,
        journal: Journal,
        checkpoint: Checkpoint | None,
    ) -> None:
        if not agents:
            raise ValueError("a deliberation needs at least one agent")
        self.deliberation_id = deliberation_id
        self.task = task
        self._role, self._text = task.role, task.description
        self.members = [Member(agent, identity_of(agent).model, backend_of(agent)) for agent in agents]
        self.active_count = len(self.members)
        """How many members still take part (kept as they are taken out: read after every phase)."""
        self.quorum = min(quorum, len(agents))
        self.timeout = agent_timeout(task, timeout_seconds)
        self.timeout_setting = AGENT_TIMEOUT_SETTING if self.timeout >= timeout_seconds else TASK_AGENT_TIMEOUT
        self.telemetry = telemetry
        self.emit = emit
        self.meter = meter
        self.journal = journal
        self.checkpoint = checkpoint
        self.failures: list[AgentFailure] = []
        self.causes: list[AgentError | None] = []
        self.bugs: list[str] = []
        """The backends whose bug failed an agent."""
        self._bound: SharedDeadline | None = None
        """The phases' deadline (one after another, each phase restarts it)."""

    def active(self) -> list[Member]:
        return [m for m in self.members if m.active]

    def require_quorum(self) -> None:
        active = self.active_count
        if active < self.quorum:
            raise quorum_lost(
                self.failures, self.causes, self.bugs, total=len(self.members), active=active, quorum=self.quorum
            )

    async def run(self, phase: Phase, round_number: int, members: Sequence[Member], call: CallOf, made: Made) -> None:
        """All of one phase's calls at once; when a failure loses the quorum, the rest are
        cancelled and QuorumLost is raised. Journaled calls are taken first, in the order
        they ended, as they ended before the calls still to make."""
        to_make = members
        if self.journal.calls:  # a resumed run: some calls may be journaled
            entries = [(self.journal.call(m.agent_id, phase, round_number), m) for m in members]
            done = sorted(((e, m) for e, m in entries if e is not None), key=lambda pair: pair[0].position)
            for entry, member in done:
                self._replay(member, made, entry)
            to_make = [m for e, m in entries if e is None]
        if not to_make:
            return
        # The calls start together with the same timeout: one deadline ends those still
        # running then (what a Budget per call would do), and their tasks inherit the
        # backends' deadline from here (they copy the context as they are created).
        bound = self._bound
        if bound is None:
            bound = self._bound = SharedDeadline(self.timeout)
        else:
            bound.restart(self.timeout)
        try:
            with call_deadline(self.timeout):
                async with asyncio.TaskGroup() as group:
                    for member in to_make:
                        bound.watch(group.create_task(self._call(member, call, made, phase, round_number, bound)))
        except BaseExceptionGroup as group:
            self._raise_from(group)

    def close(self) -> None:
        """The deliberation is over: its phases' deadline timer is stopped."""
        if self._bound is not None:
            self._bound.close()

    async def concurrently(self, calls: Sequence[Awaitable[T]]) -> list[T]:
        """:func:`run_concurrently`, with a lost quorum raised as QuorumLost and a failed
        checkpoint as its own error."""
        if not calls:
            return []
        try:
            return await run_concurrently(calls)
        except BaseExceptionGroup as group:
            self._raise_from(group)

    def _raise_from(self, group: BaseExceptionGroup[BaseException]) -> NoReturn:
        """What a phase's failed task group means: a failed checkpoint's own error, a lost
        quorum as QuorumLost, anything else as it is."""
        checkpoint, _ = group.split(_CheckpointFailed)
        if checkpoint is not None:
            failed = _first(checkpoint)
            raise (failed.__cause__ or failed) from None
        _, rest = group.split(_QuorumGone)
        if rest is not None:
            raise rest from None
        self.require_quorum()
        raise AssertionError("unreachable: the quorum was lost") from None  # pragma: no cover

    async def checkpoint_reached(self) -> None:
        """Await the checkpoint, if there is one; its failure ends the phase."""
        if self.checkpoint is None:
            return
        try:
            await self.checkpoint()
        except Exception as exc:
            raise _CheckpointFailed from exc

    async def _call(
        self, member: Member, call: CallOf, made: Made, phase: Phase, round_number: int, bound: SharedDeadline
    ) -> None:
        """One agent call, made as :func:`~orchestrator_core.agent_calls.call_agent` makes
        it, within the phase's deadline (``bound``), its product emitted as it ends; a failure
        is recorded, never raised, unless it loses the quorum.

        One coroutine for the whole call (not this, ``call_agent`` and its attempt nested):
        its task is its own, so it names the running plugin call for the watchdog by its task."""
        scope = AgentCallScope(
            self.deliberation_id,
            self._role,
            member.agent_id,
            member.backend,
            member.model,
            phase,
            round_number,
            self._text,  # positional: it is built for every call
        )
        task = current_task()
        assert task is not None  # a task of the phase's group
        started = time.time()
        failed: AgentCallFailed | None = None
        try:
            with self.telemetry.agent_call(scope):
                entered(task, partial(named_call, scope))
                try:
                    try:
                        reply = await call(member)
                    finally:
                        left(task)
                        timed_out = bound.release(task)
                    if timed_out:  # it caught the deadline's cancellation and answered late
                        raise TimeoutError
                    reply = accepted(reply, scope)
                except asyncio.CancelledError:
                    if not timed_out:
                        raise
                    failed = failure_of(member.agent, TimeoutError(), scope, self.timeout, self.timeout_setting)
                except Exception as exc:
                    failed = failure_of(member.agent, exc, scope, self.timeout, self.timeout_setting)
        finally:
            self.emit(AgentCallFinished(record_of(scope, started)))
        if failed is not None:
            self.meter.add(failed.usage)  # spent, even though the reply was unusable
            self._take_out(member, failed.failure, failed.cause, plugin_bug=failed.plugin_bug)
            self.emit(AgentFailed(failed.failure))
            if self.checkpoint is not None:
                await self.checkpoint_reached()
            if self.active_count < self.quorum:
                raise _QuorumGone from None
            return
        self.meter.add(reply.usage)
        self.emit(made(member, reply))
        if self.checkpoint is not None:
            await self.checkpoint_reached()

    def _replay(self, member: Member, made: Made, entry: JournaledCall) -> None:
        """A journaled call, taken as the original was: its reply used, or its failure taking
        the agent out (QuorumLost when that loses the quorum, as it did then)."""
        self.meter.add(entry.call.usage)
        if isinstance(entry.result, AgentFailure):
            self._take_out(member, entry.result, None, plugin_bug=entry.plugin_bug)
            self.require_quorum()
            return
        made(member, entry.result)  # its event is in the record already

    def _take_out(self, member: Member, failure: AgentFailure, cause: AgentError | None, *, plugin_bug: bool) -> None:
        if member.active:
            member.active = False
            self.active_count -= 1
        if plugin_bug:
            self.bugs.append(backend_of(member.agent))
        self.failures.append(failure)
        self.causes.append(cause)


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first exception a (possibly nested) group holds."""
    found: BaseException = group
    while isinstance(found, BaseExceptionGroup):
        found = found.exceptions[0]
    return found
