"""What every agent call of a phase is told and tells, whatever way it is built: the
observer's scope names the deliberation, role, task, agent, backend, model, phase and round;
the council's count of active agents follows the failures, as the quorum needs."""

from __future__ import annotations

import pytest

from orchestrator_core.deliberation import DeliberationEngine
from orchestrator_core.errors import AgentError, QuorumLost
from orchestrator_core.models import CallOutcome, Phase, Task
from orchestrator_core.scoring import Scorer
from orchestrator_core.telemetry import AgentCallScope
from orchestrator_core.testing import RecordingTelemetry, ScriptedAgent

TASK = Task(role="DEV", description="Write a function that adds two numbers")


async def test_each_call_scope_names_what_the_call_is() -> None:
    telemetry = RecordingTelemetry()
    engine = DeliberationEngine(checks=(), scorer=Scorer(), quorum=2, telemetry=telemetry)
    agents = [ScriptedAgent(agent_id=f"dev-{i}", model=f"m{i}") for i in (1, 2)]
    await engine.deliberate(TASK, agents, rounds=1, deliberation_id="d-1")
    scopes = telemetry.of(AgentCallScope)
    assert sorted((s.phase, s.round, s.agent_id, s.model) for s in scopes) == [
        (Phase.CRITIQUE, 1, "dev-1", "m1"),
        (Phase.CRITIQUE, 1, "dev-2", "m2"),
        (Phase.GENERATE, 0, "dev-1", "m1"),
        (Phase.GENERATE, 0, "dev-2", "m2"),
        (Phase.REVISE, 1, "dev-1", "m1"),
        (Phase.REVISE, 1, "dev-2", "m2"),
    ]
    for scope in scopes:
        assert (scope.deliberation_id, scope.role, scope.task, scope.backend) == (
            "d-1",
            "DEV",
            TASK.description,
            "ScriptedAgent",
        )
        assert scope.outcome is CallOutcome.OK


def council(*failing: tuple[str, Phase]) -> list[ScriptedAgent]:
    fails = dict(failing)
    return [
        ScriptedAgent(agent_id=agent_id, fail_in={fails[agent_id]: AgentError("down")} if agent_id in fails else {})
        for agent_id in ("dev-1", "dev-2", "dev-3")
    ]


async def test_a_council_that_lost_agents_goes_on_while_the_quorum_remains() -> None:
    engine = DeliberationEngine(checks=(), scorer=Scorer(), quorum=2)
    outcome = await engine.deliberate(TASK, council(("dev-3", Phase.GENERATE)), rounds=2)
    assert outcome.rounds == 2
    assert sorted(r.proposal.author_id for r in outcome.results) == ["dev-1", "dev-2"]
    assert all(r.proposal.revision == 2 for r in outcome.results)


async def test_the_quorum_is_lost_by_the_failures_of_any_phases() -> None:
    engine = DeliberationEngine(checks=(), scorer=Scorer(), quorum=2)
    with pytest.raises(QuorumLost, match="2 of 3 agents failed, leaving 1"):
        await engine.deliberate(TASK, council(("dev-2", Phase.CRITIQUE), ("dev-1", Phase.REVISE)), rounds=1)


async def test_no_round_is_run_with_one_agent_left() -> None:
    engine = DeliberationEngine(checks=(), scorer=Scorer(), quorum=1)
    outcome = await engine.deliberate(TASK, council(("dev-1", Phase.GENERATE), ("dev-2", Phase.GENERATE)), rounds=2)
    assert outcome.rounds == 0
    assert [(r.proposal.author_id, r.proposal.revision) for r in outcome.results] == [("dev-3", 0)]
