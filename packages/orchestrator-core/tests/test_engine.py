"""The deliberation engine: concurrency, the critique ring, quorum, cancellation, events."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from orchestrator_core.deliberation import DeliberationEngine
from orchestrator_core.errors import AgentError, BackendUnavailable, QuorumLost
from orchestrator_core.events import (
    AgentCallFinished,
    AgentFailed,
    CheckCompleted,
    CritiqueWritten,
    DeliberationEvent,
    ProposalGenerated,
    ProposalRevised,
    RankingReady,
)
from orchestrator_core.models import CallOutcome, Phase, Task, TokenUsage
from orchestrator_core.scoring import Scorer
from orchestrator_core.testing import ConcurrencyProbe, ScriptedAgent, ScriptedCheck

TASK = Task(role="DEV", description="Write a function that adds two numbers")
HANG_GUARD = 10  # seconds before a test that would deadlock fails instead of hanging


def engine(*checks: ScriptedCheck, quorum: int = 1, agent_timeout: float = 30, **kwargs: object) -> DeliberationEngine:
    return DeliberationEngine(
        checks=checks, scorer=Scorer(), quorum=quorum, agent_timeout_seconds=agent_timeout, **kwargs  # type: ignore[arg-type]
    )


def council(n: int, **kwargs: object) -> list[ScriptedAgent]:
    return [ScriptedAgent(agent_id=f"dev-{i + 1}", **kwargs) for i in range(n)]  # type: ignore[arg-type]


async def test_every_phase_runs_all_its_calls_at_once() -> None:
    probe = ConcurrencyProbe(parties=4)  # each call waits until all 4 of its phase are in flight
    agents = council(4, probe=probe)
    async with asyncio.timeout(HANG_GUARD):
        outcome = await engine().deliberate(TASK, agents, rounds=2)
    assert probe.max_in_flight == {Phase.GENERATE: 4, Phase.CRITIQUE: 4, Phase.REVISE: 4}
    assert probe.calls == {Phase.GENERATE: 4, Phase.CRITIQUE: 8, Phase.REVISE: 8}
    assert outcome.rounds == 2
    assert {r.proposal.revision for r in outcome.results} == {2}


async def test_checks_of_every_proposal_run_at_once() -> None:
    started = asyncio.Barrier(6)  # 3 proposals x 2 checks

    async def wait_for_all(proposal: object) -> float:
        await started.wait()
        return 1.0

    class BarrierCheck(ScriptedCheck):
        async def run(self, task, proposal):  # type: ignore[no-untyped-def]
            await wait_for_all(proposal)
            return await super().run(task, proposal)

    checks = (BarrierCheck(name="a"), BarrierCheck(name="b", kind="policy"))
    async with asyncio.timeout(HANG_GUARD):
        outcome = await engine(*checks).deliberate(TASK, council(3), rounds=0)
    assert [len(r.checks) for r in outcome.results] == [2, 2, 2]


async def test_agent_i_critiques_the_proposal_of_agent_i_plus_one() -> None:
    events: list[DeliberationEvent] = []
    await engine().deliberate(TASK, council(3), rounds=1, on_event=events.append)
    pairs = {(e.critique.critic_id, e.critique.author_id) for e in events if isinstance(e, CritiqueWritten)}
    assert pairs == {("dev-1", "dev-2"), ("dev-2", "dev-3"), ("dev-3", "dev-1")}


async def test_each_author_revises_with_the_feedback_it_got() -> None:
    seen: dict[str, list[str]] = {}

    def revise(task: Task, proposal, feedback):  # type: ignore[no-untyped-def]
        seen[proposal.author_id] = [c.critic_id for c in feedback]
        return proposal.content + " (revised)"

    outcome = await engine().deliberate(TASK, council(3, revision=revise), rounds=1)
    assert seen == {"dev-1": ["dev-3"], "dev-2": ["dev-1"], "dev-3": ["dev-2"]}
    assert all(r.proposal.content.endswith("(revised)") for r in outcome.results)
    assert {r.proposal.proposal_id for r in outcome.results} == {"dev-1-v1", "dev-2-v1", "dev-3-v1"}


async def test_events_follow_the_phases_in_order() -> None:
    events: list[DeliberationEvent] = []
    await engine(ScriptedCheck()).deliberate(TASK, council(2), rounds=1, on_event=events.append)
    kinds = [type(e).__name__ for e in events if not isinstance(e, AgentCallFinished)]
    calls = [e.call for e in events if isinstance(e, AgentCallFinished)]
    # Each phase's calls, in the order they ended (within a phase, any order).
    assert [(c.phase, c.round) for c in calls] == [
        (Phase.GENERATE, 0), (Phase.GENERATE, 0), (Phase.CRITIQUE, 1), (Phase.CRITIQUE, 1),
        (Phase.REVISE, 1), (Phase.REVISE, 1),
    ]
    assert sorted((c.phase, c.round, c.agent_id) for c in calls) == sorted(
        (phase, number, agent)
        for phase, number in ((Phase.GENERATE, 0), (Phase.CRITIQUE, 1), (Phase.REVISE, 1))
        for agent in ("dev-1", "dev-2")
    )
    assert all(c.outcome is CallOutcome.OK and c.started_at <= c.finished_at for c in calls)
    assert kinds == [
        "ProposalGenerated", "ProposalGenerated",
        "CritiqueWritten", "CritiqueWritten",
        "ProposalRevised", "ProposalRevised",
        "CheckCompleted", "CheckCompleted",
        "RankingReady",
    ]
    # Each call's product comes right after the call.
    products = (ProposalGenerated, CritiqueWritten, ProposalRevised)
    for before, event in itertools.pairwise(events):
        if isinstance(event, products):
            assert isinstance(before, AgentCallFinished)
    assert isinstance(events[-1], RankingReady)
    assert len(events[-1].outcome.results) == 2


async def test_a_failing_agent_is_recorded_and_the_council_goes_on() -> None:
    agents = council(3)
    agents[1].fail_in = {Phase.GENERATE: RuntimeError("model crashed")}
    events: list[DeliberationEvent] = []
    outcome = await engine(quorum=2).deliberate(TASK, agents, rounds=1, on_event=events.append)
    assert [(f.agent_id, f.phase, f.error) for f in outcome.failures] == [
        ("dev-2", Phase.GENERATE,
         "RuntimeError: model crashed [a bug in backend 'ScriptedAgent' (agent dev-2 generate); see the service log]")
    ]
    assert sorted(r.proposal.author_id for r in outcome.results) == ["dev-1", "dev-3"]
    assert [type(e) for e in events].count(AgentFailed) == 1
    assert agents[1].calls == [Phase.GENERATE]  # out of the council after failing
    # the ring closes over the agents that remain
    critiques = {(e.critique.critic_id, e.critique.author_id) for e in events if isinstance(e, CritiqueWritten)}
    assert critiques == {("dev-1", "dev-3"), ("dev-3", "dev-1")}


async def test_a_critic_that_fails_leaves_its_peer_unrevised_but_ranked() -> None:
    agents = council(3)
    agents[0].fail_in = {Phase.CRITIQUE: AgentError("reply had no content")}
    outcome = await engine(quorum=2).deliberate(TASK, agents, rounds=1)
    by_author = {r.proposal.author_id: r.proposal.revision for r in outcome.results}
    assert by_author == {"dev-1": 0, "dev-2": 0, "dev-3": 1}
    assert outcome.failures[0].error == "reply had no content"
    assert outcome.failures[0].round == 1


async def test_an_agent_that_times_out_is_a_failure() -> None:
    agents = council(3)
    agents[2].hang_in = frozenset({Phase.GENERATE})
    outcome = await engine(quorum=2, agent_timeout=0.05).deliberate(TASK, agents, rounds=0)
    assert [(f.agent_id, f.error) for f in outcome.failures] == [
        ("dev-3",
         "timed out after 0.05s (backend 'ScriptedAgent', agent dev-3 generate; bound: ORCH_AGENT_TIMEOUT_SECONDS)")
    ]


async def test_empty_replies_are_failures() -> None:
    agents = council(2)
    agents[0].proposal = "   "
    outcome = await engine(quorum=1).deliberate(TASK, agents, rounds=0)
    assert outcome.failures[0].error == "returned an empty reply"


async def test_below_quorum_the_deliberation_fails_naming_the_failures() -> None:
    agents = council(3)
    for agent in agents[:2]:
        agent.fail_in = {Phase.GENERATE: RuntimeError("boom")}
    with pytest.raises(QuorumLost) as raised:
        await engine(quorum=2).deliberate(TASK, agents, rounds=1)
    assert "2 of 3 agents failed, leaving 1, below the quorum of 2" in str(raised.value)
    assert "dev-1 in generate: RuntimeError: boom" in str(raised.value)
    assert raised.value.cause is None


async def test_when_every_agent_fails_alike_the_cause_is_kept() -> None:
    down = BackendUnavailable("no server answered at http://127.0.0.1:1/v1")
    agents = council(3, fail_in={Phase.GENERATE: down})
    with pytest.raises(QuorumLost) as raised:
        await engine(quorum=2).deliberate(TASK, agents, rounds=1)
    assert raised.value.cause is down
    assert str(raised.value).startswith("no server answered at http://127.0.0.1:1/v1")


async def test_cancelling_the_caller_cancels_every_call_in_flight() -> None:
    probe = ConcurrencyProbe()
    agents = council(3, probe=probe, hang_in=frozenset({Phase.CRITIQUE}))
    run = asyncio.create_task(engine().deliberate(TASK, agents, rounds=1))
    async with asyncio.timeout(HANG_GUARD):
        while probe.in_flight[Phase.CRITIQUE] < 3:
            await asyncio.sleep(0)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert probe.cancelled[Phase.CRITIQUE] == 3
    assert probe.in_flight[Phase.CRITIQUE] == 0


async def test_usage_is_summed_over_every_call() -> None:
    agents = council(3, usage=TokenUsage(prompt_tokens=7, completion_tokens=3))
    outcome = await engine().deliberate(TASK, agents, rounds=1)
    assert outcome.usage == TokenUsage(prompt_tokens=7 * 9, completion_tokens=3 * 9)


async def test_a_check_that_raises_fails_that_proposal_only() -> None:
    class Broken(ScriptedCheck):
        async def run(self, task, proposal):  # type: ignore[no-untyped-def]
            if proposal.author_id == "dev-1":
                raise ValueError("parser exploded")
            return await super().run(task, proposal)

    events: list[DeliberationEvent] = []
    outcome = await engine(Broken(name="fragile")).deliberate(TASK, council(2), rounds=0, on_event=events.append)
    by_author = {r.proposal.author_id: r for r in outcome.results}
    assert by_author["dev-1"].checks[0].passed is False
    assert by_author["dev-1"].checks[0].diagnostics == (
        "check error: ValueError: parser exploded [a bug in check 'fragile' (run); see the service log]",
    )
    assert by_author["dev-2"].checks[0].passed is True
    assert [r.rank for r in outcome.results] == [1, 2]
    assert outcome.results[0].proposal.author_id == "dev-2"
    assert sum(isinstance(e, CheckCompleted) for e in events) == 2


async def test_heavy_checks_respect_their_bound() -> None:
    in_flight = 0
    peak = 0

    class Heavy(ScriptedCheck):
        async def run(self, task, proposal):  # type: ignore[no-untyped-def]
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            for _ in range(5):
                await asyncio.sleep(0)
            in_flight -= 1
            return await super().run(task, proposal)

    slots = asyncio.Semaphore(2)
    await engine(Heavy(heavy=True), heavy_check_slots=slots).deliberate(TASK, council(5), rounds=0)
    assert peak == 2


async def test_a_single_agent_skips_critique() -> None:
    events: list[DeliberationEvent] = []
    outcome = await engine().deliberate(TASK, council(1), rounds=3, on_event=events.append)
    assert outcome.rounds == 0
    assert [type(e) for e in events] == [AgentCallFinished, ProposalGenerated, RankingReady]
    assert not any(isinstance(e, ProposalRevised) for e in events)


async def test_each_call_s_product_is_emitted_as_the_call_ends_not_with_its_phase() -> None:
    agents = council(3)
    agents[2].hang_in = frozenset({Phase.GENERATE})
    events: list[DeliberationEvent] = []
    both = asyncio.Event()

    def observe(event: DeliberationEvent) -> None:
        events.append(event)
        if sum(isinstance(e, ProposalGenerated) for e in events) == 2:
            both.set()

    run = asyncio.create_task(engine().deliberate(TASK, agents, rounds=1, on_event=observe))
    async with asyncio.timeout(HANG_GUARD):
        await both.wait()  # while dev-3's call still runs
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    # Each product right after its call; dev-3's call ends cut short, with no product.
    assert [(type(e).__name__, _agent_of(e)) for e in events] == [
        ("AgentCallFinished", "dev-1"), ("ProposalGenerated", "dev-1"),
        ("AgentCallFinished", "dev-2"), ("ProposalGenerated", "dev-2"),
        ("AgentCallFinished", "dev-3"),
    ]
    assert events[-1].call.outcome is CallOutcome.CANCELLED  # type: ignore[union-attr]


async def test_a_failure_that_loses_the_quorum_still_cancels_the_rest_of_its_phase() -> None:
    probe = ConcurrencyProbe()
    agents = council(3, probe=probe)
    agents[0].fail_in = {Phase.GENERATE: AgentError("down")}
    agents[1].hang_in = agents[2].hang_in = frozenset({Phase.GENERATE})
    events: list[DeliberationEvent] = []
    async with asyncio.timeout(HANG_GUARD):
        with pytest.raises(QuorumLost):
            await engine(quorum=3).deliberate(TASK, agents, rounds=1, on_event=events.append)
    assert probe.cancelled[Phase.GENERATE] == 2
    assert [type(e).__name__ for e in events if not isinstance(e, AgentCallFinished)] == ["AgentFailed"]


def _agent_of(event: DeliberationEvent) -> str:
    if isinstance(event, AgentCallFinished):
        return event.call.agent_id
    assert isinstance(event, ProposalGenerated)
    return event.proposal.author_id
