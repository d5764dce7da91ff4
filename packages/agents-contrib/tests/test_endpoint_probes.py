"""Each backend's endpoint probe, and GetStatus showing what the startup probe found."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import grpc
import pytest
from llm_server import LLMServer
from server_settings import openai_server_settings

from agents_contrib.command import CommandBackend, CommandSettings
from agents_contrib.embedded import EmbeddedBackend, EmbeddedSettings
from agents_contrib.openai_compat import OpenAIBackend, OpenAISettings
from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_core.models import AgentConfig
from orchestrator_core.reachability import EndpointState
from orchestrator_grpc.server import running_server

CONFIG = AgentConfig("dev-1", "DEV", 0, 1, {})


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def openai_agent(base_url: str) -> object:
    return OpenAIBackend(OpenAISettings(base_url=base_url, model="m"), prompts_dir="").create(CONFIG)


async def test_an_openai_endpoint_that_answers_is_reachable(server: LLMServer) -> None:
    found = await openai_agent(server.base_url).probe_endpoint()  # type: ignore[attr-defined]
    assert found.state is EndpointState.REACHABLE
    assert "answered HTTP" in found.detail
    assert server.requests_to("/v1/chat/completions") == []  # no tokens spent


async def test_a_refused_openai_endpoint_is_unreachable_and_names_the_setting() -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    found = await openai_agent(url).probe_endpoint()  # type: ignore[attr-defined]
    assert found.state is EndpointState.UNREACHABLE
    assert url in found.detail
    assert "ORCH_OPENAI_BASE_URL" in found.detail


async def test_credentials_in_the_url_stay_out_of_the_probe_detail() -> None:
    found = await openai_agent(f"http://user:s3cret@127.0.0.1:{closed_port()}/v1").probe_endpoint()  # type: ignore[attr-defined]
    assert "s3cret" not in found.detail


async def test_a_command_probe_checks_the_program_is_still_there(tmp_path: Path) -> None:
    program = tmp_path / "model-cli"
    program.write_text("#!/bin/sh\ncat\n")
    program.chmod(0o755)
    agent = CommandBackend(CommandSettings(program=[str(program)]), prompts_dir="").create(CONFIG)
    assert (await agent.probe_endpoint()).state is EndpointState.REACHABLE
    program.unlink()
    missing = await agent.probe_endpoint()
    assert missing.state is EndpointState.UNREACHABLE
    assert str(program) in missing.detail


async def test_the_embedded_model_is_reachable_before_it_loads() -> None:
    backend = EmbeddedBackend(EmbeddedSettings())
    found = await backend.create(CONFIG).probe_endpoint()
    assert found.state is EndpointState.REACHABLE
    assert "loads on the first call" in found.detail
    assert backend.server.started is None  # probing did not load it


async def test_status_shows_an_unreachable_endpoint_found_at_startup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    settings = openai_server_settings(tmp_path, monkeypatch, url)
    async with running_server(settings) as server, grpc.aio.insecure_channel(server.address) as channel:
        stub = pb_grpc.OrchestratorServiceStub(channel)  # type: ignore[no-untyped-call]
        dev = pb.CouncilInfo()
        for _ in range(200):  # the startup probe runs beside serving: wait for its result
            status = await stub.GetStatus(pb.GetStatusRequest(), timeout=10)
            dev = next(c for c in status.councils if c.role == "DEV")
            if dev.endpoint_state != "unknown":
                break
            await asyncio.sleep(0.05)
    assert dev.endpoint_state == "unreachable"
    assert url in dev.endpoint_detail
    assert "ORCH_OPENAI_BASE_URL" in dev.endpoint_detail
    assert "its endpoint is unreachable" in dev.detail


async def test_backends_probe_the_endpoint_a_councils_options_name(tmp_path: Path) -> None:
    backend = OpenAIBackend(OpenAISettings(model="m"), prompts_dir="")
    url = f"http://127.0.0.1:{closed_port()}/v1"
    assert (await backend.probe_endpoint({"base_url": url})).state is EndpointState.UNREACHABLE
    command = CommandBackend(CommandSettings(), prompts_dir="")
    gone = await command.probe_endpoint({"program": str(tmp_path / "no-such-program")})
    assert gone.state is EndpointState.UNREACHABLE
    assert "no-such-program" in gone.detail
