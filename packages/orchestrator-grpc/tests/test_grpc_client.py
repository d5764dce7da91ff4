"""The typed client against a real server: each deliberation call sends the options it is
given, as core models or as the messages the server sent, and closing a stream early
cancels the deliberation on the server."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import pytest
from grpc_test_support import HANG_GUARD, Doubles, eventually

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator_core.events import ProposalGenerated, RankingReady
from orchestrator_core.models import Phase, Task
from orchestrator_grpc.client import OrchestratorClient
from orchestrator_grpc.server import RunningServer

TASK = Task(role="dev", description="Write a function that adds two numbers")


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[OrchestratorClient]:
    async with OrchestratorClient(server.address) as opened:
        yield opened


async def test_deliberate_sends_the_options(client: OrchestratorClient) -> None:
    outcome = await client.deliberate(TASK, num_agents=2, rounds=0, request_id="options-1", deadline=HANG_GUARD)

    assert [r.proposal.author_id for r in outcome.results] == ["dev-2", "dev-1"]
    assert outcome.rounds == 0
    assert outcome.task == TASK  # the task sent; the response names its role only
    again = await client.deliberate(TASK, num_agents=2, rounds=0, request_id="options-1")
    assert again.deliberation_id == outcome.deliberation_id  # the same request id: the first result
    assert (await client.deliberate(TASK)).rounds == 1  # left out: the server's defaults


async def test_the_stream_as_messages_and_as_core_events(client: OrchestratorClient) -> None:
    messages = [m async for m in client.stream_deliberation_messages(TASK, num_agents=2, rounds=0)]
    events = [e async for e in client.stream_deliberation(TASK, num_agents=2, rounds=0)]

    kinds = ["proposal_generated"] * 2 + ["check"] * 8 + ["ranking"]
    assert [m.WhichOneof("event") for m in messages] == kinds
    assert messages[-1].ranking.role == "DEV"  # as the server sent it
    assert [type(e).__name__ for e in events] == [
        "ProposalGenerated", "ProposalGenerated", *["CheckCompleted"] * 8, "RankingReady"]
    assert isinstance(events[-1], RankingReady)
    assert len(events[-1].outcome.results) == 2


async def test_orchestrate_as_the_response_and_as_the_core_orchestration(client: OrchestratorClient) -> None:
    response = await client.orchestrate_response(TASK, num_agents=3, rounds=0, top_k=2)
    orchestration = await client.orchestrate(TASK, num_agents=3, rounds=0, top_k=2)

    assert isinstance(response, pb.OrchestrateResponse)
    assert response.deliberation.role == "DEV"
    assert [c.proposal.author_id for c in response.candidates] == ["dev-2", "dev-3"]
    assert [c.proposal.author_id for c in orchestration.selection.candidates] == ["dev-2", "dev-3"]
    assert orchestration.selection.winner.proposal.author_id == response.winner.proposal.author_id


@pytest.mark.parametrize("stream", ["stream_deliberation", "stream_deliberation_messages"])
async def test_closing_a_stream_early_cancels_the_deliberation(
    client: OrchestratorClient, doubles: Doubles, stream: str
) -> None:
    task = Task(role="STALL", description="Write a function that adds two numbers")
    events: AsyncGenerator[Any, None] = getattr(client, stream)(task)
    first = await anext(events)
    assert isinstance(first, ProposalGenerated) or first.WhichOneof("event") == "proposal_generated"
    await eventually(lambda: doubles.stalling.in_flight[Phase.CRITIQUE] == 2, "the critiques to start")

    await events.aclose()

    await eventually(lambda: doubles.stalling.cancelled[Phase.CRITIQUE] == 2, "the critiques' cancellation")
    page = await client.list_deliberations(role="STALL")
    assert [r.status for r in page.deliberations] == [pb.DELIBERATION_STATUS_CANCELLED]
