"""Records as the orchestrator keeps them, on SQLite and on PostgreSQL: written as a
deliberation goes, complete when it ends, idempotent by request_id, honest after a crash."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from core_support import (
    MakeOrchestrator,
    WatchedStore,
    cancelled,
    happened,
    scripted_councils,
    started_orchestrators,
)
from test_store import execute

from orchestrator_core.errors import DeadlineExceeded, InvalidRequest, QuorumLost
from orchestrator_core.models import AgentReply, Critique, Phase, Proposal, Task, TokenUsage
from orchestrator_core.orchestrator import DeliberationRequest, Orchestrator
from orchestrator_core.records import DeliberationRecord, RecordQuery, RecordStatus
from orchestrator_core.testing import ScriptedBackend, ScriptedCheck


@pytest.fixture
async def make_recorded(database_url: str) -> AsyncIterator[MakeOrchestrator]:
    """Started orchestrators over scripted plugins, keeping records in the test's database."""
    settings = {"database_url": database_url, "councils": scripted_councils(model="m1")}
    async with started_orchestrators(lambda n: settings) as make:
        yield make


def request(description: str = "Write fizzbuzz", **kwargs: Any) -> DeliberationRequest:
    return DeliberationRequest(Task(role="dev", description=description), **kwargs)


@dataclass
class GatedAgent:
    """A test double: generate sets ``generating`` and waits for ``gate``; every call is counted."""

    agent_id: str
    gate: asyncio.Event
    generating: asyncio.Event
    calls: list[Phase] = field(default_factory=list)

    async def generate(self, task: Task) -> AgentReply:
        self.calls.append(Phase.GENERATE)
        self.generating.set()
        await self.gate.wait()
        return AgentReply(f"{self.agent_id}: {task.description}", TokenUsage(1, 1))

    async def critique(self, task: Task, proposal: Proposal) -> AgentReply:
        self.calls.append(Phase.CRITIQUE)
        return AgentReply(f"{self.agent_id} on {proposal.proposal_id}", TokenUsage(1, 1))

    async def revise(self, task: Task, proposal: Proposal, feedback: Sequence[Critique]) -> AgentReply:
        self.calls.append(Phase.REVISE)
        return AgentReply(proposal.content + " (revised)", TokenUsage(1, 1))


@dataclass
class GatedBackend:
    name: str = "scripted"
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    generating: asyncio.Event = field(default_factory=asyncio.Event)
    """Set by the first generate call: the deliberation's RUNNING record is stored by then."""
    created: list[GatedAgent] = field(default_factory=list)

    def create(self, config: Any) -> GatedAgent:
        agent = GatedAgent(config.agent_id, self.gate, self.generating)
        self.created.append(agent)
        return agent

    def calls(self, phase: Phase) -> int:
        return sum(agent.calls.count(phase) for agent in self.created)


async def test_the_record_holds_the_whole_deliberation(make_recorded: MakeOrchestrator) -> None:
    check = ScriptedCheck(score_of=lambda p: {"dev-2": 0.9, "dev-3": 0.6}.get(p.author_id, 0.3))
    orchestrator = await make_recorded(None, check)
    orchestration = await orchestrator.orchestrate(request(rounds=1, request_id="audit-1"), top_k=2)
    record = await orchestrator.get_record(orchestration.execution_id)

    assert (record.status, record.kind, record.role, record.request_id) == (
        RecordStatus.SUCCEEDED, "orchestrate", "DEV", "audit-1")
    assert [(s.agent_id, s.backend, dict(s.options)) for s in record.council] == [
        (f"dev-{i}", "scripted", {"model": '"m1"'}) for i in (1, 2, 3)]
    assert (record.num_agents, record.rounds, record.top_k) == (3, 1, 2)
    assert [p.proposal_id for p in record.proposals] == [
        "dev-1-v0", "dev-2-v0", "dev-3-v0", "dev-1-v1", "dev-2-v1", "dev-3-v1"]
    assert sorted((c.critic_id, c.proposal_id) for c in record.critiques) == [
        ("dev-1", "dev-2-v0"), ("dev-2", "dev-3-v0"), ("dev-3", "dev-1-v0")]
    assert sorted(c.proposal_id for c in record.checks) == ["dev-1-v1", "dev-2-v1", "dev-3-v1"]
    assert record.outcome == orchestration.outcome
    assert record.selection == orchestration.selection
    assert record.outcome.results[0].proposal.author_id == "dev-2"
    assert [(p.phase, p.round) for p in record.phases] == [
        ("generate", 0), ("critique", 1), ("revise", 1), ("check", 0), ("select", 0)]
    assert all(p.started_at <= p.finished_at for p in record.phases)
    assert all(a.finished_at <= b.started_at for a, b in zip(record.phases, record.phases[1:], strict=False))
    # 3 agents x (generate + critique + revise) and one selection, 10 + 5 tokens each
    assert record.usage == TokenUsage(10 * 10, 5 * 10)
    assert record.owner == orchestrator.owner
    assert record.finished_at is not None
    assert record.finished_at >= record.created_at


