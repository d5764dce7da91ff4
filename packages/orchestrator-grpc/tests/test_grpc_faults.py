"""Fault injection through gRPC: agents that raise, hang, answer slowly, empty or garbage.

Each misbehaving agent is recorded as a failure (in the response, the stream and the
stored record) and takes no further part; the council goes on while the quorum (2) holds,
and below it the call is UNAVAILABLE naming every failure.
"""

from __future__ import annotations

import grpc
import pytest
from grpc_test_support import CRASH, HANG_GUARD, Doubles, ServerFactory, request

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_core.models import Phase

Stub = pb_grpc.OrchestratorServiceStub

# FAULTY's six agents: faulty-1 answers, -2 raises, -3 hangs, -4 is slow, -5 empty, -6 garbage.
EXPECTED_FAILURES = [
    ("faulty-2", "generate",
     f"RuntimeError: {CRASH} [a bug in backend 'faulty' (agent faulty-2 generate); see the service log]"),
    ("faulty-3", "generate",
     "timed out after 0.5s (backend 'faulty', agent faulty-3 generate; "
     "bound: the task's constraints.agent_timeout_seconds)"),
    ("faulty-5", "generate", "returned an empty reply"),
    ("faulty-6", "generate",
     "TypeError: returned dict, not an AgentReply [a bug in backend 'faulty' (agent faulty-6 generate); "
     "see the service log]"),
]


def faulty_request(**fields: object) -> pb.DeliberateRequest:
    # The hanging agent is stopped by the task's own per-agent bound.
    return request(
        role="FAULTY", rounds=1, constraints=pb.TaskConstraints(agent_timeout_seconds=0.5), **fields
    )


async def test_each_fault_is_recorded_and_the_rest_of_the_council_goes_on(stub: Stub, doubles: Doubles) -> None:
    response = await stub.Deliberate(faulty_request(), timeout=HANG_GUARD)

    failures = sorted((f.agent_id, f.phase, f.error) for f in response.failures)
    assert failures == EXPECTED_FAILURES
    assert {f.round for f in response.failures} == {0}
    # The answering and the slow agent critique each other and revise.
    assert sorted(r.proposal.author_id for r in response.results) == ["faulty-1", "faulty-4"]
    assert {r.proposal.revision for r in response.results} == {1}
    assert response.rounds == 1
    assert doubles.faults.cancelled[Phase.GENERATE] == 1  # the hanging call, at its timeout
    assert doubles.faults.in_flight[Phase.GENERATE] == 0
    # 2 proposals + 2 critiques + 2 revisions, and the empty reply (it was answered, so its
    # tokens were spent); calls that raised, hung or returned no AgentReply reported none.
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (70, 35)

    record = await stub.GetDeliberation(pb.GetDeliberationRequest(deliberation_id=response.deliberation_id))
    assert record.status == pb.DELIBERATION_STATUS_SUCCEEDED
    assert sorted((f.agent_id, f.phase, f.error) for f in record.failures) == EXPECTED_FAILURES


async def test_the_stream_reports_each_failure_as_it_happens(stub: Stub) -> None:
    events = [e async for e in stub.StreamDeliberation(faulty_request(), timeout=HANG_GUARD)]

    failed = sorted(
        (e.agent_failure.agent_id, e.agent_failure.error) for e in events if e.WhichOneof("event") == "agent_failure"
    )
    assert failed == [(agent, error) for agent, _, error in EXPECTED_FAILURES]
    # Every failure comes before the first critique: each failed in generate and took no further part.
    kinds = [e.WhichOneof("event") for e in events]
    assert max(i for i, k in enumerate(kinds) if k == "agent_failure") < kinds.index("critique")
    assert kinds[-1] == "ranking"
    assert len({e.deliberation_id for e in events}) == 1


async def test_below_the_quorum_lost_to_bugs_the_call_is_internal_naming_every_failure(stub: Stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.Deliberate(request(role="BROKEN"), timeout=HANG_GUARD)

    assert error.value.code() is grpc.StatusCode.INTERNAL  # the backend's bugs: retrying cannot help
    details = error.value.details() or ""
    assert details.startswith("2 of 3 agents failed, leaving 1, below the quorum of 2, because of a bug in the code "
                              "of backend 'broken'; see the service log: ")
    assert f"broken-2 in generate: RuntimeError: {CRASH}" in details
    assert "broken-3 in generate: TypeError: returned dict, not an AgentReply" in details

    page = await stub.ListDeliberations(pb.ListDeliberationsRequest(role="BROKEN"))
    [record] = page.deliberations
    assert (record.status, record.error_kind) == (pb.DELIBERATION_STATUS_FAILED, "QuorumLost")
    assert sorted(f.agent_id for f in record.failures) == ["broken-2", "broken-3"]


async def test_a_quorum_of_one_lets_a_lone_agent_finish(serve_with: ServerFactory) -> None:
    async with serve_with(quorum=1) as server, grpc.aio.insecure_channel(server.address) as channel:
        response = await Stub(channel).Deliberate(request(role="BROKEN"), timeout=HANG_GUARD)
    assert [r.proposal.author_id for r in response.results] == ["broken-1"]
    assert response.rounds == 0  # nobody left to critique a peer
    assert sorted(f.agent_id for f in response.failures) == ["broken-2", "broken-3"]
