"""A phase's calls share one deadline: each call still running then times out as it would
under a budget of its own (TIMEOUT, the setting named, the breaker told), a call that ended
is untouched (its checkpoint included), a cancellation from anyone else stays one, and a
loop stall one agent causes does not time out its peers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest

from orchestrator_core.agent_calls import record_of
from orchestrator_core.deadlines import SharedDeadline, seconds_left
from orchestrator_core.deliberation import DeliberationEngine, UsageMeter
from orchestrator_core.events import AgentCallFinished, DeliberationEvent
from orchestrator_core.models import AgentCall, AgentReply, CallOutcome, Critique, Phase, Proposal, Task, TokenUsage
from orchestrator_core.plugin_calls import BACKEND, PluginCall, PluginFailureCounters, current_plugin_call
from orchestrator_core.scoring import Scorer
from orchestrator_core.telemetry import AgentCallScope
from orchestrator_core.testing import ScriptedAgent
from orchestrator_core.watchdog import LoopWatchdog

TASK = Task(role="DEV", description="Add two numbers")
HANG_GUARD = 10


def engine(agent_timeout: float, quorum: int = 1) -> DeliberationEngine:
    return DeliberationEngine(checks=(), scorer=Scorer(), quorum=quorum, agent_timeout_seconds=agent_timeout)


class BreakerAgent(ScriptedAgent):
    """A scripted agent behind a breaker: counts the timeouts it is told of."""

    timeouts: int = 0

    def on_timeout(self) -> None:
        self.timeouts += 1


async def test_the_call_still_running_at_the_phase_deadline_times_out_and_the_others_are_untouched() -> None:
    events: list[DeliberationEvent] = []
    agents = [BreakerAgent(agent_id=f"dev-{i}") for i in (1, 2, 3)]
    agents[1].hang_in = frozenset({Phase.CRITIQUE})
    failures = PluginFailureCounters()
    deliberations = DeliberationEngine(
        checks=(), scorer=Scorer(), quorum=2, agent_timeout_seconds=0.1, failures=failures
    )
    async with asyncio.timeout(HANG_GUARD):
        outcome = await deliberations.deliberate(TASK, agents, rounds=1, on_event=events.append)
    assert [(f.agent_id, f.phase, f.error) for f in outcome.failures] == [
        (
            "dev-2",
            Phase.CRITIQUE,
            "timed out after 0.1s (backend 'BreakerAgent', agent dev-2 critique; bound: ORCH_AGENT_TIMEOUT_SECONDS)",
        )
    ]
    assert [a.timeouts for a in agents] == [0, 1, 0]
    assert failures.of(BACKEND, "BreakerAgent").timeouts == 1
    outcomes = [(e.call.agent_id, e.call.phase, e.call.outcome) for e in events if isinstance(e, AgentCallFinished)]
    assert ("dev-2", Phase.CRITIQUE, CallOutcome.TIMEOUT) in outcomes
    assert [o for o in outcomes if o[2] is not CallOutcome.OK] == [("dev-2", Phase.CRITIQUE, CallOutcome.TIMEOUT)]
    assert {r.proposal.author_id for r in outcome.results} == {"dev-1", "dev-2", "dev-3"}


async def test_the_task_bound_is_named_when_it_is_the_tighter() -> None:
    agents = [ScriptedAgent(agent_id="dev-1"), ScriptedAgent(agent_id="dev-2", hang_in=frozenset({Phase.GENERATE}))]
    task = Task(role="DEV", description="x", constraints=TASK.constraints.__class__(agent_timeout_seconds=0.05))
    async with asyncio.timeout(HANG_GUARD):
        outcome = await engine(30).deliberate(task, agents, rounds=0)
    [failure] = outcome.failures
    assert failure.error.endswith("bound: the task's constraints.agent_timeout_seconds)")


async def test_a_call_that_ended_is_not_bounded_any_more_its_checkpoint_included() -> None:
    """The first call's checkpoint outlasts the phase's deadline: it is not cut short."""
    flushed: list[float] = []

    async def slow_checkpoint() -> None:
        if not flushed:
            await asyncio.sleep(0.25)
        flushed.append(time.monotonic())

    agents = [ScriptedAgent(agent_id=f"dev-{i}") for i in (1, 2)]
    async with asyncio.timeout(HANG_GUARD):
        outcome = await engine(0.1).deliberate(TASK, agents, rounds=1, checkpoint=slow_checkpoint)
    assert outcome.failures == ()
    assert len(flushed) == 6  # every call's checkpoint completed
    assert seconds_left() is None  # the backends' deadline is the calls' alone


async def test_a_call_sees_the_phase_deadline_and_names_its_plugin_call() -> None:
    seen: list[tuple[float | None, PluginCall | None]] = []

    class Watching(ScriptedAgent):
        async def generate(self, task: Task) -> AgentReply:
            seen.append((seconds_left(), current_plugin_call()))
            return await super().generate(task)

        async def critique(self, task: Task, proposal: Proposal) -> AgentReply:
            seen.append((seconds_left(), current_plugin_call()))
            return await super().critique(task, proposal)

        async def revise(self, task: Task, proposal: Proposal, feedback: Sequence[Critique]) -> AgentReply:
            seen.append((seconds_left(), current_plugin_call()))
            return await super().revise(task, proposal, feedback)

    agents = [Watching(agent_id="dev-1"), Watching(agent_id="dev-2")]
    await engine(5).deliberate(TASK, agents, rounds=1)
    assert len(seen) == 6
    assert all(left is not None and 0 < left <= 5 for left, _ in seen)
    assert {named for _, named in seen} == {
        PluginCall(BACKEND, "Watching", phase, agent)
        for phase in ("generate", "critique", "revise")
        for agent in ("dev-1", "dev-2")
    }
    assert current_plugin_call() is None


async def test_a_loop_stall_one_agent_causes_does_not_time_out_its_peers() -> None:
    """dev-3 blocks the loop for 0.5 s once its peers have started their 0.6 s calls: they
    answer past the 0.3 s deadline, in time only because the stall (not theirs) moves it."""

    class Blocking(ScriptedAgent):
        async def generate(self, task: Task) -> AgentReply:
            time.sleep(0.5)  # holds the loop: the watchdog sees it
            return await super().generate(task)

    agents = [*(ScriptedAgent(agent_id=f"dev-{i}", delay_seconds=0.6) for i in (1, 2)), Blocking(agent_id="dev-3")]
    watchdog = LoopWatchdog(0.1)
    watchdog.start()
    try:
        async with asyncio.timeout(HANG_GUARD):
            outcome = await engine(0.3).deliberate(TASK, agents, rounds=0)
    finally:
        watchdog.stop()
    assert watchdog.stalls >= 1
    assert outcome.failures == ()


async def test_without_the_watchdog_the_same_stall_times_the_peers_out() -> None:
    """The contrast of the test above: nothing measured the stall, so nothing excuses it."""

    class Blocking(ScriptedAgent):
        async def generate(self, task: Task) -> AgentReply:
            time.sleep(0.5)
            return await super().generate(task)

    agents = [*(ScriptedAgent(agent_id=f"dev-{i}", delay_seconds=0.6) for i in (1, 2)), Blocking(agent_id="dev-3")]
    outcome = await engine(0.3).deliberate(TASK, agents, rounds=0)
    assert sorted(f.agent_id for f in outcome.failures) == ["dev-1", "dev-2"]


async def test_the_deadline_cancels_only_the_calls_still_watched() -> None:
    async def hang() -> None:
        await asyncio.Event().wait()

    deadline = SharedDeadline(0.05)
    running, answered = asyncio.create_task(hang()), asyncio.create_task(asyncio.sleep(0, "done"))
    deadline.watch(running)
    deadline.watch(answered)
    assert await answered == "done"
    assert deadline.release(answered) is False
    with pytest.raises(asyncio.CancelledError):
        await running
    assert deadline.release(running) is True  # its cancellation was the deadline's
    deadline.close()


async def test_a_cancellation_from_anyone_else_stays_a_cancellation() -> None:
    outcomes: list[str] = []

    async def call(bound: SharedDeadline, cancel_again: bool) -> None:
        task = asyncio.current_task()
        assert task is not None
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            if cancel_again:  # someone else's cancellation arrives on top of the deadline's
                task.cancel()
            outcomes.append("timed out" if bound.release(task) else "cancelled")
            raise

    for cancel_again in (False, True):
        bound = SharedDeadline(5 if not cancel_again else 0.02)
        task = asyncio.create_task(call(bound, cancel_again))
        bound.watch(task)
        if not cancel_again:
            await asyncio.sleep(0.01)
            task.cancel()  # before the deadline: not the deadline's
        with pytest.raises(asyncio.CancelledError):
            await task
        bound.close()
    assert outcomes == ["cancelled", "cancelled"]


def test_the_usage_meter_sums_what_each_call_cost() -> None:
    meter = UsageMeter()
    assert meter.total == TokenUsage()
    meter.add(TokenUsage(3, 4))
    meter.add(TokenUsage(1, 0))
    assert meter.total == TokenUsage(4, 4)


async def test_the_next_phase_keeps_the_timer_and_is_bounded_by_its_own_deadline() -> None:
    async def hang() -> None:
        await asyncio.Event().wait()

    bound = SharedDeadline(0.05)
    first = asyncio.create_task(asyncio.sleep(0))
    bound.watch(first)
    await first
    assert bound.release(first) is False
    await asyncio.sleep(0.03)
    bound.restart(0.15)  # the timer armed for the first phase (0.05) is kept, then set again
    second = asyncio.create_task(hang())
    bound.watch(second)
    await asyncio.sleep(0.1)  # past the first phase's deadline, within the second's
    assert not second.done()
    with pytest.raises(asyncio.CancelledError):
        await second
    assert bound.release(second) is True
    bound.close()


def test_a_calls_record_takes_every_field_from_its_scope() -> None:
    scope = AgentCallScope("d-1", "DEV", "dev-2", "openai", "m-1", Phase.REVISE, 3)
    scope.outcome, scope.usage, scope.truncated, scope.error = CallOutcome.ERROR, TokenUsage(5, 6), True, "boom"
    record = record_of(scope, 12.5)
    assert record == AgentCall(
        agent_id="dev-2",
        phase=Phase.REVISE,
        round=3,
        started_at=12.5,
        finished_at=record.finished_at,
        outcome=CallOutcome.ERROR,
        usage=TokenUsage(5, 6),
        truncated=True,
        model="m-1",
        error="boom",
    )
    assert record.finished_at >= 12.5
