"""The deliberation engine: generate, R rounds of critique and revision, checks, ranking.

Every phase runs its agent calls at once, so the critical path is (1 + 2R) agent calls
plus the slowest proposal's checks. An agent that raises or times out is recorded as a
failure and takes no further part; the council goes on while a quorum remains.
Each agent call is bounded by the agent timeout: the server's, or the task's
``constraints.agent_timeout_seconds`` when that is tighter (the call itself is made as
:func:`~orchestrator_core.agent_calls.call_agent` makes the selection's). A phase starts
all its calls together, so the same figure bounds each agent phase, and one deadline ends
the calls still running then (:class:`~orchestrator_core.phase_calls.PhaseCalls`).
Cancelling the task that awaits :meth:`DeliberationEngine.deliberate` cancels every
agent call and check in flight.

Once the failures of a phase leave fewer agents than the quorum, the phase's other calls
are cancelled at once and :class:`~orchestrator_core.errors.QuorumLost` is raised: the
deliberation cannot go on, so nothing waits on calls whose answers could not be used.

Checks run concurrently, each within its own budget (:mod:`orchestrator_core.check_runs`).

Tokens are counted as each call returns, in a :class:`UsageMeter` the caller may pass in:
a deliberation that fails, is cancelled or times out has still spent them, and the caller
reads them there (a call cut short by a timeout or a cancellation reported nothing).

The calls of each phase are made by :class:`~orchestrator_core.phase_calls.PhaseCalls`: each
call's product is emitted as the call ends, so the record holds every completed call even when
the run stops mid-phase; a ``checkpoint`` the caller gives is awaited after each completed call
and check, before its result is used, to make that record durable. A run given a
:class:`~orchestrator_core.journal.Journal` (what an earlier run of the same deliberation
completed, read back from its record) takes each journaled reply, failure and check result
as if it had just been made, without making it or emitting it again (the record has it), so
a resumed deliberation ends as it would have without the interruption.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from orchestrator_core.check_runs import run_check
from orchestrator_core.events import (
    CheckCompleted,
    CritiqueWritten,
    DeliberationEvent,
    EventSink,
    ProposalGenerated,
    ProposalRevised,
    RankingReady,
    discard_event,
)
from orchestrator_core.hookspecs import Agent, Check
from orchestrator_core.journal import Journal
from orchestrator_core.models import (
    AgentReply,
    CheckResult,
    Critique,
    DeliberationOutcome,
    Phase,
    Proposal,
    Task,
)
from orchestrator_core.phase_calls import Checkpoint, Member, PhaseCalls, UsageMeter, run_concurrently
from orchestrator_core.plugin_calls import (
    OffLoopRunner,
    PluginFailureCounters,
    counting_failures,
)
from orchestrator_core.scoring import Scorer, rank
from orchestrator_core.telemetry import NO_TELEMETRY, NOTHING, CheckScope, PhaseScope, Telemetry

__all__ = ["Checkpoint", "DeliberationEngine", "UsageMeter", "run_concurrently"]

NO_JOURNAL = Journal()


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
        checkpoint: Checkpoint | None = None,
    ) -> DeliberationOutcome:
        """Run one deliberation to its ranking. Raises QuorumLost when too few agents remain.

        ``usage``, when given (a fresh meter per deliberation), counts the tokens spent as
        calls return, so they are known even when this raises or is cancelled; a journaled
        call counts what it cost when it was made. ``journal``, when given, holds what an
        earlier run of the same deliberation completed: those agent calls and checks are not
        made again, nor their events emitted. ``checkpoint``, when given, is awaited after
        each completed agent call and check (its events emitted), before its result is used;
        an error it raises ends the run with that error.
        """
        deliberation_id = deliberation_id or new_deliberation_id()
        calls = PhaseCalls(
            deliberation_id,
            task,
            agents,
            quorum=self.quorum,
            timeout_seconds=self.agent_timeout_seconds,
            telemetry=self.telemetry,
            emit=on_event,
            meter=usage or UsageMeter(),
            journal=journal or NO_JOURNAL,
            checkpoint=checkpoint,
        )
        try:
            with counting_failures(self.failures):
                return await _Run(self, calls).execute(rounds)
        finally:
            calls.close()


def new_deliberation_id() -> str:
    """A random (version 4) UUID's 32 hex digits, as ``uuid.uuid4().hex`` gives them, without
    building the UUID object (a quarter of the cost)."""
    number = int.from_bytes(os.urandom(16), "big")
    number = (number & ~(0xF000 << 64) & ~(0xC000 << 48)) | (0x4000 << 64) | (0x8000 << 48)
    return f"{number:032x}"


class _Run:
    """One deliberation while it runs: its phases in order, and what each reply makes."""

    def __init__(self, engine: DeliberationEngine, calls: PhaseCalls) -> None:
        self.engine = engine
        self.calls = calls
        self.task = calls.task
        self.deliberation_id = calls.deliberation_id
        self.telemetry = engine.telemetry

    async def execute(self, rounds: int) -> DeliberationOutcome:
        started = time.monotonic()
        with self._phase("generate"):
            await self._generate()
        rounds_run = 0
        for round_number in range(1, rounds + 1):
            if self.calls.active_count < 2:
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
            failures=tuple(self.calls.failures),
            usage=self.calls.meter.total,
            duration_seconds=time.monotonic() - started,
            rounds=rounds_run,
        )
        self.calls.emit(RankingReady(outcome))
        return outcome

    def _phase(self, phase: str, round_number: int = 0) -> AbstractContextManager[None]:
        if self.telemetry is NO_TELEMETRY:  # observes nothing: no scope to fill in
            return NOTHING
        return self.telemetry.phase(PhaseScope(self.deliberation_id, self.task.role, phase, round_number))

    # -- phases ---------------------------------------------------------------

    # Each phase gives its calls one function that makes a member's call and one that takes
    # its reply in (nothing built per call to say which call it is).

    async def _generate(self) -> None:
        task = self.task

        def generate(member: Member) -> Awaitable[AgentReply]:
            return member.agent.generate(task)

        def generated(member: Member, reply: AgentReply) -> DeliberationEvent:
            member.proposal = self._proposal(member, reply, revision=0)
            return ProposalGenerated(member.proposal)

        await self.calls.run(Phase.GENERATE, 0, self.calls.active(), generate, generated)
        self.calls.require_quorum()

    async def _critique(self, round_number: int) -> dict[str, list[Critique]]:
        task = self.task
        ring = self.calls.active()
        author_of = {critic.agent_id: ring[(i + 1) % len(ring)] for i, critic in enumerate(ring)}
        written: dict[str, Critique] = {}

        def critique(critic: Member) -> Awaitable[AgentReply]:
            return critic.agent.critique(task, author_of[critic.agent_id].latest)

        def critiqued(critic: Member, reply: AgentReply) -> DeliberationEvent:
            author = author_of[critic.agent_id]
            written[critic.agent_id] = made = Critique(
                critic.agent_id, author.latest.proposal_id, author.agent_id, reply.text, round_number
            )
            return CritiqueWritten(made)

        await self.calls.run(Phase.CRITIQUE, round_number, ring, critique, critiqued)
        feedback: dict[str, list[Critique]] = {}
        for critic in ring:  # in the ring's order, whatever order the critiques came in
            if critic.agent_id in written:
                feedback.setdefault(author_of[critic.agent_id].agent_id, []).append(written[critic.agent_id])
        self.calls.require_quorum()
        return feedback

    async def _revise(self, round_number: int, feedback: dict[str, list[Critique]]) -> None:
        task = self.task

        def revise(member: Member) -> Awaitable[AgentReply]:
            return member.agent.revise(task, member.latest, tuple(feedback[member.agent_id]))

        def revised(member: Member, reply: AgentReply) -> DeliberationEvent:
            member.proposal = self._proposal(member, reply, revision=member.latest.revision + 1)
            return ProposalRevised(member.proposal)

        authors = [m for m in self.calls.active() if feedback.get(m.agent_id)]
        await self.calls.run(Phase.REVISE, round_number, authors, revise, revised)
        self.calls.require_quorum()

    async def _check_all(self) -> list[tuple[Proposal, tuple[CheckResult, ...]]]:
        proposals = [m.proposal for m in self.calls.members if m.proposal is not None]
        checks = [self._check(check, proposal) for proposal in proposals for check in self.engine.checks]
        results = await self.calls.concurrently(checks)
        per_proposal = len(self.engine.checks)
        return [
            (proposal, tuple(results[i * per_proposal : (i + 1) * per_proposal]))
            for i, proposal in enumerate(proposals)
        ]

    async def _check(self, check: Check, proposal: Proposal) -> CheckResult:
        """One check of one proposal, within its own budget; a check that raises, returns
        no usable result or times out fails the proposal (that check only). A journaled
        result is taken as it is."""
        journaled = self.calls.journal.check(proposal.proposal_id, check.name)
        if journaled is not None:
            return journaled  # its event is in the record already
        scope = CheckScope(self.deliberation_id, self.task.role, check.name, check.kind, proposal.proposal_id)
        with self.telemetry.check(scope):
            result, started_at = await run_check(
                check,
                self.task,
                proposal,
                scope,
                timeout_seconds=self.engine.check_timeout_seconds,
                heavy_slots=self.engine.heavy_check_slots,
                off_loop=self.engine.off_loop,
            )
        self.calls.emit(CheckCompleted(proposal.proposal_id, result, started_at, time.time()))
        await self.calls.checkpoint_reached()
        return result

    def _proposal(self, member: Member, reply: AgentReply, revision: int) -> Proposal:
        # positional: built for every reply
        return Proposal(
            f"{member.agent_id}-v{revision}", member.agent_id, self.task.role, reply.text, revision, reply.truncated
        )
