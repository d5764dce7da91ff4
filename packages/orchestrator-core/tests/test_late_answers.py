"""A call that catches its deadline's cancellation and answers late has still timed out: its
late reply is not taken, in a phase (the shared deadline) and under a Budget (the selection,
the checks)."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator_core.deliberation import DeliberationEngine
from orchestrator_core.events import AgentCallFinished, CritiqueWritten, DeliberationEvent
from orchestrator_core.models import AgentReply, CallOutcome, Phase, Task
from orchestrator_core.plugin_calls import Budget
from orchestrator_core.scoring import Scorer
from orchestrator_core.testing import ScriptedAgent

TASK = Task(role="DEV", description="Add two numbers")
HANG_GUARD = 10


class LateAgent(ScriptedAgent):
    """Swallows the cancellation of its critique and answers 0.2 s later."""

    async def critique(self, task: Task, proposal: object) -> AgentReply:  # type: ignore[override]
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await asyncio.sleep(0.2)
        return AgentReply(text="a late critique")


async def test_a_phase_call_answering_after_its_deadline_is_a_timeout_not_a_reply() -> None:
    events: list[DeliberationEvent] = []
    agents = [ScriptedAgent(agent_id="dev-1"), LateAgent(agent_id="dev-2"), ScriptedAgent(agent_id="dev-3")]
    engine = DeliberationEngine(checks=(), scorer=Scorer(), quorum=2, agent_timeout_seconds=0.1)
    async with asyncio.timeout(HANG_GUARD):
        outcome = await engine.deliberate(TASK, agents, rounds=1, on_event=events.append)
    assert [(f.agent_id, f.phase) for f in outcome.failures] == [("dev-2", Phase.CRITIQUE)]
    assert "timed out after 0.1s" in outcome.failures[0].error
    calls = {(e.call.agent_id, e.call.phase): e.call.outcome for e in events if isinstance(e, AgentCallFinished)}
    assert calls[("dev-2", Phase.CRITIQUE)] is CallOutcome.TIMEOUT
    critiques = [e.critique for e in events if isinstance(e, CritiqueWritten)]
    assert len(critiques) == 2
    assert all(c.critic_id != "dev-2" and c.content != "a late critique" for c in critiques)


async def test_a_budget_whose_call_swallows_the_cancellation_and_returns_raises_timeout_error() -> None:
    budget = Budget(0.05)

    async def late() -> str:
        async with budget:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                await asyncio.sleep(0.05)
            return "late"

    with pytest.raises(TimeoutError):
        await late()
    assert budget.expired
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0

