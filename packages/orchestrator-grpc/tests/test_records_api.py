"""The full record over gRPC: every proposal version, critique, check, phase and the council;
and ListDeliberations' time range."""

from __future__ import annotations

import grpc
import pytest
from grpc_test_support import request

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_grpc.cli.arguments import point_in_time

Stub = pb_grpc.OrchestratorServiceStub


async def test_a_record_carries_the_whole_deliberation(stub: Stub) -> None:
    response = await stub.Deliberate(request(rounds=1, constraints=pb.TaskConstraints(rubric="short")))
    record = await stub.GetDeliberation(pb.GetDeliberationRequest(deliberation_id=response.deliberation_id))

    assert [s.agent_id for s in record.council] == ["dev-1", "dev-2", "dev-3"]
    assert {s.backend for s in record.council} == {"scripted"}
    assert (record.num_agents, record.rounds, record.top_k) == (3, 1, 0)
    assert [(p.proposal_id, p.revision) for p in record.proposals] == [
        ("dev-1-v0", 0), ("dev-2-v0", 0), ("dev-3-v0", 0), ("dev-1-v1", 1), ("dev-2-v1", 1), ("dev-3-v1", 1)]
    assert sorted(c.critic_id for c in record.critiques) == ["dev-1", "dev-2", "dev-3"]
    assert len(record.checks) == 3 * 4  # four checks on each final proposal
    assert {c.proposal_id for c in record.checks} == {"dev-1-v1", "dev-2-v1", "dev-3-v1"}
    assert [(p.phase, p.round) for p in record.phases] == [
        ("generate", 0), ("critique", 1), ("revise", 1), ("check", 0)]
    assert record.usage == response.usage
    assert record.constraints.rubric == "short"
    assert record.owner
    assert record.updated_at >= record.created_at


async def test_records_are_listed_within_a_time_range(stub: Stub) -> None:
    ids = [(await stub.Deliberate(request(task=f"task {n}"))).deliberation_id for n in range(3)]
    middle = await stub.GetDeliberation(pb.GetDeliberationRequest(deliberation_id=ids[1]))

    since = await stub.ListDeliberations(pb.ListDeliberationsRequest(created_after=middle.created_at))
    until = await stub.ListDeliberations(pb.ListDeliberationsRequest(created_before=middle.created_at))

    assert [r.deliberation_id for r in since.deliberations] == [ids[2], ids[1]]
    assert [r.deliberation_id for r in until.deliberations] == [ids[0]]


async def test_a_reversed_time_range_is_invalid_argument(stub: Stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.ListDeliberations(pb.ListDeliberationsRequest(created_after=20.0, created_before=10.0))
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "later than created_before" in (error.value.details() or "")


def test_the_cli_reads_iso_times_as_utc_unless_zoned() -> None:
    assert point_in_time("1970-01-02") == 86_400.0
    assert point_in_time("1970-01-01T01:00:00+01:00") == 0.0
    with pytest.raises(Exception, match="not an ISO 8601 time"):
        point_in_time("yesterday")
