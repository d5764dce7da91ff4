"""The telemetry hooks: what the core tells an observer of each deliberation, phase, agent
call and check, and the per-call record the deliberation record keeps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager, asynccontextmanager
from pathlib import Path

import pytest
from core_support import scripted_councils

from orchestrator_core.deliberation import DeliberationEngine
from orchestrator_core.errors import AgentError, QuorumLost
from orchestrator_core.events import AgentCallFinished, DeliberationEvent
from orchestrator_core.models import CallOutcome, CheckResult, Phase, Proposal, Task, TokenUsage
from orchestrator_core.orchestrator import DeliberationRequest, Orchestrator
from orchestrator_core.plugins import PluginHost
from orchestrator_core.records.factory import store_from_settings
from orchestrator_core.scoring import Scorer
from orchestrator_core.settings import Settings
from orchestrator_core.telemetry import (
    NO_TELEMETRY,
    AgentCallScope,
    CheckScope,
    DeliberationScope,
    PhaseScope,
    Telemetry,
    chained,
)
from orchestrator_core.testing import (
    RecordingTelemetry,
    ScriptedAgent,
    ScriptedBackend,
    ScriptedCheck,
    ScriptedPlugin,
)

TASK = Task(role="DEV", description="Write a function that adds two numbers")


def engine(telemetry: Telemetry, *checks: object, quorum: int = 1, **kwargs: object) -> DeliberationEngine:
    return DeliberationEngine(
        checks=checks, scorer=Scorer(), quorum=quorum, telemetry=telemetry, **kwargs  # type: ignore[arg-type]
    )


def agents(n: int, **options: object) -> list[ScriptedAgent]:
    return [ScriptedAgent(agent_id=f"dev-{i}", **options) for i in range(1, n + 1)]  # type: ignore[arg-type]


async def test_every_phase_call_and_check_is_scoped_and_nested_under_its_phase() -> None:
    seen = RecordingTelemetry()
    usage = TokenUsage(prompt_tokens=7, completion_tokens=3)
    await engine(seen, ScriptedCheck()).deliberate(
        TASK, agents(3, usage=usage, model="tiny-1"), rounds=1, deliberation_id="d-1"
    )
    phases = seen.of(PhaseScope)
    assert [(p.phase, p.round) for p in phases] == [("generate", 0), ("critique", 1), ("revise", 1), ("check", 0)]
    assert {(p.deliberation_id, p.role) for p in phases} == {("d-1", "DEV")}
    calls = seen.of(AgentCallScope)
    assert len(calls) == 9
    for call in calls:
        parent = seen.parents[id(call)]
        assert isinstance(parent, PhaseScope)
        assert parent.phase == call.phase.value
        assert (call.outcome, call.usage) == (CallOutcome.OK, usage)
        assert (call.model, call.response_model) == ("tiny-1", "tiny-1")
        assert call.backend == "ScriptedAgent"
        assert call.reply
    checks = seen.of(CheckScope)
    assert [c.outcome for c in checks] == ["passed"] * 3
    assert all(seen.parents[id(c)] is phases[-1] for c in checks)


async def test_failed_timed_out_and_buggy_calls_say_how_they_ended() -> None:
    seen = RecordingTelemetry()
    team = [
        ScriptedAgent("ok"),
        ScriptedAgent("down", fail_in={Phase.GENERATE: AgentError("endpoint down")}),
        ScriptedAgent("slow", hang_in=frozenset({Phase.GENERATE})),
        ScriptedAgent("buggy", fail_in={Phase.GENERATE: KeyError("oops")}),
    ]
    await engine(seen, agent_timeout_seconds=0.2).deliberate(TASK, team, rounds=0)
    outcomes = {c.agent_id: (c.outcome, c.error) for c in seen.of(AgentCallScope)}
    assert outcomes["ok"] == (CallOutcome.OK, "")
    assert outcomes["down"] == (CallOutcome.ERROR, "endpoint down")
    assert outcomes["slow"][0] is CallOutcome.TIMEOUT
    assert "timed out" in outcomes["slow"][1]
    assert outcomes["buggy"][0] is CallOutcome.BUG
    assert "KeyError" in outcomes["buggy"][1]


async def test_calls_cut_short_by_a_lost_quorum_are_cancelled_and_still_recorded() -> None:
    seen = RecordingTelemetry()
    events: list[DeliberationEvent] = []
    team = [ScriptedAgent("down", fail_in={Phase.GENERATE: AgentError("down")}),
            ScriptedAgent("waits", hang_in=frozenset({Phase.GENERATE}))]
    with pytest.raises(QuorumLost):
        await engine(seen, quorum=2).deliberate(TASK, team, rounds=0, on_event=events.append)
    outcomes = {c.agent_id: c.outcome for c in seen.of(AgentCallScope)}
    assert outcomes == {"down": CallOutcome.ERROR, "waits": CallOutcome.CANCELLED}
    recorded = {e.call.agent_id: e.call.outcome for e in events if isinstance(e, AgentCallFinished)}
    assert recorded == outcomes


class _Broken:
    name, kind = "broken", "lint"

    async def run(self, task: Task, proposal: Proposal) -> CheckResult:
        raise RuntimeError("bug")


class _Endless:
    name, kind, timeout_seconds = "endless", "dryrun", 0.05

    async def run(self, task: Task, proposal: Proposal) -> CheckResult:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_check_outcomes_and_the_wait_for_a_heavy_slot() -> None:
    seen = RecordingTelemetry()
    failing = ScriptedCheck(name="strict", score_of=lambda proposal: 0.0)
    heavy = ScriptedCheck(name="heavy", heavy=True)
    await engine(
        seen, failing, _Broken(), _Endless(), heavy, heavy_check_slots=asyncio.Semaphore(1)
    ).deliberate(TASK, agents(2), rounds=0)
    by_check: dict[str, set[str]] = {}
    for scope in seen.of(CheckScope):
        by_check.setdefault(scope.check, set()).add(scope.outcome)
    assert by_check == {"strict": {"failed"}, "broken": {"error"}, "endless": {"timeout"}, "heavy": {"passed"}}
    waits = sorted(s.waited_seconds for s in seen.of(CheckScope) if s.check == "heavy")
    assert waits[0] < waits[1]  # one slot: the second heavy check waited for the first to finish


@asynccontextmanager
async def observed(
    seen: Telemetry, database: Path, backend: ScriptedBackend, *checks: ScriptedCheck
) -> AsyncIterator[Orchestrator]:
    host = PluginHost()
    host.register(ScriptedPlugin(backend, *checks), name="scripted-plugin")
    host.collect()
    settings = Settings(councils=scripted_councils(), database_path=database)
    orchestrator = Orchestrator(settings, host, store_from_settings(settings), seen)
    await orchestrator.start()
    try:
        yield orchestrator
    finally:
        await orchestrator.close()


async def test_the_deliberation_scope_ends_with_the_records_status(tmp_path: Path) -> None:
    seen = RecordingTelemetry()
    down = ScriptedBackend(defaults={"fail_in": {Phase.GENERATE: AgentError("endpoint down")}})
    async with (
        observed(seen, tmp_path / "good.sqlite3", ScriptedBackend(), ScriptedCheck()) as good,
        observed(seen, tmp_path / "bad.sqlite3", down) as bad,
    ):
        outcome = await good.deliberate(DeliberationRequest(task=TASK))
        with pytest.raises(QuorumLost):
            await bad.deliberate(DeliberationRequest(task=TASK))
        orchestration = await good.orchestrate(DeliberationRequest(task=TASK))
        record = await good.get_record(orchestration.execution_id)
    finished = seen.of(DeliberationScope)
    assert [(d.kind, d.status, d.error_kind) for d in finished] == [
        ("deliberate", "succeeded", ""), ("deliberate", "failed", "QuorumLost"), ("orchestrate", "succeeded", ""),
    ]
    assert finished[0].deliberation_id == outcome.deliberation_id
    assert (finished[0].rounds_run, finished[0].viable_proposals) == (outcome.rounds, outcome.viable_proposals)
    assert finished[0].usage == outcome.usage
    select = [p for p in seen.of(PhaseScope) if p.phase == "select"]
    assert [s.deliberation_id for s in select] == [orchestration.execution_id]
    # The record keeps every call, the selector's included, each inside the run's time.
    assert len(record.calls) == 3 * 3 + 1
    assert record.calls[-1].phase is Phase.SELECT
    assert record.finished_at is not None
    for call in record.calls:
        assert record.created_at <= call.started_at <= call.finished_at <= record.finished_at
    assert all(0 < c.started_at <= c.finished_at for c in record.checks)


class _Counting(Telemetry):
    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name

    def phase(self, scope: PhaseScope) -> AbstractContextManager[None]:
        log, name = self.log, self.name

        class _Scope(AbstractContextManager[None]):
            def __enter__(self) -> None:
                log.append(f"enter {name}")

            def __exit__(self, *exc: object) -> None:
                log.append(f"exit {name}")

        return _Scope()


def test_a_chain_enters_in_order_and_leaves_in_reverse() -> None:
    log: list[str] = []
    chain = chained([_Counting(log, "a"), _Counting(log, "b")])
    with chain.phase(PhaseScope("d", "DEV", "generate", 0)):
        log.append("work")
    assert log == ["enter a", "enter b", "work", "exit b", "exit a"]
    assert chained([]) is NO_TELEMETRY
    single = _Counting(log, "c")
    assert chained([single]) is single
