"""The one mapping of domain errors to status codes, and what a bug looks like to a client."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_core.errors import (
    AgentError,
    AtCapacity,
    BackendRejected,
    BackendUnavailable,
    DeadlineExceeded,
    InvalidRequest,
    NoCouncil,
    NotFound,
    QuorumLost,
    RecordsUnavailable,
)
from orchestrator_grpc.status import status_for, stream_errors, unary_errors

Code = grpc.StatusCode


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidRequest("task is required"), Code.INVALID_ARGUMENT),
        (NotFound("no deliberation has id 'x'"), Code.NOT_FOUND),
        (NoCouncil("configure ORCH_COUNCILS__X__BACKEND"), Code.FAILED_PRECONDITION),
        (AtCapacity("retry later"), Code.RESOURCE_EXHAUSTED),
        (BackendUnavailable("cannot reach http://h/v1"), Code.UNAVAILABLE),
        (BackendRejected("bad credentials"), Code.FAILED_PRECONDITION),
        (AgentError("empty reply"), Code.UNAVAILABLE),
        (DeadlineExceeded("did not finish within 1s"), Code.DEADLINE_EXCEEDED),
        (QuorumLost("2 of 3 failed", cause=BackendUnavailable("down")), Code.UNAVAILABLE),
        (QuorumLost("2 of 3 failed", cause=BackendRejected("bad key")), Code.FAILED_PRECONDITION),
        (QuorumLost("2 of 3 failed"), Code.UNAVAILABLE),
        (RecordsUnavailable("cannot reach postgresql://db:5432/orchestrator"), Code.UNAVAILABLE),
        (asyncio.CancelledError(), Code.CANCELLED),
    ],
)
def test_each_domain_error_has_its_status_code(error: BaseException, code: grpc.StatusCode) -> None:
    mapped = status_for(error)
    assert mapped is not None
    assert mapped[0] is code
    if not isinstance(error, asyncio.CancelledError):
        assert mapped[1] == str(error)


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyError("k"), TimeoutError(), ValueError("v")])
def test_anything_else_is_unexpected(error: Exception) -> None:
    assert status_for(error) is None


SECRET = "internal detail: sk-not-for-clients"


class _Broken(pb_grpc.OrchestratorServiceServicer):
    """A servicer with bugs, to see what a client gets when the service has one."""

    @unary_errors
    async def GetStatus(self, request: pb.GetStatusRequest, context: Any) -> pb.GetStatusResponse:
        raise RuntimeError(SECRET)

    @unary_errors
    async def GetDeliberation(self, request: pb.GetDeliberationRequest, context: Any) -> pb.DeliberationRecord:
        raise asyncio.CancelledError()  # e.g. an inner task cancelled by someone else

    @unary_errors
    async def ListDeliberations(
        self, request: pb.ListDeliberationsRequest, context: Any
    ) -> pb.ListDeliberationsResponse:
        await context.abort(Code.PERMISSION_DENIED, "the method's own abort")
        raise AssertionError("unreachable: context.abort raises")

    @stream_errors
    async def StreamDeliberation(
        self, request: pb.DeliberateRequest, context: Any
    ) -> AsyncIterator[pb.DeliberationEvent]:
        """One event, then what the request's role names: a bug, a domain error, a
        cancellation from inside, or the method's own abort."""
        yield pb.DeliberationEvent(deliberation_id="first")
        if request.role == "INVALID":
            raise InvalidRequest("constraints.tests names 'a.py' twice")
        if request.role == "CANCELLED":
            raise asyncio.CancelledError()
        if request.role == "ABORTED":
            await context.abort(Code.PERMISSION_DENIED, "the method's own abort")
        raise RuntimeError(SECRET)


@pytest.fixture
async def broken_stub() -> AsyncIterator[pb_grpc.OrchestratorServiceStub]:
    server = grpc.aio.server()
    pb_grpc.add_OrchestratorServiceServicer_to_server(_Broken(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield pb_grpc.OrchestratorServiceStub(channel)
    finally:
        await server.stop(None)


INTERNAL_DETAILS = re.compile(r"^internal error in the orchestrator service; see its log \(ref ([0-9a-f]{12})\)$")


async def test_a_bug_is_internal_with_a_reference_and_logged_with_its_traceback(
    broken_stub: pb_grpc.OrchestratorServiceStub, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="orchestrator_grpc.status"), pytest.raises(
        grpc.aio.AioRpcError
    ) as error:
        await broken_stub.GetStatus(pb.GetStatusRequest())

    assert error.value.code() is Code.INTERNAL
    details = error.value.details() or ""
    match = INTERNAL_DETAILS.match(details)
    assert match, details
    assert SECRET not in details
    [record] = caplog.records
    assert match.group(1) in record.getMessage()
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == SECRET


async def test_a_bug_mid_stream_is_internal_after_the_events_sent(
    broken_stub: pb_grpc.OrchestratorServiceStub,
) -> None:
    call = broken_stub.StreamDeliberation(pb.DeliberateRequest())
    assert (await call.read()).deliberation_id == "first"
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call.read()
    assert error.value.code() is Code.INTERNAL
    assert SECRET not in (error.value.details() or "")


async def test_a_cancellation_from_inside_is_cancelled(broken_stub: pb_grpc.OrchestratorServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await broken_stub.GetDeliberation(pb.GetDeliberationRequest())
    assert error.value.code() is Code.CANCELLED
    assert error.value.details() == "the deliberation was cancelled"


async def test_the_stream_wrapper_maps_errors_as_the_unary_one_does(
    broken_stub: pb_grpc.OrchestratorServiceStub,
) -> None:
    async def streamed_status(role: str) -> tuple[grpc.StatusCode, str]:
        call = broken_stub.StreamDeliberation(pb.DeliberateRequest(role=role))
        assert (await call.read()).deliberation_id == "first"
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await call.read()
        return error.value.code(), error.value.details() or ""

    assert await streamed_status("INVALID") == (Code.INVALID_ARGUMENT, "constraints.tests names 'a.py' twice")
    assert await streamed_status("CANCELLED") == (Code.CANCELLED, "the deliberation was cancelled")
    assert await streamed_status("ABORTED") == (Code.PERMISSION_DENIED, "the method's own abort")


async def test_a_methods_own_abort_keeps_its_status(broken_stub: pb_grpc.OrchestratorServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await broken_stub.ListDeliberations(pb.ListDeliberationsRequest())
    assert (error.value.code(), error.value.details()) == (Code.PERMISSION_DENIED, "the method's own abort")
