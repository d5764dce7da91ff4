"""Tokens spent before a deliberation failed, timed out or was cancelled still count, and a
lost quorum stops its phase at once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from core_support import HANG_GUARD, cancelled, until

from orchestrator_core.deliberation import DeliberationEngine, UsageMeter
from orchestrator_core.errors import DeadlineExceeded, QuorumLost
from orchestrator_core.models import Phase, Task, TokenUsage
from orchestrator_core.orchestrator import DeliberationRequest
from orchestrator_core.records import RecordStatus
from orchestrator_core.scoring import Scorer
from orchestrator_core.testing import ConcurrencyProbe, ScriptedAgent, ScriptedBackend

TASK = Task(role="DEV", description="Write fizzbuzz")
CALL = TokenUsage(10, 5)  # what every scripted call costs


def request() -> DeliberationRequest:
    return DeliberationRequest(TASK, rounds=1)


def usage_of(calls: int) -> TokenUsage:
    return TokenUsage(CALL.prompt_tokens * calls, CALL.completion_tokens * calls)


async def test_a_lost_quorum_records_the_tokens_spent_before_it(make_orchestrator: Any) -> None:
    down = {"fail_in": {Phase.CRITIQUE: RuntimeError("model crashed")}}
    backend = ScriptedBackend(agents={1: down, 2: down})
    orchestrator = await make_orchestrator(backend)
    with pytest.raises(QuorumLost):
        await orchestrator.deliberate(request())
    [record] = (await orchestrator.list_records()).records
    assert record.status is RecordStatus.FAILED
    assert record.usage == usage_of(3 + 1)  # three proposals and dev-1's critique
    assert orchestrator.status().statistics.usage == record.usage


async def test_a_timed_out_deliberation_records_the_tokens_spent(make_orchestrator: Any) -> None:
    backend = ScriptedBackend(defaults={"hang_in": frozenset({Phase.CRITIQUE})})
    orchestrator = await make_orchestrator(backend)
    with pytest.raises(DeadlineExceeded):
        await orchestrator.deliberate(request(), timeout=1.0)
    [record] = (await orchestrator.list_records()).records
    assert (record.status, record.error_kind) == (RecordStatus.FAILED, "DeadlineExceeded")
    assert record.usage == usage_of(3)
    assert orchestrator.status().statistics.usage == usage_of(3)


async def test_a_cancelled_deliberation_records_the_tokens_spent(make_orchestrator: Any) -> None:
    backend = ScriptedBackend(defaults={"hang_in": frozenset({Phase.CRITIQUE})})
    orchestrator = await make_orchestrator(backend)
    run = asyncio.create_task(orchestrator.deliberate(request()))
    await until(
        lambda: len(backend.created) >= 6 and all(Phase.CRITIQUE in a.calls for a in backend.created[-3:]),
        "every agent of the run is in its critique call",
    )
    await cancelled(run)
    [record] = (await orchestrator.list_records()).records
    assert record.status is RecordStatus.CANCELLED
    assert record.usage == usage_of(3)
    assert orchestrator.status().statistics.usage == usage_of(3)


async def test_an_empty_reply_still_costs_its_tokens() -> None:
    engine = DeliberationEngine(checks=(), scorer=Scorer(), quorum=1)
    agents = [ScriptedAgent("dev-1"), ScriptedAgent("dev-2", proposal="   ")]
    outcome = await engine.deliberate(TASK, agents, rounds=0)
    assert [f.error for f in outcome.failures] == ["returned an empty reply"]
    assert outcome.usage == usage_of(2)


async def test_the_meter_holds_the_tokens_when_the_quorum_is_lost() -> None:
    engine = DeliberationEngine(checks=(), scorer=Scorer(), quorum=2)
    agents = [ScriptedAgent("dev-1"), ScriptedAgent("dev-2", fail_in={Phase.GENERATE: RuntimeError("x")})]
    meter = UsageMeter()
    with pytest.raises(QuorumLost):
        await engine.deliberate(TASK, agents, rounds=1, usage=meter)
    assert meter.total == usage_of(1)


async def test_once_the_quorum_is_lost_the_rest_of_the_phase_is_cancelled() -> None:
    probe = ConcurrencyProbe()
    engine = DeliberationEngine(checks=(), scorer=Scorer(), quorum=2, agent_timeout_seconds=600)
    agents = [
        ScriptedAgent("dev-1", hang_in=frozenset({Phase.GENERATE}), probe=probe),
        ScriptedAgent("dev-2", fail_in={Phase.GENERATE: RuntimeError("down")}, probe=probe),
        ScriptedAgent("dev-3", fail_in={Phase.GENERATE: RuntimeError("down")}, probe=probe),
    ]
    async with asyncio.timeout(HANG_GUARD):  # the hanging call would hold it for 600s
        with pytest.raises(QuorumLost, match="2 of 3 agents failed, leaving 1, below the quorum of 2"):
            await engine.deliberate(TASK, agents, rounds=1)
    assert probe.cancelled[Phase.GENERATE] == 1
    assert probe.in_flight[Phase.GENERATE] == 0
