"""Deliberate, Orchestrate and StreamDeliberation with ``ORCH_NATS_URL`` set: they submit the
deliberation to JetStream (a nats-server of the test's own) and watch its record, answering
as they do when they run it themselves. Two servers share the records and the NATS server:
a pure front (``ORCH_QUEUE_WORKERS=0``) that is called, and a worker that runs every
deliberation; each record names the worker as its owner, so the answers came through the
queue. Submit and Watch work the same over JetStream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_test_support import HANG_GUARD, Doubles, eventually, request
from nats_support import nats_server
from queue_support import queued_settings, watched

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_core.models import Phase, Proposal
from orchestrator_core.plugins import PluginHost
from orchestrator_core.testing import ScriptedCheck, ScriptedPlugin
from orchestrator_grpc.server import RunningServer, running_server
from orchestrator_grpc.status import DELIBERATION_ID_METADATA

Code = grpc.StatusCode


@dataclass
class Pair:
    front: RunningServer
    worker: RunningServer
    stub: pb_grpc.OrchestratorServiceStub
    """Calls the front."""

    async def record(self, deliberation_id: str) -> pb.DeliberationRecord:
        return await self.stub.GetDeliberation(pb.GetDeliberationRequest(deliberation_id=deliberation_id))


def sense(proposal: Proposal) -> float:
    """A check that fails every proposal of a task asking for gibberish."""
    return 0.0 if "gibberish" in proposal.content else 1.0


@pytest.fixture
async def pair(host: PluginHost, tmp_path: Path) -> AsyncIterator[Pair]:
    host.register(ScriptedPlugin(ScriptedCheck("sense", "sense", sense)), name="sense")
    host.collect()
    with nats_server(tmp_path) as nats:
        common = {"nats_url": nats.url, "queue_ack_wait_seconds": 5.0}
        worker_settings = queued_settings(tmp_path, queue_workers=2, **common)
        front_settings = queued_settings(tmp_path, queue_workers=0, **common)
        async with (
            running_server(worker_settings, plugins=host) as worker,
            running_server(front_settings, plugins=host) as front,
            grpc.aio.insecure_channel(front.address) as channel,
        ):
            yield Pair(front, worker, pb_grpc.OrchestratorServiceStub(channel))


async def test_deliberate_through_the_queue_answers_the_ranking_a_worker_ran(pair: Pair) -> None:
    async with asyncio.timeout(HANG_GUARD):
        response = await pair.stub.Deliberate(request("DEV", request_id="through-1"))
    assert len(response.results) == 3
    record = await pair.record(response.deliberation_id)
    assert record.status == pb.DELIBERATION_STATUS_SUCCEEDED
    assert record.owner == pair.worker.orchestrator.owner  # run by the worker, not the front
    assert record.response == response
    again = await pair.stub.Deliberate(request("DEV", request_id="through-1"))
    assert again == response


async def test_orchestrate_through_the_queue_answers_the_winner(pair: Pair) -> None:
    async with asyncio.timeout(HANG_GUARD):
        response = await pair.stub.Orchestrate(pb.OrchestrateRequest(deliberation=request("DEV"), top_k=2))
    assert response.winner.viable
    assert len(response.candidates) == 2
    record = await pair.record(response.deliberation_id)
    assert record.owner == pair.worker.orchestrator.owner
    assert record.orchestration == response


async def test_an_orchestration_without_a_viable_proposal_fails_as_it_does_in_process(pair: Pair) -> None:
    doomed = request("DEV", task="gibberish")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async with asyncio.timeout(HANG_GUARD):
            await pair.stub.Orchestrate(pb.OrchestrateRequest(deliberation=doomed))
    assert raised.value.code() is Code.FAILED_PRECONDITION
    metadata = dict(raised.value.trailing_metadata() or ())
    record = await pair.record(metadata[DELIBERATION_ID_METADATA])
    assert record.error_kind == "NoViableProposal"
    assert record.owner == pair.worker.orchestrator.owner


async def test_stream_deliberation_through_the_queue_streams_the_numbered_events(pair: Pair) -> None:
    async with asyncio.timeout(HANG_GUARD):
        events = [event async for event in pair.stub.StreamDeliberation(request("DEV"))]
    assert events[-1].WhichOneof("event") == "ranking"
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    deliberation_id = events[-1].ranking.deliberation_id
    record = await pair.record(deliberation_id)
    assert record.owner == pair.worker.orchestrator.owner
    assert (await watched(pair.stub, deliberation_id))[:-1] == events


async def test_calls_through_the_queue_fail_with_the_codes_of_calls_run_in_process(pair: Pair) -> None:
    cases = [
        (request("PHYSICS"), Code.FAILED_PRECONDITION),  # refused before anything is queued
        (request("DEV", task=" "), Code.INVALID_ARGUMENT),
        (request("DEVOPS"), Code.UNAVAILABLE),  # its backend is unreachable: the quorum is lost
    ]
    for message, code in cases:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            async with asyncio.timeout(HANG_GUARD):
                await pair.stub.Deliberate(message)
        assert (message.role, raised.value.code()) == (message.role, code)
    page = await pair.stub.ListDeliberations(pb.ListDeliberationsRequest())
    assert [r.role for r in page.deliberations] == ["DEVOPS"]
    assert page.deliberations[0].error_kind == "QuorumLost"


async def test_a_caller_that_goes_away_cancels_the_queued_deliberation(pair: Pair, doubles: Doubles) -> None:
    call = pair.stub.Deliberate(request("QA"))  # its agents hang
    await eventually(lambda: doubles.hanging.in_flight[Phase.GENERATE] == 2, "the QA agents to be called")
    call.cancel()
    page = await pair.stub.ListDeliberations(pb.ListDeliberationsRequest(role="QA"))
    (record,) = page.deliberations
    events = await watched(pair.stub, record.deliberation_id)
    assert events[-1].finished.status == pb.DELIBERATION_STATUS_CANCELLED
    await eventually(lambda: doubles.hanging.in_flight[Phase.GENERATE] == 0, "the agents' calls to be cancelled")


async def test_submit_and_watch_over_jetstream(pair: Pair) -> None:
    response = await pair.stub.SubmitDeliberation(pb.SubmitDeliberationRequest(deliberate=request("DEV")))
    events = await watched(pair.stub, response.deliberation_id)
    assert events[-1].finished.status == pb.DELIBERATION_STATUS_SUCCEEDED
    assert (await pair.record(response.deliberation_id)).owner == pair.worker.orchestrator.owner
    status = await pair.stub.GetStatus(pb.GetStatusRequest())
    assert status.statistics.queue_pending == 0
    assert status.statistics.queue_in_flight == 0


async def test_one_request_id_submitted_to_two_replicas_is_one_deliberation(pair: Pair) -> None:
    submission = pb.SubmitDeliberationRequest(deliberate=request("DEV", request_id="both-replicas"))
    first = await pair.stub.SubmitDeliberation(submission)
    async with grpc.aio.insecure_channel(pair.worker.address) as channel:
        second = await pb_grpc.OrchestratorServiceStub(channel).SubmitDeliberation(submission)
    assert second.deliberation_id == first.deliberation_id
    events = await watched(pair.stub, first.deliberation_id)
    assert events[-1].finished.status == pb.DELIBERATION_STATUS_SUCCEEDED
    page = await pair.stub.ListDeliberations(pb.ListDeliberationsRequest())
    assert [r.deliberation_id for r in page.deliberations] == [first.deliberation_id]
