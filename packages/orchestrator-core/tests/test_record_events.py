"""A deliberation's events read back from its record: the canonical order a watcher on any
replica numbers them by, stable as the record grows."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from orchestrator_core.events import (
    AgentFailed,
    CheckCompleted,
    CritiqueWritten,
    DeliberationEvent,
    ProposalGenerated,
    ProposalRevised,
    RankingReady,
)
from orchestrator_core.models import AgentCall, AgentFailure, CallOutcome, CheckResult, Critique, Phase, Proposal, Task
from orchestrator_core.orchestrator import DeliberationRequest
from orchestrator_core.record_events import events_of
from orchestrator_core.records import DeliberationRecord, RecordedCheck, RecordStatus
from orchestrator_core.testing import ScriptedBackend, ScriptedCheck


def call(agent_id: str, phase: Phase, round_number: int = 0, outcome: CallOutcome = CallOutcome.OK) -> AgentCall:
    return AgentCall(agent_id, phase, round_number, 1.0, 2.0, outcome)


def record(**fields: Any) -> DeliberationRecord:
    return DeliberationRecord(
        deliberation_id="d1", kind="deliberate", role="DEV", task=Task("DEV", "Write fizzbuzz"),
        status=RecordStatus.RUNNING, created_at=time.time(), **fields,
    )


P1, P2 = Proposal("dev-1-v0", "dev-1", "DEV", "a"), Proposal("dev-2-v0", "dev-2", "DEV", "b")
P1_R1 = Proposal("dev-1-v1", "dev-1", "DEV", "a'", revision=1)
C2 = Critique("dev-2", "dev-1-v0", "dev-1", "tighten it", 1)
F1 = AgentFailure("dev-1", Phase.CRITIQUE, "timed out", 1)


def test_each_call_gives_its_product_in_the_order_the_calls_ended() -> None:
    check = RecordedCheck("dev-1-v1", CheckResult("lint", "lint", True, 1.0), 3.0, 4.0)
    got = events_of(record(
        calls=(
            call("dev-2", Phase.GENERATE), call("dev-1", Phase.GENERATE),
            call("dev-1", Phase.CRITIQUE, 1, CallOutcome.TIMEOUT), call("dev-2", Phase.CRITIQUE, 1),
            call("dev-1", Phase.REVISE, 1), call("architect-1", Phase.SELECT),
        ),
        proposals=(P1, P2, P1_R1), critiques=(C2,), failures=(F1,), checks=(check,),
    ))
    assert got == [
        ProposalGenerated(P2), ProposalGenerated(P1), AgentFailed(F1), CritiqueWritten(C2),
        ProposalRevised(P1_R1), CheckCompleted("dev-1-v1", check.result, 3.0, 4.0),
    ]


def test_events_stop_at_the_first_call_whose_product_is_not_in_the_record_yet() -> None:
    calls = (call("dev-1", Phase.GENERATE), call("dev-2", Phase.GENERATE))
    check = RecordedCheck("dev-1-v0", CheckResult("lint", "lint", True, 1.0))
    assert events_of(record(calls=calls, proposals=(P2,), checks=(check,))) == []
    assert events_of(record(calls=calls, proposals=(P1,), checks=(check,))) == [ProposalGenerated(P1)]


def test_a_call_made_again_after_a_lost_worker_has_one_event_at_the_first_place() -> None:
    calls = (
        call("dev-1", Phase.GENERATE, outcome=CallOutcome.TIMEOUT),  # its failure never reached the record
        call("dev-2", Phase.GENERATE),
        call("dev-1", Phase.GENERATE, outcome=CallOutcome.CANCELLED),  # the hand-back cut it short
        call("dev-1", Phase.GENERATE),  # the next worker made it again
    )
    assert events_of(record(calls=calls, proposals=(P2, P1))) == [ProposalGenerated(P1), ProposalGenerated(P2)]


async def test_a_run_s_events_are_a_prefix_at_every_point_it_was_written(make_orchestrator: Any) -> None:
    orchestrator = await make_orchestrator(ScriptedBackend(), ScriptedCheck())
    seen: list[list[DeliberationEvent]] = []
    original = orchestrator.store.update

    async def update(written: DeliberationRecord) -> bool:
        seen.append(events_of(written))
        return await original(written)

    orchestrator.store.update = update  # type: ignore[method-assign]
    outcome = await orchestrator.deliberate(DeliberationRequest(Task("dev", "Write fizzbuzz"), rounds=2))
    final = await orchestrator.get_record(outcome.deliberation_id)
    events = events_of(final)
    assert all(events[: len(prefix)] == prefix for prefix in seen)
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["ProposalGenerated"] * 3 + (["CritiqueWritten"] * 3 + ["ProposalRevised"] * 3) * 2 + [
        "CheckCompleted"
    ] * 3 + ["RankingReady"]
    assert events[-1] == RankingReady(outcome)
    # the record cut back to fewer calls gives a prefix of the same events
    for cut in range(len(final.calls) + 1):
        partial = replace(final, calls=final.calls[:cut], checks=(), outcome=None)
        assert events[: len(events_of(partial))] == events_of(partial)
