"""GetStatus's latency percentiles per role, over gRPC and as ``orchestrator status`` shows
them."""

from __future__ import annotations

import asyncio
import json
import os

import grpc
from grpc_test_support import HANG_GUARD, ServerFactory, orchestrator_command, request

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_core.models import TokenUsage
from orchestrator_grpc.server import RunningServer


def record_durations(server: RunningServer, role: str, *durations: float) -> None:
    """Runs of known durations, counted as the orchestrator counts a finished run."""
    for seconds in durations:
        server.orchestrator.statistics.record(
            role=role, orchestration=False, seconds=seconds, failed=False, usage=TokenUsage()
        )


async def get_status(server: RunningServer) -> pb.GetStatusResponse:
    async with grpc.aio.insecure_channel(server.address) as channel:
        return await pb_grpc.OrchestratorServiceStub(channel).GetStatus(pb.GetStatusRequest())


async def test_get_status_gives_each_roles_percentiles_over_its_window(serve_with: ServerFactory) -> None:
    async with serve_with(latency_window=4) as server:
        record_durations(server, "DEV", 100.0, 4.0, 1.0, 3.0, 2.0)  # 100 leaves the window of 4
        record_durations(server, "ARCHITECT", 7.5)

        statistics = (await get_status(server)).statistics

    dev = statistics.by_role["DEV"]
    assert (dev.p50_duration_seconds, dev.p95_duration_seconds, dev.p99_duration_seconds) == (2.0, 4.0, 4.0)
    assert (dev.latency_samples, dev.deliberations) == (4, 5)
    architect = statistics.by_role["ARCHITECT"]
    assert (architect.p50_duration_seconds, architect.p99_duration_seconds, architect.latency_samples) == (7.5, 7.5, 1)


async def test_a_deliberation_over_grpc_is_a_latency_sample_of_its_role(serve_with: ServerFactory) -> None:
    async with serve_with() as server, grpc.aio.insecure_channel(server.address) as channel:
        stub = pb_grpc.OrchestratorServiceStub(channel)
        await stub.Deliberate(request())
        await stub.Deliberate(request(rounds=0))
        dev = (await stub.GetStatus(pb.GetStatusRequest())).statistics.by_role["DEV"]

    assert (dev.deliberations, dev.latency_samples) == (2, 2)
    assert 0 < dev.p50_duration_seconds <= dev.p95_duration_seconds == dev.p99_duration_seconds
    assert dev.p50_duration_seconds <= dev.mean_duration_seconds <= dev.p99_duration_seconds


async def test_orchestrator_status_prints_the_percentiles_per_role(serve_with: ServerFactory) -> None:
    async with serve_with(latency_window=10) as server:
        record_durations(server, "DEV", 0.5, 1.5, 0.25)
        env = {name: value for name, value in os.environ.items() if not name.startswith("ORCH_")}
        process = await asyncio.create_subprocess_exec(
            orchestrator_command(), "status", "--address", server.address,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        )
        async with asyncio.timeout(HANG_GUARD * 3):
            out, err = await process.communicate()

    assert process.returncode == 0, err.decode()
    dev = json.loads(out)["statistics"]["by_role"]["DEV"]
    assert dev["p50_duration_seconds"] == 0.5
    assert dev["p95_duration_seconds"] == 1.5
    assert dev["p99_duration_seconds"] == 1.5
    assert dev["latency_samples"] == "3"  # an int64, as the JSON mapping of protobuf writes it
