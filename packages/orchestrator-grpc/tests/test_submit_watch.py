"""SubmitDeliberation, WatchDeliberation and CancelDeliberation over a real server with
scripted agents, on the in-process queue: a submission answered before its agents finish,
watches from the start, from a point and of a finished deliberation, cancels of queued,
running and finished ones, idempotent submissions, bad input, and GetStatus's queue depth.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_test_support import HANG_GUARD, Doubles, eventually, request
from queue_support import HeldProbe, queued_settings, watched, with_held_backend
from test_bad_input import CASES

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_core.models import Phase
from orchestrator_core.plugins import PluginHost
from orchestrator_core.testing import PluginRegistrar
from orchestrator_grpc.server import RunningServer, running_server

Code = grpc.StatusCode


@pytest.fixture
def held() -> HeldProbe:
    return HeldProbe()


@pytest.fixture
def queued_host(host: PluginHost, orchestrator_plugins: PluginRegistrar, held: HeldProbe) -> PluginHost:
    return with_held_backend(host, orchestrator_plugins, held)


@pytest.fixture
def serve_queued(queued_host: PluginHost, tmp_path: Path) -> Any:
    def factory(**overrides: Any) -> AbstractAsyncContextManager[RunningServer]:
        return running_server(queued_settings(tmp_path, **overrides), plugins=queued_host)

    return factory


@pytest.fixture
async def queued_stub(serve_queued: Any) -> AsyncIterator[pb_grpc.OrchestratorServiceStub]:
    async with serve_queued() as server, grpc.aio.insecure_channel(server.address) as channel:
        yield pb_grpc.OrchestratorServiceStub(channel)


def submission(role: str = "DEV", **fields: Any) -> pb.SubmitDeliberationRequest:
    return pb.SubmitDeliberationRequest(deliberate=request(role=role, **fields))


async def test_submit_answers_before_the_agents_finish_and_the_record_shows_queued_or_running(
    queued_stub: pb_grpc.OrchestratorServiceStub, held: HeldProbe
) -> None:
    response = await queued_stub.SubmitDeliberation(submission("HELD"))
    assert response.status == pb.DELIBERATION_STATUS_QUEUED
    # Every agent call is held at its start: the answer came before any of them could finish.
    assert held.passed == 0
    record = await queued_stub.GetDeliberation(pb.GetDeliberationRequest(deliberation_id=response.deliberation_id))
    assert record.status in (pb.DELIBERATION_STATUS_QUEUED, pb.DELIBERATION_STATUS_RUNNING)
    assert not record.proposals
    # The budget counts from the submission: the server's default deliberation timeout.
    assert record.deadline_at > record.created_at
    held.release.set()
    events = await watched(queued_stub, response.deliberation_id)
    assert events[-1].finished.status == pb.DELIBERATION_STATUS_SUCCEEDED
    assert held.passed > 0


async def test_watch_from_the_start_streams_every_event_in_sequence_and_ends_with_succeeded(
    queued_stub: pb_grpc.OrchestratorServiceStub, held: HeldProbe
) -> None:
    response = await queued_stub.SubmitDeliberation(submission("HELD"))
    watch = asyncio.create_task(watched(queued_stub, response.deliberation_id))
    held.release.set()  # the watch follows the run live from here
    events = await watch
    *steps, last = events
    assert last.WhichOneof("event") == "finished"
    assert last.finished.status == pb.DELIBERATION_STATUS_SUCCEEDED
    assert last.finished.error == ""
    assert last.finished.error_kind == ""
    assert [e.sequence for e in steps] == list(range(1, len(steps) + 1))
    assert all(e.deliberation_id == response.deliberation_id for e in events)
    record = await queued_stub.GetDeliberation(pb.GetDeliberationRequest(deliberation_id=response.deliberation_id))
    kinds = [e.WhichOneof("event") for e in steps]
    # 3 agents, 1 round: 3 proposals, 3 critiques each of another's, 3 revisions, their
    # checks, then the ranking; each is in the record.
    assert kinds.count("proposal_generated") + kinds.count("revision") == len(record.proposals) == 6
    assert kinds.count("critique") == len(record.critiques) > 0
    assert kinds.count("check") == len(record.checks) > 0
    assert kinds[-1] == "ranking"
    assert steps[-1].ranking == record.response


async def test_watch_after_a_sequence_streams_exactly_the_events_after_it(
    queued_stub: pb_grpc.OrchestratorServiceStub,
) -> None:
    response = await queued_stub.SubmitDeliberation(submission("DEV"))
    everything = await watched(queued_stub, response.deliberation_id)
    steps = everything[:-1]
    assert len(steps) > 4
    for k in (1, 4, len(steps) - 1, len(steps)):
        after = await watched(queued_stub, response.deliberation_id, after=k)
        assert after[:-1] == steps[k:], f"after {k}"
        assert after[-1].finished.status == pb.DELIBERATION_STATUS_SUCCEEDED


async def test_watch_of_a_finished_deliberation_replays_it_and_ends(
    queued_stub: pb_grpc.OrchestratorServiceStub,
) -> None:
    deliberated = await queued_stub.Deliberate(request("DEV"))
    events = await watched(queued_stub, deliberated.deliberation_id)
    assert [e.sequence for e in events[:-1]] == list(range(1, len(events)))
    assert events[-2].ranking == deliberated
    assert events[-1].finished.status == pb.DELIBERATION_STATUS_SUCCEEDED
    assert await watched(queued_stub, deliberated.deliberation_id) == events  # the same every time


async def test_cancel_of_a_queued_deliberation_cancels_it_at_once(serve_queued: Any, held: HeldProbe) -> None:
    async with serve_queued(queue_workers=0) as server, grpc.aio.insecure_channel(server.address) as channel:
        stub = pb_grpc.OrchestratorServiceStub(channel)
        response = await stub.SubmitDeliberation(submission("HELD"))
        cancelled = await stub.CancelDeliberation(
            pb.CancelDeliberationRequest(deliberation_id=response.deliberation_id)
        )
        assert cancelled.deliberation_id == response.deliberation_id
        assert cancelled.status == pb.DELIBERATION_STATUS_CANCELLED
        events = await watched(stub, response.deliberation_id)
        assert [e.WhichOneof("event") for e in events] == ["finished"]
        assert events[0].finished.status == pb.DELIBERATION_STATUS_CANCELLED
        assert held.calls.total() == 0  # no agent was ever called


async def test_cancel_of_a_running_deliberation_ends_it_cancelled_and_its_watcher_sees_that(
    queued_stub: pb_grpc.OrchestratorServiceStub, doubles: Doubles
) -> None:
    response = await queued_stub.SubmitDeliberation(submission("QA"))  # its agents hang in generate
    await eventually(lambda: doubles.hanging.in_flight[Phase.GENERATE] == 2, "the QA agents to be called")
    watch = asyncio.create_task(watched(queued_stub, response.deliberation_id))
    cancelled = await queued_stub.CancelDeliberation(
        pb.CancelDeliberationRequest(deliberation_id=response.deliberation_id)
    )
    assert cancelled.status in (pb.DELIBERATION_STATUS_RUNNING, pb.DELIBERATION_STATUS_CANCELLED)
    events = await watch
    assert events[-1].finished.status == pb.DELIBERATION_STATUS_CANCELLED
    assert events[-1].finished.error_kind == "Cancelled"
    record = await queued_stub.GetDeliberation(pb.GetDeliberationRequest(deliberation_id=response.deliberation_id))
    assert record.status == pb.DELIBERATION_STATUS_CANCELLED
    await eventually(lambda: doubles.hanging.in_flight[Phase.GENERATE] == 0, "the agents' calls to be cancelled")
    assert doubles.hanging.cancelled[Phase.GENERATE] == 2


async def test_cancel_of_a_finished_deliberation_is_failed_precondition(
    queued_stub: pb_grpc.OrchestratorServiceStub,
) -> None:
    deliberated = await queued_stub.Deliberate(request("DEV"))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await queued_stub.CancelDeliberation(pb.CancelDeliberationRequest(deliberation_id=deliberated.deliberation_id))
    assert raised.value.code() is Code.FAILED_PRECONDITION
    record = await queued_stub.GetDeliberation(pb.GetDeliberationRequest(deliberation_id=deliberated.deliberation_id))
    assert record.status == pb.DELIBERATION_STATUS_SUCCEEDED


async def test_a_submission_with_a_request_id_twice_is_one_deliberation(
    queued_stub: pb_grpc.OrchestratorServiceStub, held: HeldProbe
) -> None:
    first = await queued_stub.SubmitDeliberation(submission("HELD", request_id="nightly-42"))
    again = await queued_stub.SubmitDeliberation(submission("HELD", request_id="nightly-42"))
    assert again.deliberation_id == first.deliberation_id
    held.release.set()
    await watched(queued_stub, first.deliberation_id)
    finished = await queued_stub.SubmitDeliberation(submission("HELD", request_id="nightly-42"))
    assert finished.deliberation_id == first.deliberation_id
    assert finished.status == pb.DELIBERATION_STATUS_SUCCEEDED
    page = await queued_stub.ListDeliberations(pb.ListDeliberationsRequest())
    assert [r.deliberation_id for r in page.deliberations] == [first.deliberation_id]


async def test_an_orchestration_submitted_ends_with_its_winner(queued_stub: pb_grpc.OrchestratorServiceStub) -> None:
    response = await queued_stub.SubmitDeliberation(
        pb.SubmitDeliberationRequest(orchestrate=pb.OrchestrateRequest(deliberation=request("DEV"), top_k=2))
    )
    events = await watched(queued_stub, response.deliberation_id)
    assert events[-1].finished.status == pb.DELIBERATION_STATUS_SUCCEEDED
    record = await queued_stub.GetDeliberation(pb.GetDeliberationRequest(deliberation_id=response.deliberation_id))
    assert record.kind == "orchestrate"
    assert record.top_k == 2
    assert len(record.orchestration.candidates) == 2
    assert record.orchestration.winner.viable


SUBMITTED_CASES = [
    case for case in CASES
    if case.method == "Deliberate" and isinstance(case.request, pb.DeliberateRequest)
    and case.code in (Code.INVALID_ARGUMENT, Code.FAILED_PRECONDITION)
    and case.name != "role of a council that cannot run"  # this server's QA council runs
]


async def test_bad_submissions_get_deliberates_status_codes_and_write_no_record(serve_queued: Any) -> None:
    assert len(SUBMITTED_CASES) > 20
    async with serve_queued(max_task_chars=2000) as server, grpc.aio.insecure_channel(server.address) as channel:
        stub = pb_grpc.OrchestratorServiceStub(channel)
        submissions = [(case.name, pb.SubmitDeliberationRequest(deliberate=case.request), case.code, case.fragment)
                       for case in SUBMITTED_CASES]
        orchestration = pb.OrchestrateRequest(deliberation=request("DEV"), top_k=-1)
        submissions += [
            ("no request", pb.SubmitDeliberationRequest(), Code.INVALID_ARGUMENT, "request is required"),
            ("negative top_k", pb.SubmitDeliberationRequest(orchestrate=orchestration),
             Code.INVALID_ARGUMENT, "top_k must not be negative; got -1"),
            ("orchestration of an unknown role",
             pb.SubmitDeliberationRequest(orchestrate=pb.OrchestrateRequest(deliberation=request("PHYSICS"))),
             Code.FAILED_PRECONDITION, "ORCH_COUNCILS__PHYSICS__BACKEND"),
        ]
        for name, message, code, fragment in submissions:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.SubmitDeliberation(message)
            assert (name, raised.value.code()) == (name, code)
            assert fragment in (raised.value.details() or ""), name
        page = await stub.ListDeliberations(pb.ListDeliberationsRequest())
        assert list(page.deliberations) == []


@pytest.mark.parametrize(
    ("deliberation_id", "code"),
    [("no-such-deliberation", Code.NOT_FOUND), ("a\x07b", Code.INVALID_ARGUMENT), ("x" * 129, Code.INVALID_ARGUMENT)],
)
async def test_watch_and_cancel_of_an_unknown_or_a_bad_id_get_the_code_get_deliberation_gets(
    queued_stub: pb_grpc.OrchestratorServiceStub, deliberation_id: str, code: Code
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as got:
        await queued_stub.GetDeliberation(pb.GetDeliberationRequest(deliberation_id=deliberation_id))
    assert got.value.code() is code
    with pytest.raises(grpc.aio.AioRpcError) as watch:
        await watched(queued_stub, deliberation_id)
    assert watch.value.code() is code
    with pytest.raises(grpc.aio.AioRpcError) as cancel:
        await queued_stub.CancelDeliberation(pb.CancelDeliberationRequest(deliberation_id=deliberation_id))
    assert cancel.value.code() is code


async def test_watch_from_a_negative_sequence_is_invalid_argument(
    queued_stub: pb_grpc.OrchestratorServiceStub,
) -> None:
    deliberated = await queued_stub.Deliberate(request("DEV"))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await watched(queued_stub, deliberated.deliberation_id, after=-1)
    assert raised.value.code() is Code.INVALID_ARGUMENT
    assert "after_sequence must not be negative" in (raised.value.details() or "")


async def test_get_status_shows_the_deliberations_waiting_in_the_queue(serve_queued: Any) -> None:
    async with serve_queued(queue_workers=0) as server, grpc.aio.insecure_channel(server.address) as channel:
        stub = pb_grpc.OrchestratorServiceStub(channel)
        before = (await stub.GetStatus(pb.GetStatusRequest())).statistics
        assert (before.queue_pending, before.queue_in_flight) == (0, 0)
        for _ in range(2):
            await stub.SubmitDeliberation(submission("DEV"))
        statistics = (await stub.GetStatus(pb.GetStatusRequest())).statistics
        assert (statistics.queue_pending, statistics.queue_in_flight, statistics.queue_redelivered) == (2, 0, 0)


async def test_shutdown_stops_taking_queued_deliberations_and_lets_the_running_one_finish(
    serve_queued: Any, held: HeldProbe
) -> None:
    async with serve_queued(queue_workers=1) as server, grpc.aio.insecure_channel(server.address) as channel:
        stub = pb_grpc.OrchestratorServiceStub(channel)
        running = await stub.SubmitDeliberation(submission("HELD"))
        waiting = await stub.SubmitDeliberation(submission("HELD"))  # the one worker is busy
        await eventually(lambda: held.calls[Phase.GENERATE] == 3, "the first deliberation's agents to be called")
        shutdown = asyncio.create_task(server.shutdown(grace=HANG_GUARD))
        # The workers were told to stop (no await lies between the two) before the run goes on.
        await eventually(lambda: server.servicer.draining, "the shutdown to begin")
        held.release.set()
        await shutdown
    assert held.calls[Phase.GENERATE] == 3  # the waiting deliberation was never taken
    async with serve_queued(queue_workers=0) as again, grpc.aio.insecure_channel(again.address) as channel:
        stub = pb_grpc.OrchestratorServiceStub(channel)
        finished = await stub.GetDeliberation(pb.GetDeliberationRequest(deliberation_id=running.deliberation_id))
        assert finished.status == pb.DELIBERATION_STATUS_SUCCEEDED
        # The in-process queue died with its process: the next one's upkeep interrupts what it left.
        left = await stub.GetDeliberation(pb.GetDeliberationRequest(deliberation_id=waiting.deliberation_id))
        assert left.status == pb.DELIBERATION_STATUS_INTERRUPTED
