"""Over a real server: viable results, Orchestrate without a viable proposal, the tokens of
failed runs, and what each council seat ran."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import pytest
from grpc_test_support import ServerFactory, request

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_core.models import AgentConfig, AgentIdentity, Proposal
from orchestrator_core.plugins import PluginHost
from orchestrator_core.testing import ScriptedAgent, ScriptedBackend, ScriptedCheck, ScriptedPlugin

Stub = pb_grpc.OrchestratorServiceStub
SECRET = "k3y-do-not-show"


@dataclass
class DescribingAgent(ScriptedAgent):
    identity: AgentIdentity = field(default_factory=AgentIdentity)

    def describe(self) -> AgentIdentity:
        return self.identity


class DescribingBackend(ScriptedBackend):
    def create(self, config: AgentConfig) -> DescribingAgent:
        return DescribingAgent(
            agent_id=config.agent_id,
            identity=AgentIdentity("coder-7b", f"http://user:{SECRET}@llm.internal:8000/v1", "settings"),
        )


def sense(proposal: Proposal) -> float:
    return 0.0 if "gibberish" in proposal.content else 1.0


@pytest.fixture
async def stub(host: PluginHost, serve_with: ServerFactory) -> AsyncIterator[Stub]:
    host.register(ScriptedPlugin(DescribingBackend(name="describing"), ScriptedCheck("sense", "sense", sense)))
    host.collect()
    councils = {
        "DEV": {"backend": "scripted", "agents": 3},
        "ARCHITECT": {"backend": "scripted", "agents": 1},
        "BROKEN": {"backend": "broken", "agents": 3},
        "DESCRIBED": {"backend": "describing", "agents": 2},
    }
    async with serve_with(councils=councils) as server, grpc.aio.insecure_channel(server.address) as channel:
        yield pb_grpc.OrchestratorServiceStub(channel)


async def test_deliberate_marks_viable_results_and_ranks_them_first(stub: Stub) -> None:
    response = await stub.Deliberate(request())
    ranked = [(r.proposal.author_id, r.viable) for r in response.results]
    assert ranked == [("dev-2", True), ("dev-3", True), ("dev-1", False)]  # dev-1 fails lint
    assert response.viable_proposals == 2


async def test_deliberate_without_a_viable_proposal_still_returns_its_ranking(stub: Stub) -> None:
    response = await stub.Deliberate(request(task="gibberish"))
    assert len(response.results) == 3
    assert response.viable_proposals == 0
    assert not any(r.viable for r in response.results)


async def test_orchestrate_without_a_viable_proposal_is_failed_precondition_and_recorded(stub: Stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.Orchestrate(pb.OrchestrateRequest(deliberation=request(task="gibberish")))
    assert error.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    details = error.value.details() or ""
    assert details.startswith("no viable proposal: no proposal passed its checks (3 of 3 proposal(s) judged")

    page = await stub.ListDeliberations(pb.ListDeliberationsRequest(role="DEV"))
    [record] = page.deliberations
    assert (record.status, record.error_kind, record.error) == (
        pb.DELIBERATION_STATUS_FAILED, "NoViableProposal", details)
    assert [r.rank for r in record.response.results] == [1, 2, 3]
    assert record.response.viable_proposals == 0
    assert not record.HasField("orchestration")
    assert record.usage.prompt_tokens > 0


async def test_orchestrate_returns_a_viable_winner(stub: Stub) -> None:
    response = await stub.Orchestrate(pb.OrchestrateRequest(deliberation=request(), top_k=3))
    assert response.winner.viable
    assert [c.proposal.author_id for c in response.candidates] == ["dev-2", "dev-3"]
    assert response.deliberation.viable_proposals == 2


async def test_tokens_of_a_failed_deliberation_are_in_its_record_and_the_statistics(stub: Stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.Deliberate(request(role="BROKEN"))
    assert "below the quorum of 2" in (error.value.details() or "")
    page = await stub.ListDeliberations(pb.ListDeliberationsRequest(role="BROKEN"))
    [record] = page.deliberations
    assert (record.usage.prompt_tokens, record.usage.completion_tokens) == (10, 5)  # the one that answered
    status = await stub.GetStatus(pb.GetStatusRequest())
    assert status.statistics.failures == 1
    assert (status.statistics.usage.prompt_tokens, status.statistics.usage.completion_tokens) == (10, 5)


async def test_the_record_says_what_each_seat_ran_without_credentials(stub: Stub) -> None:
    response = await stub.Deliberate(request(role="DESCRIBED"))
    record = await stub.GetDeliberation(pb.GetDeliberationRequest(deliberation_id=response.deliberation_id))
    assert [(s.agent_id, s.backend, s.model, s.endpoint, s.source) for s in record.council] == [
        (f"described-{i}", "describing", "coder-7b", "http://llm.internal:8000/v1", "settings") for i in (1, 2)
    ]
    assert SECRET not in str(record)