async def test_progress_is_stored_while_the_deliberation_runs(make_recorded: MakeOrchestrator) -> None:
    backend = ScriptedBackend(defaults={"hang_in": frozenset({Phase.CRITIQUE})})
    orchestrator = await make_recorded(backend)
    watched = orchestrator.store = WatchedStore(orchestrator.store, lambda record: len(record.proposals) == 3)
    run = asyncio.create_task(orchestrator.deliberate(request(rounds=1)))

    await happened(watched.written, "the generated proposals were stored")
    [record] = (await orchestrator.store.list(RecordQuery())).records
    assert record.status is RecordStatus.RUNNING
    assert [p.revision for p in record.proposals] == [0, 0, 0]
    assert [(p.phase, p.round) for p in record.phases] == [("generate", 0)]
    await cancelled(run)
    final = await orchestrator.get_record(record.deliberation_id)
    assert (final.status, final.error_kind) == (RecordStatus.CANCELLED, "Cancelled")
    assert len(final.proposals) == 3


async def test_a_retried_request_id_returns_the_first_outcome(make_recorded: MakeOrchestrator) -> None:
    backend = GatedBackend()
    backend.gate.set()
    orchestrator = await make_recorded(backend)
    first = await orchestrator.deliberate(request(request_id="retry-me"))
    events: list[object] = []
    again = await orchestrator.deliberate(request(request_id="retry-me"), on_event=events.append)
    assert again == first
    assert backend.calls(Phase.GENERATE) == 3
    assert len(events) == 1  # the ranking, so a stream still ends with one
    assert len((await orchestrator.list_records()).records) == 1
    assert orchestrator.status().statistics.deliberations == 1


async def test_a_retry_while_the_first_runs_waits_for_it(make_recorded: MakeOrchestrator) -> None:
    backend = GatedBackend()
    orchestrator = await make_recorded(backend)
    other = await make_recorded(backend)  # a second replica on the same database
    watched = other.store = WatchedStore(other.store)
    first = asyncio.create_task(orchestrator.deliberate(request(request_id="slow")))
    await happened(backend.generating, "the first call's record was stored")
    second = asyncio.create_task(other.deliberate(request(request_id="slow")))
    await happened(watched.polled, "the retry found the first call running and looked again")
    assert not second.done()  # it waits; it does not deliberate a second time
    assert backend.calls(Phase.GENERATE) == 3
    backend.gate.set()
    assert (await second).deliberation_id == (await first).deliberation_id
    assert backend.calls(Phase.GENERATE) == 3


async def test_waiting_for_the_first_call_is_bounded_by_the_deadline(make_recorded: MakeOrchestrator) -> None:
    backend = GatedBackend()
    orchestrator = await make_recorded(backend)
    first = asyncio.create_task(orchestrator.deliberate(request(request_id="stuck")))
    await happened(backend.generating, "the first call's record was stored")
    with pytest.raises(DeadlineExceeded, match="the first call with request_id 'stuck' did not finish"):
        await orchestrator.deliberate(request(request_id="stuck"), timeout=0.3)
    await cancelled(first)


async def test_a_request_id_reused_for_another_request_is_refused(make_recorded: MakeOrchestrator) -> None:
    orchestrator = await make_recorded()
    await orchestrator.deliberate(request(request_id="one-id"))
    for different in (request("Write a parser", request_id="one-id"), request(request_id="one-id", rounds=2)):
        with pytest.raises(InvalidRequest, match="request_id 'one-id' was already used for a different request"):
            await orchestrator.deliberate(different)
    with pytest.raises(InvalidRequest, match="different request"):
        await orchestrator.orchestrate(request(request_id="one-id"))
    assert len((await orchestrator.list_records()).records) == 1


async def test_a_failed_first_attempt_is_run_again(make_recorded: MakeOrchestrator) -> None:
    backend = ScriptedBackend(defaults={"fail_in": {Phase.GENERATE: RuntimeError("down")}})
    orchestrator = await make_recorded(backend)
    with pytest.raises(QuorumLost):
        await orchestrator.deliberate(request(request_id="flaky"))
    backend.defaults = {}
    outcome = await orchestrator.deliberate(request(request_id="flaky"))
    records = {r.status: r for r in (await orchestrator.list_records()).records}
    assert set(records) == {RecordStatus.FAILED, RecordStatus.SUCCEEDED}
    assert records[RecordStatus.SUCCEEDED].deliberation_id == outcome.deliberation_id
    assert records[RecordStatus.FAILED].error_kind == "QuorumLost"
    assert records[RecordStatus.FAILED].request_id == "flaky"  # kept for the audit trail


