"""One path for every agent call: a council member's and a selector's calls are bounded, see
their deadline, report a timeout to their breaker and fail into the same record."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from orchestrator_core.agent_calls import AgentCallFailed, call_agent
from orchestrator_core.deadlines import seconds_left
from orchestrator_core.deliberation import DeliberationEngine
from orchestrator_core.errors import AgentError
from orchestrator_core.models import (
    AgentFailure,
    AgentReply,
    Critique,
    Phase,
    Proposal,
    RankedProposal,
    Task,
    TokenUsage,
)
from orchestrator_core.scoring import Scorer
from orchestrator_core.selection import select_winner
from orchestrator_core.testing import ScriptedAgent

TASK = Task(role="DEV", description="anything")


async def hang() -> Any:
    await asyncio.Event().wait()


def returning(value: object) -> Callable[[], Awaitable[Any]]:
    async def reply() -> Any:
        return value

    return reply


def raising(error: Exception) -> Callable[[], Awaitable[Any]]:
    async def reply() -> Any:
        raise error

    return reply


@dataclass
class ProbeAgent:
    """A test double behind a breaker: every call does ``behaviour`` and notes the deadline
    it saw; ``on_timeout`` counts what a circuit breaker would be told."""

    agent_id: str
    behaviour: Callable[[], Awaitable[Any]]
    deadlines: list[float | None] = field(default_factory=list)
    timeouts: int = 0

    def on_timeout(self) -> None:
        self.timeouts += 1

    async def generate(self, task: Task) -> AgentReply:
        return await self._call()

    async def critique(self, task: Task, proposal: Proposal) -> AgentReply:
        return await self._call()

    async def revise(self, task: Task, proposal: Proposal, feedback: Sequence[Critique]) -> AgentReply:
        return await self._call()

    async def select(self, task: Task, candidates: Sequence[Proposal]) -> AgentReply:
        return await self._call()

    async def _call(self) -> AgentReply:
        self.deadlines.append(seconds_left())
        reply: AgentReply = await self.behaviour()
        return reply


BUG = "[a bug in backend 'ProbeAgent' (agent dev-2 critique); see the service log]"


@pytest.mark.parametrize(
    ("behaviour", "error", "usage"),
    [
        (raising(AgentError("rate limited")), "rate limited", TokenUsage()),
        (raising(KeyError("model")), "KeyError: 'model' " + BUG, TokenUsage()),
        (returning("just text"), "TypeError: returned str, not an AgentReply " + BUG, TokenUsage()),
        (returning(AgentReply("  \n", TokenUsage(3, 2))), "returned an empty reply", TokenUsage(3, 2)),
    ],
)
async def test_a_failed_call_becomes_the_failure_the_record_keeps(
    behaviour: Callable[[], Awaitable[Any]], error: str, usage: TokenUsage
) -> None:
    agent = ProbeAgent("dev-2", behaviour)
    with pytest.raises(AgentCallFailed) as raised:
        await agent_call(agent, timeout_seconds=5)
    assert raised.value.failure == AgentFailure("dev-2", Phase.CRITIQUE, error, round=2)
    assert raised.value.usage == usage
    assert agent.timeouts == 0


async def test_only_the_agents_own_error_is_its_cause() -> None:
    cause = AgentError("rate limited")
    for behaviour, expected in ((raising(cause), cause), (raising(RuntimeError("bug")), None)):
        with pytest.raises(AgentCallFailed) as raised:
            await agent_call(ProbeAgent("dev-1", behaviour), timeout_seconds=5)
        assert raised.value.cause is expected


async def test_a_call_sees_its_deadline_and_a_timeout_is_reported_to_the_breaker() -> None:
    answering = ProbeAgent("dev-1", returning(AgentReply("fine", TokenUsage(1, 1))))
    assert await agent_call(answering, timeout_seconds=5) == AgentReply("fine", TokenUsage(1, 1))
    [deadline] = answering.deadlines
    assert deadline is not None
    assert 0 < deadline <= 5
    assert seconds_left() is None  # the deadline is the call's alone

    hanging = ProbeAgent("dev-1", hang)
    with pytest.raises(AgentCallFailed, match=r"^timed out after 0\.05s \(backend 'ProbeAgent', agent dev-1 critique; "
                       r"bound: ORCH_AGENT_TIMEOUT_SECONDS\)$"):
        await agent_call(hanging, timeout_seconds=0.05)
    assert hanging.timeouts == 1


async def agent_call(agent: ProbeAgent, *, timeout_seconds: float) -> AgentReply:
    return await call_agent(
        agent, Phase.CRITIQUE, lambda: agent.critique(TASK, PROPOSAL), timeout_seconds=timeout_seconds, round_number=2
    )


PROPOSAL = Proposal("dev-1-v0", "dev-1", "DEV", "by dev-1")
CANDIDATES = tuple(
    RankedProposal(Proposal(f"dev-{i}-v0", f"dev-{i}", "DEV", f"by dev-{i}"), (), 1 - i / 10, i, viable=True)
    for i in (1, 2)
)


async def test_a_council_member_and_a_selector_time_out_the_same_way() -> None:
    member = ProbeAgent("dev-2", hang)
    engine = DeliberationEngine(checks=(), scorer=Scorer(), quorum=1, agent_timeout_seconds=0.05)
    outcome = await engine.deliberate(TASK, [ScriptedAgent("dev-1"), member], rounds=0)

    selector = ProbeAgent("architect-1", hang)
    selection = await select_winner(TASK, CANDIDATES, selector, top_k=2, timeout_seconds=0.05)

    bound = "bound: ORCH_AGENT_TIMEOUT_SECONDS"
    assert outcome.failures == (
        AgentFailure(
            "dev-2", Phase.GENERATE, f"timed out after 0.05s (backend 'ProbeAgent', agent dev-2 generate; {bound})"
        ),
    )
    assert selection.failure == AgentFailure(
        "architect-1", Phase.SELECT, f"timed out after 0.05s (backend 'ProbeAgent', agent architect-1 select; {bound})"
    )
    for agent in (member, selector):
        assert agent.timeouts == 1
        [deadline] = agent.deadlines
        assert deadline is not None
        assert deadline <= 0.05


async def test_a_selector_with_an_empty_reply_failed_and_its_tokens_still_count() -> None:
    selector = ProbeAgent("architect-1", returning(AgentReply("", TokenUsage(4, 0))))
    selection = await select_winner(TASK, CANDIDATES, selector, top_k=2, timeout_seconds=5)
    assert selection.failure == AgentFailure("architect-1", Phase.SELECT, "returned an empty reply")
    assert (selection.winner, selection.selected_by, selection.usage) == (CANDIDATES[0], "score", TokenUsage(4, 0))


async def test_a_selector_returning_no_reply_falls_back_instead_of_failing_the_run() -> None:
    selector = ProbeAgent("architect-1", returning(None))
    selection = await select_winner(TASK, CANDIDATES, selector, top_k=2, timeout_seconds=5)
    assert selection.failure == AgentFailure(
        "architect-1", Phase.SELECT,
        "TypeError: returned NoneType, not an AgentReply "
        "[a bug in backend 'ProbeAgent' (agent architect-1 select); see the service log]"
    )
    assert selection.winner == CANDIDATES[0]
