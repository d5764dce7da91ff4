"""A front whose NATS server is gone: Submit answers UNAVAILABLE naming ORCH_NATS_URL (after
waiting a bounded while for the connection to come back), and once the server is back the
same front queues again.

A refused submission was never sent: nothing waits in the client's reconnect buffer to queue
it behind the submitter's back once the connection is back."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_test_support import HANG_GUARD, ServerFactory
from nats_support import NatsServer

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_grpc.jetstream import queue
from orchestrator_grpc.jetstream.queue import JetStreamQueue


def submission(n: int) -> pb.SubmitDeliberationRequest:
    return pb.SubmitDeliberationRequest(deliberate=pb.DeliberateRequest(role="DEV", task=f"Write function {n}"))


async def test_submit_without_nats_is_unavailable_naming_the_setting_then_works_again(
    serve_with: ServerFactory, nats: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queue, "PUBLISH_SECONDS", 1.0)
    async with serve_with(nats_url=nats.url, queue_workers=0) as server, grpc.aio.insecure_channel(
        server.address
    ) as channel:
        stub = pb_grpc.OrchestratorServiceStub(channel)  # type: ignore[no-untyped-call]
        await stub.SubmitDeliberation(submission(0))
        await asyncio.to_thread(nats.kill)
        work = server.orchestrator.queue
        assert isinstance(work, JetStreamQueue)
        async with asyncio.timeout(HANG_GUARD):
            while work._connection().is_connected:  # the front has seen the server go
                await asyncio.sleep(0.01)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.SubmitDeliberation(submission(1))
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "ORCH_NATS_URL" in (refused.value.details() or "")
        await asyncio.to_thread(nats.start)  # the same store and port
        answer = await stub.SubmitDeliberation(submission(2))
        assert answer.status == pb.DELIBERATION_STATUS_QUEUED
        status = await stub.GetStatus(pb.GetStatusRequest())
        assert status.statistics.queue_pending == 2  # the first and the last: the refused one was never sent
