"""The transport-free service: validation, councils, limits, deadlines, records, statistics."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from core_support import WatchedStore, cancelled, happened, until

from orchestrator_core import orchestrator as orchestrator_module
from orchestrator_core import validation
from orchestrator_core.errors import (
    AtCapacity,
    DeadlineExceeded,
    InvalidRequest,
    NoCouncil,
    NotFound,
    QuorumLost,
)
from orchestrator_core.models import Phase, Task, TaskConstraints, TaskTest
from orchestrator_core.orchestrator import DeliberationRequest
from orchestrator_core.records import DeliberationRecord, RecordStatus
from orchestrator_core.records.store import DeliberationStore
from orchestrator_core.testing import ScriptedBackend, ScriptedCheck


def request(description: str = "Write fizzbuzz", role: str = "dev", **kwargs: Any) -> DeliberationRequest:
    constraints = kwargs.pop("constraints", TaskConstraints())
    return DeliberationRequest(Task(role=role, description=description, constraints=constraints), **kwargs)


async def test_a_deliberation_is_ranked_and_recorded(make_orchestrator: Any) -> None:
    check = ScriptedCheck(score_of=lambda p: 0.9 if p.author_id == "dev-3" else 0.2)
    orchestrator = await make_orchestrator(None, check)
    outcome = await orchestrator.deliberate(request(rounds=1))
    assert outcome.results[0].proposal.author_id == "dev-3"
    assert outcome.task.role == "DEV"
    record = await orchestrator.get_record(outcome.deliberation_id)
    assert record.status is RecordStatus.SUCCEEDED
    assert record.outcome == outcome
    assert record.kind == "deliberate"


async def test_orchestrate_asks_the_architect_to_choose(make_orchestrator: Any) -> None:
    backend = ScriptedBackend(defaults={"choice": 2, "rationale": "best tests"})
    orchestrator = await make_orchestrator(backend, ScriptedCheck())
    orchestration = await orchestrator.orchestrate(request(), top_k=3)
    selection = orchestration.selection
    assert selection.selected_by == "architect-1"
    assert selection.winner == orchestration.outcome.results[1]
    assert selection.rationale == "best tests"
    record = await orchestrator.get_record(orchestration.execution_id)
    assert record.selection == selection


async def test_without_a_selector_role_the_top_score_wins(make_orchestrator: Any) -> None:
    orchestrator = await make_orchestrator(None, ScriptedCheck(), selector_role="")
    orchestration = await orchestrator.orchestrate(request())
    assert orchestration.selection.selected_by == "score"
    assert orchestration.selection.winner.rank == 1


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (request(""), "task is required"),
        (request("x", role=""), "role is required"),
        (request("x", role="DEV; DROP"), "role must be a short name"),
        (request("x" * 300_000), "the limit is 200000"),
        (request(num_agents=-1), "num_agents must be between 1 and 8"),
        (request(num_agents=99), "num_agents must be between 1 and 8"),
        (request(rounds=-2), "rounds must be between 0 and 5"),
        (request(rounds=50), "rounds must be between 0 and 5"),
        (request(constraints=TaskConstraints(timeout_seconds=float("nan"))), "timeout_seconds"),
        (request(constraints=TaskConstraints(timeout_seconds=-1)), "timeout_seconds"),
        (request(constraints=TaskConstraints(max_rounds=-1)), "max_rounds"),
        (request(constraints=TaskConstraints(tests=(TaskTest("../escape.py", ""),))), "without '..'"),
        (request(constraints=TaskConstraints(tests=(TaskTest("/etc/x.py", ""),))), "relative path"),
        (request(constraints=TaskConstraints(tests=(TaskTest("a.py", ""), TaskTest("a.py", "")))), "twice"),
        (request(request_id="x" * 500), "request_id"),
    ],
)
async def test_bad_requests_are_refused_and_change_nothing(
    make_orchestrator: Any, bad: DeliberationRequest, message: str
) -> None:
    backend = ScriptedBackend()
    orchestrator = await make_orchestrator(backend)
    created_before = len(backend.created)
    with pytest.raises(InvalidRequest, match=message.replace("(", r"\(")):
        await orchestrator.deliberate(bad)
    assert len(backend.created) == created_before
    assert (await orchestrator.list_records()).records == ()
    assert orchestrator.status().statistics.deliberations == 0


async def test_a_request_is_normalised_once(make_orchestrator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    orchestrator = await make_orchestrator()
    normalised: list[Task] = []
    normalise = validation.normalised_task

    def counted(task: Task, settings: Any) -> Task:
        normalised.append(task)
        return normalise(task, settings)

    for module in (orchestrator_module, validation):
        monkeypatch.setattr(module, "normalised_task", counted)
    outcome = await orchestrator.deliberate(request("  Write fizzbuzz \n", role=" dev "))
    assert len(normalised) == 1
    assert (outcome.task.role, outcome.task.description) == ("DEV", "Write fizzbuzz")
    assert (await orchestrator.get_record(outcome.deliberation_id)).task == outcome.task


async def test_a_role_without_a_council_says_what_to_configure(make_orchestrator: Any) -> None:
    orchestrator = await make_orchestrator()
    with pytest.raises(NoCouncil) as raised:
        await orchestrator.deliberate(request(role="SECURITY"))
    assert "no council is configured for role 'SECURITY'" in str(raised.value)
    assert "ORCH_COUNCILS__SECURITY__BACKEND" in str(raised.value)


async def test_request_size_and_rounds_apply(make_orchestrator: Any) -> None:
    orchestrator = await make_orchestrator()
    outcome = await orchestrator.deliberate(
        request(num_agents=5, rounds=4, constraints=TaskConstraints(max_rounds=2))
    )
    assert len(outcome.results) == 5
    assert outcome.rounds == 2


async def test_the_deadline_bounds_the_deliberation_and_is_recorded(make_orchestrator: Any) -> None:
    backend = ScriptedBackend(defaults={"hang_in": frozenset({Phase.CRITIQUE})})
    orchestrator = await make_orchestrator(backend)
    with pytest.raises(DeadlineExceeded, match="did not finish within 0.1s"):
        await orchestrator.deliberate(request(), timeout=0.1)
    [record] = (await orchestrator.list_records()).records
    assert record.status is RecordStatus.FAILED
    assert record.error == "deadline exceeded"
    assert all(Phase.CRITIQUE in agent.calls for agent in backend.created[-3:])


async def test_the_task_timeout_bounds_the_deliberation(make_orchestrator: Any) -> None:
    backend = ScriptedBackend(defaults={"hang_in": frozenset({Phase.GENERATE})})
    orchestrator = await make_orchestrator(backend)
    with pytest.raises(DeadlineExceeded, match="within 0.05s"):
        await orchestrator.deliberate(request(constraints=TaskConstraints(timeout_seconds=0.05)), timeout=30)


async def test_a_cancelled_deliberation_is_recorded_as_cancelled(make_orchestrator: Any) -> None:
    backend = ScriptedBackend(defaults={"hang_in": frozenset({Phase.GENERATE})})
    orchestrator = await make_orchestrator(backend)
    run = asyncio.create_task(orchestrator.deliberate(request()))
    await until(
        lambda: len(backend.created) >= 6 and all(a.calls for a in backend.created[-3:]),
        "every agent of the run is in its generate call",
    )
    await cancelled(run)
    [record] = (await orchestrator.list_records()).records
    assert record.status is RecordStatus.CANCELLED
    assert orchestrator.status().statistics.in_flight == 0


async def test_beyond_the_concurrency_limit_calls_are_refused(make_orchestrator: Any) -> None:
    backend = ScriptedBackend(defaults={"hang_in": frozenset({Phase.GENERATE})})
    orchestrator = await make_orchestrator(backend, max_concurrent_deliberations=1)
    first = asyncio.create_task(orchestrator.deliberate(request()))
    await until(lambda: orchestrator.status().statistics.in_flight >= 1, "the first deliberation runs")
    with pytest.raises(AtCapacity, match="ORCH_MAX_CONCURRENT_DELIBERATIONS"):
        await orchestrator.deliberate(request())
    await cancelled(first)


async def test_quorum_loss_is_recorded_as_failed(make_orchestrator: Any) -> None:
    backend = ScriptedBackend(defaults={"fail_in": {Phase.GENERATE: RuntimeError("down")}})
    orchestrator = await make_orchestrator(backend)
    with pytest.raises(QuorumLost):
        await orchestrator.deliberate(request())
    [record] = (await orchestrator.list_records()).records
    assert record.status is RecordStatus.FAILED
    assert "below the quorum of 2" in record.error
    statistics = orchestrator.status().statistics
    assert (statistics.deliberations, statistics.failures) == (1, 1)


async def test_statistics_count_runs_by_role_and_tokens(make_orchestrator: Any) -> None:
    orchestrator = await make_orchestrator(None, ScriptedCheck())
    await orchestrator.deliberate(request(rounds=1))
    await orchestrator.orchestrate(request())
    statistics = orchestrator.status().statistics
    assert (statistics.deliberations, statistics.orchestrations, statistics.failures) == (2, 1, 0)
    assert statistics.by_role["DEV"].deliberations == 2
    # no rounds given takes the default (1): twice 3 agents x (1 + 2) calls, and 1 selection; 10 + 5 tokens each
    assert statistics.usage.prompt_tokens == 10 * (9 + 9 + 1)
    assert statistics.usage.completion_tokens == 5 * (9 + 9 + 1)


async def test_rounds_0_runs_no_critique_round_and_unset_runs_the_default(make_orchestrator: Any) -> None:
    orchestrator = await make_orchestrator(None, ScriptedCheck())
    assert (await orchestrator.deliberate(request(rounds=0))).rounds == 0
    assert (await orchestrator.deliberate(request())).rounds == 1  # ORCH_DEFAULT_ROUNDS
    assert (await orchestrator.deliberate(request(rounds=2))).rounds == 2


async def test_records_are_listed_newest_first_with_filters_and_pages(make_orchestrator: Any) -> None:
    orchestrator = await make_orchestrator()
    ids = [(await orchestrator.deliberate(request(rounds=0))).deliberation_id for _ in range(5)]
    first = await orchestrator.list_records(page_size=2)
    second = await orchestrator.list_records(page_size=2, page_token=first.next_page_token)
    third = await orchestrator.list_records(page_size=2, page_token=second.next_page_token)
    listed = [r.deliberation_id for page in (first, second, third) for r in page.records]
    assert listed == list(reversed(ids))
    assert third.next_page_token == ""
    assert (await orchestrator.list_records(role="qa")).records == ()
    assert len((await orchestrator.list_records(status=RecordStatus.SUCCEEDED)).records) == 5
    assert (await orchestrator.list_records(status=RecordStatus.FAILED)).records == ()


@pytest.mark.parametrize("token", ["garbage", "b2Zmc2V0Oi0x", "!!!!"])
async def test_a_bad_page_token_is_an_invalid_request(make_orchestrator: Any, token: str) -> None:
    orchestrator = await make_orchestrator()
    with pytest.raises(InvalidRequest, match="page_token"):
        await orchestrator.list_records(page_token=token)


async def test_an_unknown_record_is_not_found(make_orchestrator: Any) -> None:
    orchestrator = await make_orchestrator()
    with pytest.raises(NotFound, match="no deliberation has id 'nope'"):
        await orchestrator.get_record("nope")


async def test_status_lists_councils_and_plugins(make_orchestrator: Any) -> None:
    orchestrator = await make_orchestrator()
    status = orchestrator.status()
    assert status.serving
    councils = {c.role: c for c in status.councils}
    assert councils["DEV"].ready
    assert councils["DEV"].agents == 3
    assert not councils["QA"].ready
    assert [p.name for p in status.plugins] == ["scripted-plugin"]


class HeldFinalWrites(WatchedStore):
    """A store whose final write waits until released: the moment a caller may go away."""

    def __init__(self, store: DeliberationStore) -> None:
        super().__init__(store, lambda record: record.status.finished)
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def update(self, record: DeliberationRecord) -> None:
        if record.status.finished:
            self.entered.set()
            await self.release.wait()
        await super().update(record)


async def test_a_caller_gone_during_the_final_write_still_leaves_a_finished_record(make_orchestrator: Any) -> None:
    backend = ScriptedBackend(defaults={"hang_in": frozenset({Phase.GENERATE})})
    orchestrator = await make_orchestrator(backend)
    held = HeldFinalWrites(orchestrator.store)
    orchestrator.store = held
    run = asyncio.create_task(orchestrator.deliberate(request(), timeout=0.05))
    await happened(held.entered, "the run timed out and began writing its failure")
    await cancelled(run)  # its caller's own deadline passes too, just then
    held.release.set()
    await happened(held.written, "the failure was written after all")
    [record] = (await orchestrator.list_records()).records
    assert record.status is RecordStatus.FAILED
    assert record.error == "deadline exceeded"
