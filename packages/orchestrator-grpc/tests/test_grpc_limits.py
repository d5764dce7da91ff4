"""Limits: the largest message, and the circuit breaker per backend endpoint as GetStatus
and the per-council health names show it (the server's own readiness unchanged)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_test_support import HANG_GUARD, UNREACHABLE, ServerFactory, eventually, make_settings, request

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_core.breaker import CircuitState
from orchestrator_core.plugins import PluginHost
from orchestrator_grpc.health import council_service_name
from orchestrator_grpc.server import running_server
from orchestrator_grpc.service import SERVICE_NAME

Stub = pb_grpc.OrchestratorServiceStub
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
MAX_MESSAGE = 64 * 1024


async def _health(channel: grpc.aio.Channel, service: str) -> int:
    response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service))
    status: int = response.status
    return status


async def test_a_message_over_the_limit_is_resource_exhausted(serve_with: ServerFactory) -> None:
    async with (
        serve_with(max_message_bytes=MAX_MESSAGE, max_task_chars=10 * MAX_MESSAGE) as server,
        grpc.aio.insecure_channel(server.address) as channel,
    ):
        stub = Stub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.Deliberate(request(task="x" * (MAX_MESSAGE + 1)), timeout=HANG_GUARD)
        assert error.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert f"vs. {MAX_MESSAGE})" in (error.value.details() or "")

        # Within the limit the same server answers.
        response = await stub.Deliberate(request(task="x" * (MAX_MESSAGE // 8)), timeout=HANG_GUARD)
        assert len(response.results) == 3


async def test_a_response_over_the_limit_is_resource_exhausted(serve_with: ServerFactory) -> None:
    # Three proposals echo a task just under the limit: the response is over it.
    async with (
        serve_with(max_message_bytes=MAX_MESSAGE, max_task_chars=10 * MAX_MESSAGE) as server,
        grpc.aio.insecure_channel(server.address) as channel,
    ):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await Stub(channel).Deliberate(request(task="y" * (MAX_MESSAGE - 1024)), timeout=HANG_GUARD)
    assert error.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_an_open_circuit_fails_fast_and_shows_in_status_and_council_health(serve_with: ServerFactory) -> None:
    async with (
        serve_with(breaker_failure_threshold=3, breaker_cooldown_seconds=3600) as server,
        grpc.aio.insecure_channel(server.address) as channel,
    ):
        stub = Stub(channel)
        devops = council_service_name("DEVOPS")
        assert devops == "orchestrator.v1.OrchestratorService/DEVOPS"
        assert await _health(channel, devops) == SERVING

        # Three agents on one unreachable endpoint: three failures open its circuit.
        with pytest.raises(grpc.aio.AioRpcError) as first:
            await stub.Deliberate(request(role="DEVOPS"), timeout=HANG_GUARD)
        assert UNREACHABLE in (first.value.details() or "")

        councils = {c.role: c for c in (await stub.GetStatus(pb.GetStatusRequest())).councils}
        assert councils["DEVOPS"].circuit == "open"
        assert "circuit is open" in councils["DEVOPS"].detail
        assert councils["DEV"].circuit == "closed"
        await eventually(lambda: server.health_publisher.published(devops) is False, "the health refresh")
        assert await _health(channel, devops) == NOT_SERVING
        # The server itself stays ready: another council and the records still work.
        assert await _health(channel, "") == SERVING
        assert await _health(channel, SERVICE_NAME) == SERVING
        assert await _health(channel, council_service_name("DEV")) == SERVING
        assert (await stub.GetStatus(pb.GetStatusRequest())).status == "SERVING"

        # The next call fails fast, without trying the endpoint.
        with pytest.raises(grpc.aio.AioRpcError) as again:
            await stub.Deliberate(request(role="DEVOPS"), timeout=HANG_GUARD)
        assert again.value.code() is grpc.StatusCode.UNAVAILABLE
        assert "the circuit for the unreachable backend's default endpoint is open" in (again.value.details() or "")


async def test_after_the_cooldown_the_circuit_is_half_open_and_the_council_serving(serve_with: ServerFactory) -> None:
    async with (
        serve_with(breaker_failure_threshold=3, breaker_cooldown_seconds=0.2) as server,
        grpc.aio.insecure_channel(server.address) as channel,
    ):
        stub = Stub(channel)
        devops = council_service_name("DEVOPS")
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Deliberate(request(role="DEVOPS"), timeout=HANG_GUARD)
        council = server.orchestrator.councils["DEVOPS"]
        await eventually(lambda: council.circuit is CircuitState.HALF_OPEN, "the cooldown")
        await eventually(lambda: server.health_publisher.published(devops) is True, "the health refresh")
        assert await _health(channel, devops) == SERVING
        councils = {c.role: c for c in (await stub.GetStatus(pb.GetStatusRequest())).councils}
        assert councils["DEVOPS"].circuit == "half-open"


async def test_each_council_has_its_health_name(tmp_path: Path, host: PluginHost) -> None:
    settings = make_settings(
        tmp_path,
        councils={"DEV": {"backend": "scripted", "agents": 2}, "PHYSICS": {"backend": "absent", "agents": 2}},
    )
    async with running_server(settings, plugins=host) as server, grpc.aio.insecure_channel(server.address) as channel:
        assert await _health(channel, council_service_name("DEV")) == SERVING
        assert await _health(channel, council_service_name("PHYSICS")) == NOT_SERVING
        # QA and the other known roles default to the "openai" backend, absent here.
        assert await _health(channel, council_service_name("QA")) == NOT_SERVING
        assert await _health(channel, "") == SERVING
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await _health(channel, council_service_name("NOPE"))
        assert error.value.code() is grpc.StatusCode.NOT_FOUND


async def test_a_page_of_records_is_cut_to_fit_the_message_limit(serve_with: ServerFactory) -> None:
    # Each record carries its ~20 KB task: three fit in a 64 KiB message, six do not.
    async with (
        serve_with(max_message_bytes=MAX_MESSAGE, max_task_chars=10 * MAX_MESSAGE) as server,
        grpc.aio.insecure_channel(server.address) as channel,
    ):
        stub = Stub(channel)
        created = [
            (await stub.Deliberate(request(task=f"{n}" * 20_000, num_agents=1), timeout=HANG_GUARD)).deliberation_id
            for n in range(6)
        ]
        listed: list[str] = []
        token = ""
        pages = 0
        while True:
            page = await stub.ListDeliberations(pb.ListDeliberationsRequest(page_size=50, page_token=token))
            assert page.ByteSize() <= MAX_MESSAGE
            listed += [r.deliberation_id for r in page.deliberations]
            pages += 1
            token = page.next_page_token
            if not token:
                break
    assert listed == created[::-1]  # newest first, none twice, none missing
    assert pages >= 2
