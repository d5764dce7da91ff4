"""Deliberate, StreamDeliberation and Orchestrate over a real channel, with their error codes."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_test_support import (
    HANG_GUARD,
    REJECTED,
    UNREACHABLE,
    Doubles,
    ServerFactory,
    eventually,
    request,
    tasks_started_since,
)

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_core.models import Phase
from orchestrator_grpc.server import RunningServer

Stub = pb_grpc.OrchestratorServiceStub


async def test_deliberate_returns_ranked_results_with_their_check_suites(stub: Stub) -> None:
    response = await stub.Deliberate(request(num_agents=3, rounds=1))

    assert response.role == "DEV"
    assert len(response.deliberation_id) == 32
    assert [(r.rank, r.proposal.author_id) for r in response.results] == [
        (1, "dev-2"), (2, "dev-3"), (3, "dev-1"),
    ]
    best = response.results[0]
    assert best.proposal.proposal_id == "dev-2-v1"
    assert best.proposal.revision == 1
    assert best.proposal.content == "Proposal by dev-2 for: Write a function that adds two numbers"
    assert (best.checks.policy.name, best.checks.policy.passed, best.checks.policy.score) == ("policy", True, 1.0)
    assert (best.checks.lint.kind, best.checks.lint.score) == ("lint", 0.9)
    assert (best.checks.dryrun.kind, best.checks.dryrun.score) == ("dryrun", 0.9)
    assert list(best.checks.others) == ["style"]
    assert (best.checks.others["style"].passed, best.checks.others["style"].score) == (False, 0.4)
    assert best.checks.lint.diagnostics == ["scripted score 0.90"]
    assert response.results[0].score > response.results[1].score > response.results[2].score
    assert list(response.failures) == []
    assert response.rounds == 1
    # 3 proposals + 3 critiques + 3 revisions, 10 + 5 tokens each
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (90, 45)


async def test_empty_task_is_invalid_argument_and_records_nothing(stub: Stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.Deliberate(request(task="   "))
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "task is required" in (error.value.details() or "")
    assert list((await stub.ListDeliberations(pb.ListDeliberationsRequest())).deliberations) == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"rounds": -1}, "rounds must be between"),
        ({"num_agents": 999}, "num_agents must be between"),
        ({"constraints": pb.TaskConstraints(timeout_seconds=-1)}, "timeout_seconds"),
        ({"constraints": pb.TaskConstraints(tests=[pb.TaskTest(path="../x.py")])}, "relative path"),
    ],
)
async def test_bad_fields_are_invalid_argument(stub: Stub, fields: dict[str, object], message: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.Deliberate(request(**fields))
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert message in (error.value.details() or "")


async def test_unknown_role_is_failed_precondition_naming_what_to_configure(stub: Stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.Deliberate(request(role="PHYSICS"))
    assert error.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "ORCH_COUNCILS__PHYSICS__BACKEND" in (error.value.details() or "")


async def test_quorum_lost_to_an_unreachable_backend_is_unavailable(stub: Stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.Deliberate(request(role="DEVOPS"))
    assert error.value.code() is grpc.StatusCode.UNAVAILABLE
    assert UNREACHABLE in (error.value.details() or "")


async def test_quorum_lost_to_a_rejecting_backend_is_failed_precondition(stub: Stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.Deliberate(request(role="DATA"))
    assert error.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert REJECTED in (error.value.details() or "")


async def test_the_task_timeout_is_deadline_exceeded(stub: Stub, doubles: Doubles) -> None:
    constraints = pb.TaskConstraints(timeout_seconds=0.2)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.Deliberate(request(role="QA", constraints=constraints), timeout=HANG_GUARD)
    assert error.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert "did not finish within 0.2s" in (error.value.details() or "")
    assert doubles.hanging.cancelled[Phase.GENERATE] == 2


async def test_the_callers_deadline_reaches_the_agents(stub: Stub, doubles: Doubles) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.Deliberate(request(role="QA"), timeout=0.3)
    assert error.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    await eventually(lambda: doubles.hanging.cancelled[Phase.GENERATE] == 2, "the agents' cancellation")
    assert doubles.hanging.in_flight[Phase.GENERATE] == 0


async def test_at_capacity_is_resource_exhausted(serve_with: ServerFactory, doubles: Doubles) -> None:
    async with serve_with(max_concurrent_deliberations=1) as server, grpc.aio.insecure_channel(
        server.address
    ) as channel:
        stub = Stub(channel)
        first = asyncio.ensure_future(stub.Deliberate(request(role="QA")))
        await eventually(lambda: doubles.hanging.in_flight[Phase.GENERATE] == 2, "the first deliberation")
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.Deliberate(request())
        assert error.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "ORCH_MAX_CONCURRENT_DELIBERATIONS" in (error.value.details() or "")
        first.cancel()
        await eventually(lambda: doubles.hanging.cancelled[Phase.GENERATE] == 2, "the first's cancellation")


EVENT_ORDER = ["proposal_generated"] * 3 + ["critique"] * 3 + ["revision"] * 3 + ["check"] * 12 + ["ranking"]


async def test_stream_yields_every_step_in_order_then_the_ranking(stub: Stub) -> None:
    events = [event async for event in stub.StreamDeliberation(request(num_agents=3, rounds=1))]

    assert [e.WhichOneof("event") for e in events] == EVENT_ORDER
    assert sorted(e.proposal_generated.author_id for e in events[:3]) == ["dev-1", "dev-2", "dev-3"]
    assert sorted((e.critique.critic_id, e.critique.author_id) for e in events[3:6]) == [
        ("dev-1", "dev-2"), ("dev-2", "dev-3"), ("dev-3", "dev-1"),
    ]
    assert {e.revision.revision for e in events[6:9]} == {1}
    assert {e.check.proposal_id for e in events[9:21]} == {"dev-1-v1", "dev-2-v1", "dev-3-v1"}
    ranking = events[-1].ranking
    assert [r.proposal.author_id for r in ranking.results] == ["dev-2", "dev-3", "dev-1"]
    assert events[-1].deliberation_id == ranking.deliberation_id
    record = await stub.GetDeliberation(pb.GetDeliberationRequest(deliberation_id=ranking.deliberation_id))
    assert record.status == pb.DELIBERATION_STATUS_SUCCEEDED


async def test_stream_errors_are_status_codes(stub: Stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        _ = [event async for event in stub.StreamDeliberation(request(task=""))]
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT

    with pytest.raises(grpc.aio.AioRpcError) as error:
        _ = [event async for event in stub.StreamDeliberation(request(role="DEVOPS"))]
    assert error.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_cancelling_the_stream_cancels_the_deliberation(stub: Stub, doubles: Doubles) -> None:
    call = stub.StreamDeliberation(request(role="STALL"))
    first = await call.read()
    second = await call.read()
    assert {first.WhichOneof("event"), second.WhichOneof("event")} == {"proposal_generated"}
    await eventually(lambda: doubles.stalling.in_flight[Phase.CRITIQUE] == 2, "the critiques to start")

    call.cancel()

    await eventually(lambda: doubles.stalling.cancelled[Phase.CRITIQUE] == 2, "the critiques' cancellation")
    page = await stub.ListDeliberations(pb.ListDeliberationsRequest(role="STALL"))
    assert [r.status for r in page.deliberations] == [pb.DELIBERATION_STATUS_CANCELLED]


async def test_orchestrate_selects_a_winner_among_the_top_k(stub: Stub) -> None:
    response = await stub.Orchestrate(pb.OrchestrateRequest(deliberation=request(num_agents=3), top_k=2))

    assert [c.proposal.author_id for c in response.candidates] == ["dev-2", "dev-3"]
    assert response.winner.proposal.author_id == "dev-2"  # the scripted selector picks candidate 1
    assert response.selected_by == "architect-1"
    assert response.rationale == "scripted choice"
    assert not response.HasField("selection_failure")
    assert (response.selection_usage.prompt_tokens, response.selection_usage.completion_tokens) == (10, 5)
    assert response.deliberation_id == response.deliberation.deliberation_id
    assert response.execution_id == response.deliberation_id  # kept for compatibility
    assert len(response.deliberation.results) == 3

    record = await stub.GetDeliberation(pb.GetDeliberationRequest(deliberation_id=response.execution_id))
    assert record.kind == "orchestrate"
    assert record.orchestration.winner == response.winner


async def test_orchestrate_without_a_deliberation_is_invalid_argument(stub: Stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.Orchestrate(pb.OrchestrateRequest(top_k=-1, deliberation=request()))
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.Orchestrate(pb.OrchestrateRequest())
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_shutdown_lets_an_in_flight_call_finish(serve_with: ServerFactory, doubles: Doubles) -> None:
    gate = doubles.gate  # the 3 agents wait at its barrier of 4 until the test joins them
    server: RunningServer
    async with serve_with(default_rounds=0) as server, grpc.aio.insecure_channel(server.address) as channel:
        call = asyncio.ensure_future(Stub(channel).Deliberate(request(role="GATED")))
        await eventually(lambda: gate.in_flight[Phase.GENERATE] == 3, "the agents to start")
        shutdown = asyncio.ensure_future(server.shutdown(grace=HANG_GUARD))
        await eventually(lambda: server.servicer.draining, "the shutdown to begin")
        assert await _refused(Stub(channel)) is grpc.StatusCode.UNAVAILABLE  # no new calls now
        assert not call.done()

        await gate.enter(Phase.GENERATE)  # let the agents finish

        response = await call
        await shutdown
    assert len(response.results) == 3


async def _refused(stub: Stub) -> grpc.StatusCode:
    """Call GetStatus until the server refuses it; the code it refused with."""
    while True:
        try:
            await stub.GetStatus(pb.GetStatusRequest(), timeout=HANG_GUARD)
        except grpc.aio.AioRpcError as error:
            return error.code()


async def test_calls_running_past_the_grace_period_are_cancelled_and_recorded(
    serve_with: ServerFactory, doubles: Doubles
) -> None:
    gate = doubles.gate  # the agents never pass its barrier: the test does not join them
    async with serve_with(default_rounds=0) as server, grpc.aio.insecure_channel(server.address) as channel:
        before: set[asyncio.Task[object]] = asyncio.all_tasks()
        call = asyncio.ensure_future(Stub(channel).Deliberate(request(role="GATED")))
        await eventually(lambda: gate.in_flight[Phase.GENERATE] == 3, "the agents to start")

        await server.shutdown(grace=0.2)

        with pytest.raises(grpc.aio.AioRpcError) as error:
            await call
        # gRPC's own answer to a call the server stopped: retryable, on another replica.
        assert (error.value.code(), error.value.details()) == (grpc.StatusCode.UNAVAILABLE, "Cancelling all calls")
        await eventually(lambda: tasks_started_since(before) == [], "the deliberation's tasks to end")
    # The record says so, as the next server on the same database shows.
    async with serve_with() as again, grpc.aio.insecure_channel(again.address) as channel:
        page = await Stub(channel).ListDeliberations(pb.ListDeliberationsRequest(role="GATED"))
    assert [(r.status, r.error_kind) for r in page.deliberations] == [(pb.DELIBERATION_STATUS_CANCELLED, "Cancelled")]
