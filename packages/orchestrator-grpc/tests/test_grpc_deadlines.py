"""Deadlines and cancellation end to end: the client's deadline bounds the deliberation,
the per-agent bound (settings or the task's constraints) applies inside it, and when the
deadline passes every agent call in flight is cancelled and no task is left running."""

from __future__ import annotations

import asyncio
import re

import grpc
import pytest
from grpc_test_support import HANG_GUARD, Doubles, ServerFactory, eventually, request, tasks_started_since

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_core.models import Phase

Stub = pb_grpc.OrchestratorServiceStub


async def test_a_passed_deadline_cancels_every_agent_call_and_leaves_no_task(stub: Stub, doubles: Doubles) -> None:
    await stub.GetStatus(pb.GetStatusRequest())  # the channel is connected before the snapshot
    before: set[asyncio.Task[object]] = asyncio.all_tasks()

    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.Deliberate(request(role="QA"), timeout=0.5)

    assert error.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    await eventually(lambda: doubles.hanging.cancelled[Phase.GENERATE] == 2, "the agents' cancellation")
    assert doubles.hanging.in_flight[Phase.GENERATE] == 0
    await eventually(lambda: not tasks_started_since(before), "every task of the call to end")
    [record] = (await stub.ListDeliberations(pb.ListDeliberationsRequest(role="QA"))).deliberations
    assert record.status in (pb.DELIBERATION_STATUS_FAILED, pb.DELIBERATION_STATUS_CANCELLED)
    assert record.error_kind in ("DeadlineExceeded", "Cancelled")
    assert (await stub.GetStatus(pb.GetStatusRequest())).statistics.in_flight == 0


async def test_a_stream_past_its_deadline_is_cancelled_mid_phase(stub: Stub, doubles: Doubles) -> None:
    await stub.GetStatus(pb.GetStatusRequest())
    before: set[asyncio.Task[object]] = asyncio.all_tasks()
    call = stub.StreamDeliberation(request(role="STALL"), timeout=1.0)
    first, second = await call.read(), await call.read()

    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call.read()

    assert error.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    # Every event carries the deliberation's id, from the first one on.
    assert first.deliberation_id == second.deliberation_id
    assert len(first.deliberation_id) == 32
    await eventually(lambda: doubles.stalling.cancelled[Phase.CRITIQUE] == 2, "the critiques' cancellation")
    await eventually(lambda: not tasks_started_since(before), "every task of the call to end")
    record = await stub.GetDeliberation(pb.GetDeliberationRequest(deliberation_id=first.deliberation_id))
    assert record.status in (pb.DELIBERATION_STATUS_FAILED, pb.DELIBERATION_STATUS_CANCELLED)


async def test_the_tasks_agent_timeout_bounds_each_call(stub: Stub, doubles: Doubles) -> None:
    constraints = pb.TaskConstraints(agent_timeout_seconds=0.2)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.Deliberate(request(role="QA", constraints=constraints), timeout=HANG_GUARD)

    # Both hanging agents were stopped at 0.2s, far inside the deliberation's budget: the
    # first timeout lost the quorum (2 of 2), and the other call, timed out at the same
    # moment or cancelled with the phase, ended with it.
    assert error.value.code() is grpc.StatusCode.UNAVAILABLE
    details = error.value.details() or ""
    assert re.search(r"qa-[12] in generate: timed out after 0\.2s", details), details
    assert doubles.hanging.cancelled[Phase.GENERATE] == 2


async def test_the_agent_timeout_bounds_every_phase(stub: Stub, doubles: Doubles) -> None:
    # STALL's agents propose at once, then never finish critiquing.
    constraints = pb.TaskConstraints(agent_timeout_seconds=0.2)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.Deliberate(request(role="STALL", constraints=constraints), timeout=HANG_GUARD)

    assert error.value.code() is grpc.StatusCode.UNAVAILABLE
    assert "stall-1 in critique: timed out after 0.2s" in (error.value.details() or "")
    assert doubles.stalling.cancelled[Phase.CRITIQUE] == 2


async def test_the_tighter_of_the_servers_and_the_tasks_agent_timeout_applies(serve_with: ServerFactory) -> None:
    async with serve_with(agent_timeout_seconds=0.2) as server, grpc.aio.insecure_channel(server.address) as channel:
        constraints = pb.TaskConstraints(agent_timeout_seconds=HANG_GUARD * 10)
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await Stub(channel).Deliberate(request(role="QA", constraints=constraints), timeout=HANG_GUARD)
    assert "qa-1 in generate: timed out after 0.2s" in (error.value.details() or "")


async def test_the_servers_deliberation_timeout_bounds_a_call_without_a_deadline(serve_with: ServerFactory) -> None:
    async with serve_with(deliberation_timeout_seconds=0.3) as server, grpc.aio.insecure_channel(
        server.address
    ) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await Stub(channel).Deliberate(request(role="QA"))
    assert error.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert error.value.details() == "the deliberation did not finish within 0.3s"