async def test_records_left_running_by_a_dead_process_are_interrupted(
    make_recorded: MakeOrchestrator, database_url: str
) -> None:
    backend = GatedBackend()
    crashed = await make_recorded(backend)
    run = asyncio.create_task(crashed.deliberate(request()))
    await happened(backend.generating, "the record was stored")
    [record] = await _running(crashed)
    restarted = await make_recorded()
    if restarted.store.shared:
        # PostgreSQL: the first replica still holds its lease, so its record is left alone
        assert (await restarted.get_record(record.deliberation_id)).status is RecordStatus.RUNNING
        await execute(database_url, "UPDATE replicas SET heartbeat_at = 0 WHERE owner = ?", (crashed.owner,))
        await restarted.upkeep.beat()
    interrupted = await restarted.get_record(record.deliberation_id)
    assert (interrupted.status, interrupted.error_kind) == (RecordStatus.INTERRUPTED, "Interrupted")
    await cancelled(run)


async def test_retention_deletes_old_records(make_recorded: MakeOrchestrator) -> None:
    orchestrator = await make_recorded(None, record_retention_days=1e-9, record_retention_interval_seconds=0.05)
    watched = orchestrator.upkeep.store = WatchedStore(orchestrator.upkeep.store)
    outcome = await orchestrator.deliberate(request())

    await happened(watched.deleted, f"the retention task deleted record {outcome.deliberation_id}")
    assert (await orchestrator.list_records()).records == ()


async def test_retention_is_off_by_default(make_recorded: MakeOrchestrator) -> None:
    orchestrator = await make_recorded()
    await orchestrator.deliberate(request())
    await orchestrator.upkeep.beat()
    assert orchestrator.settings.record_retention_days == 0
    assert len((await orchestrator.list_records()).records) == 1


async def test_many_deliberations_at_once_are_all_recorded(make_recorded: MakeOrchestrator) -> None:
    orchestrator = await make_recorded()
    outcomes = await asyncio.gather(*(orchestrator.deliberate(request(f"task {i}")) for i in range(24)))
    page = await orchestrator.list_records(page_size=100)
    assert {r.deliberation_id for r in page.records} == {o.deliberation_id for o in outcomes}
    assert all(r.status is RecordStatus.SUCCEEDED and len(r.proposals) == 6 for r in page.records)


async def test_records_are_listed_by_time_range(make_recorded: MakeOrchestrator) -> None:
    orchestrator = await make_recorded()
    first = await orchestrator.deliberate(request())
    middle = await orchestrator.get_record((await orchestrator.deliberate(request())).deliberation_id)
    await orchestrator.deliberate(request())
    after = await orchestrator.list_records(created_after=middle.created_at)
    assert first.deliberation_id not in {r.deliberation_id for r in after.records}
    assert after.records[-1].deliberation_id == middle.deliberation_id
    before = await orchestrator.list_records(created_before=middle.created_at)
    assert [r.deliberation_id for r in before.records] == [first.deliberation_id]
    with pytest.raises(InvalidRequest, match="later than created_before"):
        await orchestrator.list_records(created_after=10.0, created_before=5.0)
    with pytest.raises(InvalidRequest, match="finite"):
        await orchestrator.list_records(created_after=float("nan"))


async def _running(orchestrator: Orchestrator) -> list[DeliberationRecord]:
    return [r for r in (await orchestrator.list_records()).records if r.status is RecordStatus.RUNNING]


def test_council_options_are_kept_without_secrets() -> None:
    from pydantic import SecretStr

    from orchestrator_core.records.redaction import redacted_options

    options = {
        "model": "qwen", "temperature": 0.2, "api_key": "sk-1", "max_tokens": 100,
        "headers": {"Authorization": "Bearer x", "X-Trace": "on"}, "password": SecretStr("p"),
        "base_url": "http://alice:pw@llm:8000/v1?key=sk-2",
    }
    assert redacted_options(options) == {
        "model": '"qwen"', "temperature": "0.2", "api_key": '"***"', "max_tokens": "100",
        "headers": '"***"', "password": '"***"',
        "base_url": '"http://llm:8000/v1?key=***"',
    }


async def test_hostile_text_is_stored_or_refused_never_an_internal_error(make_recorded: MakeOrchestrator) -> None:
    orchestrator = await make_recorded(GatedBackend(gate=_open_gate()))
    outcome = await orchestrator.deliberate(request("nul\x00byte in the task"))
    stored = await orchestrator.get_record(outcome.deliberation_id)
    assert stored.task.description.startswith("nul\x00byte")
    with pytest.raises(InvalidRequest, match="deliberation_id"):
        await orchestrator.get_record("a\x00b")
    with pytest.raises(InvalidRequest, match="role must be"):
        await orchestrator.list_records(role="D\x00")
    huge = base64.urlsafe_b64encode(json.dumps({"c": 10**400, "i": "x"}).encode()).decode()
    deep = base64.urlsafe_b64encode(("[" * 100_000).encode()).decode()
    for token in (huge, deep):
        with pytest.raises(InvalidRequest, match="page_token"):
            await orchestrator.list_records(page_token=token)


def _open_gate() -> asyncio.Event:
    gate = asyncio.Event()
    gate.set()
    return gate
