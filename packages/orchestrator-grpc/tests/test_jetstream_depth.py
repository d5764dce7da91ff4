"""The work queue's depth on NATS JetStream, as GetStatus and the metrics show it: submitted
deliberations that no worker took are pending, on every front sharing the stream."""

from __future__ import annotations

import asyncio
import urllib.request

import grpc
import pytest
from grpc_test_support import HANG_GUARD, ServerFactory
from metrics_support import parse, total
from nats_support import NatsServer

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_grpc.observability import state_collector


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        body: bytes = response.read()
        return body.decode()


async def test_submitted_work_no_worker_took_is_pending_in_status_and_metrics(
    serve_with: ServerFactory, nats: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state_collector, "QUEUE_DEPTH_REFRESH_SECONDS", 0.1)
    async with serve_with(nats_url=nats.url, queue_workers=0, metrics_port=0) as server:
        metrics = server.observability.metrics
        assert metrics is not None
        samples = parse(await asyncio.to_thread(scrape, metrics.url))
        assert total(samples, "orchestrator_queue_pending") == 0
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = pb_grpc.OrchestratorServiceStub(channel)  # type: ignore[no-untyped-call]
            for n in range(3):
                request = pb.DeliberateRequest(role="DEV", task=f"Write function number {n}")
                await stub.SubmitDeliberation(pb.SubmitDeliberationRequest(deliberate=request))
            status = await stub.GetStatus(pb.GetStatusRequest())
        assert (status.statistics.queue_pending, status.statistics.queue_in_flight) == (3, 0)
        async with asyncio.timeout(HANG_GUARD):
            while total(parse(await asyncio.to_thread(scrape, metrics.url)), "orchestrator_queue_pending") != 3:
                await asyncio.sleep(0.05)
        samples = parse(await asyncio.to_thread(scrape, metrics.url))
        assert total(samples, "orchestrator_queue_in_flight") == 0
