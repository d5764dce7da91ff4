"""The deliberation engine: generate, R rounds of critique and revision, checks, ranking.

Every phase runs its agent calls at once, so the critical path is (1 + 2R) agent calls
plus the slowest proposal's checks. An agent that raises or times out is recorded as a
failure and takes no further part; the council goes on while a quorum remains.
Each agent call is bounded by the agent timeout: the server's, or the task's
``constraints.agent_timeout_seconds`` when that is tighter (the call itself is made by
:func:`~orchestrator_core.agent_calls.call_agent`, as the selection's is). A phase starts
all its calls together, so the same figure bounds each agent phase.
Cancelling the task that awaits :meth:`DeliberationEngine.deliberate` cancels every
agent call and check in flight.

Once the failures of a phase leave fewer agents than the quorum, the phase's other calls
are cancelled at once and :class:`~orchestrator_core.errors.QuorumLost` is raised: the
deliberation cannot go on, so nothing waits on calls whose answers could not be used.

Checks run concurrently, each within its own budget (:mod:`orchestrator_core.check_runs`).

Tokens are counted as each call returns, in a :class:`UsageMeter` the caller may pass in:
a deliberation that fails, is cancelled or times out has still spent them, and the caller
reads them there (a call cut short by a timeout or a cancellation reported nothing).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

from orchestrator_core.agent_calls import (
    AGENT_TIMEOUT_SETTING,
    TASK_AGENT_TIMEOUT,
    AgentCallFailed,
    backend_of,
    call_agent,
)
from orchestrator_core.check_runs import run_check
from orchestrator_core.errors import AgentError, BackendRejected, BackendUnavailable, QuorumLost
from orchestrator_core.events import (
    AgentCallFinished,
    AgentFailed,
    CheckCompleted,
    CritiqueWritten,
    EventSink,
    ProposalGenerated,
    ProposalRevised,
    RankingReady,
    discard_event,
)
from orchestrator_core.hookspecs import Agent, Check, identity_of
from orchestrator_core.journal import Journal
from orchestrator_core.models import (
    AgentCall,
    AgentFailure,
    AgentReply,
    CheckResult,
    Critique,
    DeliberationOutcome,
    Phase,
    Proposal,
    Task,
    TokenUsage,
)
from orchestrator_core.plugin_calls import (
    OffLoopRunner,
    PluginFailureCounters,
    counting_failures,
)
from orchestrator_core.scoring import Scorer, rank
from orchestrator_core.telemetry import NO_TELEMETRY, AgentCallScope, CheckScope, PhaseScope, Telemetry
from orchestrator_core.validation import agent_timeout

T = TypeVar("T")

log = logging.getLogger(__name__)



async def run_concurrently(calls: Sequence[Awaitable[T]]) -> list[T]:
    """Await every call at once; cancelling the caller cancels them all."""
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(_as_coroutine(call)) for call in calls]
    return [task.result() for task in tasks]


async def _as_coroutine(call: Awaitable[T]) -> T:
    return await call


class UsageMeter:
    """The tokens one deliberation has spent so far, for the caller to read however it ends."""

    def __init__(self) -> None:
        self.total = TokenUsage()

    def add(self, usage: TokenUsage) -> None:
        self.total += usage


class _QuorumGone(Exception):
    """Raised inside a phase by the call whose failure lost the quorum; cancels the rest."""


@dataclass
class _Member:
    agent: Agent
    model: str = ""
    """The model the agent was configured with, for its calls' records and telemetry."""
    proposal: Proposal | None = None
    active: bool = True

    @property
    def agent_id(self) -> str:
        return self.agent.agent_id


@dataclass(frozen=True)
class DeliberationEngine:
    checks: Sequence[Check]
    scorer: Scorer
    quorum: int = 1
    agent_timeout_seconds: float = 180.0
    check_timeout_seconds: float = 120.0
    heavy_check_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(2))
    failures: PluginFailureCounters = field(default_factory=PluginFailureCounters)
    """Failures of the plugins' calls, per plugin object (bugs, timeouts, errors)."""
    off_loop: OffLoopRunner = field(default_factory=OffLoopRunner)
    """Runs the blocking checks, each in a daemon thread of its own."""
    telemetry: Telemetry = NO_TELEMETRY
    """Told of each phase, agent call and check (metrics, traces, logs)."""

    async def deliberate(
        self,
        task: Task,
        agents: Sequence[Agent],
        rounds: int,
        *,
        deliberation_id: str = "",
        on_event: EventSink = discard_event,
        usage: UsageMeter | None = None,
        journal: Journal | None = None,
    ) -> DeliberationOutcome:
        """Run one deliberation to its ranking. Raises QuorumLost when too few agents remain.

        ``usage``, when given (a fresh meter per deliberation), counts the tokens spent as
        calls return, so they are known even when this raises or is cancelled. ``journal``,
        when given, holds what an earlier run of the same deliberation completed: those agent
        calls and checks are not made again.
        """
        run = _Run(self, task, agents, deliberation_id or uuid.uuid4().hex, on_event, usage or UsageMeter())
        with counting_failures(self.failures):
            return await run.execute(rounds)


class _Run:
    """The state of one deliberation while it runs."""

    def __init__(
        self,
        engine: DeliberationEngine,
        task: Task,
        agents: Sequence[Agent],
        deliberation_id: str,
        on_event: EventSink,
        meter: UsageMeter,
    ) -> None:
        if not agents:
            raise ValueError("a deliberation needs at least one agent")
        self.engine = engine
        self.task = task
        self.deliberation_id = deliberation_id
        self.emit = on_event
        self.members = [_Member(agent, identity_of(agent).model) for agent in agents]
        self.quorum = min(engine.quorum, len(agents))
        self.agent_timeout = agent_timeout(task, engine.agent_timeout_seconds)
        self.agent_timeout_setting = (
            AGENT_TIMEOUT_SETTING if self.agent_timeout >= engine.agent_timeout_seconds else TASK_AGENT_TIMEOUT
        )
        self.bugs: list[str] = []
        """The backends whose bug failed an agent."""
        self.failures: list[AgentFailure] = []
        self.causes: list[AgentError | None] = []
        self.meter = meter
        self.telemetry = engine.telemetry

    def _phase(self, phase: str, round_number: int = 0) -> AbstractContextManager[None]:
        return self.telemetry.phase(PhaseScope(self.deliberation_id, self.task.role, phase, round_number))

    async def execute(self, rounds: int) -> DeliberationOutcome:
        started = time.monotonic()
        with self._phase("generate"):
            await self._generate()
        rounds_run = 0
        for round_number in range(1, rounds + 1):
            if len(self._active()) < 2:
                break  # nobody left to critique a peer
            with self._phase("critique", round_number):
                feedback = await self._critique(round_number)
            with self._phase("revise", round_number):
                await self._revise(round_number, feedback)
            rounds_run = round_number
        with self._phase("check"):
            judged = await self._check_all()
        outcome = DeliberationOutcome(
            deliberation_id=self.deliberation_id,
            task=self.task,
            results=rank(judged, self.engine.scorer),
            failures=tuple(self.failures),
            usage=self.meter.total,
            duration_seconds=time.monotonic() - started,
            rounds=rounds_run,
        )
        self.emit(RankingReady(outcome))
        return outcome

    # -- phases ---------------------------------------------------------------

    async def _generate(self) -> None:
        members = self._active()
        replies = await self._run_phase(
            [self._call(m, Phase.GENERATE, 0, partial(m.agent.generate, self.task)) for m in members]
        )
        for member, reply in zip(members, replies, strict=True):
            if reply is not None:
                member.proposal = self._proposal(member, reply, revision=0)
                self.emit(ProposalGenerated(member.proposal))
        self._require_quorum()

    async def _critique(self, round_number: int) -> dict[str, list[Critique]]:
        ring = self._active()
        pairs = [(ring[i], ring[(i + 1) % len(ring)]) for i in range(len(ring))]
        replies = await self._run_phase(
            [
                self._call(critic, Phase.CRITIQUE, round_number,
                           partial(critic.agent.critique, self.task, _proposal_of(author)))
                for critic, author in pairs
            ]
        )
        feedback: dict[str, list[Critique]] = {}
        for (critic, author), reply in zip(pairs, replies, strict=True):
            if reply is None:
                continue
            critique = Critique(
                critic_id=critic.agent_id,
                proposal_id=_proposal_of(author).proposal_id,
                author_id=author.agent_id,
                content=reply.text,
                round=round_number,
            )
            feedback.setdefault(author.agent_id, []).append(critique)
            self.emit(CritiqueWritten(critique))
        self._require_quorum()
        return feedback

    async def _revise(self, round_number: int, feedback: dict[str, list[Critique]]) -> None:
        authors = [m for m in self._active() if feedback.get(m.agent_id)]
        replies = await self._run_phase(
            [
                self._call(m, Phase.REVISE, round_number,
                           partial(m.agent.revise, self.task, _proposal_of(m), tuple(feedback[m.agent_id])))
                for m in authors
            ]
        )
        for member, reply in zip(authors, replies, strict=True):
            if reply is not None:
                member.proposal = self._proposal(
                    member, reply, revision=_proposal_of(member).revision + 1
                )
                self.emit(ProposalRevised(member.proposal))
        self._require_quorum()

    async def _run_phase(self, calls: Sequence[Awaitable[AgentReply | None]]) -> list[AgentReply | None]:
        """All of one phase's calls at once; when a failure loses the quorum, the rest are
        cancelled and QuorumLost is raised."""
        lost = False
        try:
            replies = await run_concurrently(calls)
        except* _QuorumGone:
            lost = True
        if lost:
            self._require_quorum()
            raise AssertionError("unreachable: the quorum was lost")  # pragma: no cover
        return replies

    async def _check_all(self) -> list[tuple[Proposal, tuple[CheckResult, ...]]]:
        proposals = [m.proposal for m in self.members if m.proposal is not None]
        calls = [self._check(check, proposal) for proposal in proposals for check in self.engine.checks]
        results = await run_concurrently(calls)
        per_proposal = len(self.engine.checks)
        return [
            (proposal, tuple(results[i * per_proposal:(i + 1) * per_proposal]))
            for i, proposal in enumerate(proposals)
        ]

    # -- one call -------------------------------------------------------------

    async def _call(
        self,
        member: _Member,
        phase: Phase,
        round_number: int,
        call: Callable[[], Awaitable[AgentReply]],
    ) -> AgentReply | None:
        """One agent call (see :func:`~orchestrator_core.agent_calls.call_agent`); a failure
        is recorded, never raised, unless it loses the quorum."""
        scope = AgentCallScope(
            self.deliberation_id, self.task.role, member.agent_id, backend_of(member.agent), member.model,
            phase, round_number, task=self.task.description,
        )
        try:
            reply = await call_agent(
                member.agent, phase, call, timeout_seconds=self.agent_timeout, round_number=round_number,
                timeout_setting=self.agent_timeout_setting, telemetry=self.telemetry, scope=scope,
                on_call=self._call_finished,
            )
        except AgentCallFailed as failed:
            self.meter.add(failed.usage)  # spent, even though the reply was unusable
            member.active = False
            if failed.plugin_bug:
                self.bugs.append(backend_of(member.agent))
            self.failures.append(failed.failure)
            self.causes.append(failed.cause)
            self.emit(AgentFailed(failed.failure))
            if len(self._active()) < self.quorum:
                raise _QuorumGone from None
            return None
        self.meter.add(reply.usage)
        return reply

    def _call_finished(self, call: AgentCall) -> None:
        self.emit(AgentCallFinished(call))

    async def _check(self, check: Check, proposal: Proposal) -> CheckResult:
        """One check of one proposal, within its own budget; a check that raises, returns
        no usable result or times out fails the proposal (that check only)."""
        scope = CheckScope(self.deliberation_id, self.task.role, check.name, check.kind, proposal.proposal_id)
        with self.telemetry.check(scope):
            result, started_at = await run_check(
                check, self.task, proposal, scope, timeout_seconds=self.engine.check_timeout_seconds,
                heavy_slots=self.engine.heavy_check_slots, off_loop=self.engine.off_loop,
            )
        self.emit(CheckCompleted(proposal.proposal_id, result, started_at, time.time()))
        return result

    # -- bookkeeping ----------------------------------------------------------

    def _active(self) -> list[_Member]:
        return [m for m in self.members if m.active]

    def _proposal(self, member: _Member, reply: AgentReply, revision: int) -> Proposal:
        return Proposal(
            proposal_id=f"{member.agent_id}-v{revision}",
            author_id=member.agent_id,
            role=self.task.role,
            content=reply.text,
            revision=revision,
            truncated=reply.truncated,
        )

    def _require_quorum(self) -> None:
        active = len(self._active())
        if active >= self.quorum:
            return
        total = len(self.members)
        summary = (
            f"{total - active} of {total} agents failed, leaving {active}, "
            f"below the quorum of {self.quorum}"
        )
        if self.bugs:
            details = "; ".join(f"{f.agent_id} in {f.phase.value}: {f.error}" for f in self.failures)
            backends = ", ".join(repr(b) for b in sorted(set(self.bugs)))
            raise QuorumLost(
                f"{summary}, because of a bug in the code of backend {backends}; see the service log: "
                f"{details}",
                plugin_bug=True,
            )
        cause = _common_cause(self.causes)
        if cause is not None:
            raise QuorumLost(f"{cause} ({summary})", cause=cause)
        details = "; ".join(f"{f.agent_id} in {f.phase.value}: {f.error}" for f in self.failures)
        raise QuorumLost(f"{summary}: {details}")


def _proposal_of(member: _Member) -> Proposal:
    if member.proposal is None:  # pragma: no cover - active members always have one
        raise RuntimeError(f"{member.agent_id} has no proposal")
    return member.proposal


def _common_cause(causes: Sequence[AgentError | None]) -> AgentError | None:
    """The error every failure shares in kind (e.g. the backend is down), if there is one."""
    if not causes or any(c is None for c in causes):
        return None
    for family in (BackendUnavailable, BackendRejected):
        if all(isinstance(c, family) for c in causes):
            return causes[0]
    return None
