"""End to end: neither the server's bearer tokens nor the model server's API key appear in
GetStatus, stored records, error messages or logs, even when the model server echoes the key."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from llm_server import CHAT_PATH, LLMServer, Recorded, Reply, chat_completion, running_llm_server
from server_settings import openai_server_settings

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_core.settings import Settings
from orchestrator_grpc.server import running_server

API_KEY = "sk-MARKER-api-key-5d0c91"
TOKEN = "MARKER-bearer-token-a43e"
TASK = pb.DeliberateRequest(role="DEV", task="Write add(a, b) returning the sum.")


@pytest.fixture
async def llm() -> AsyncIterator[LLMServer]:
    async with running_llm_server() as server:
        yield server


def configure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base_url: str) -> Settings:
    return openai_server_settings(
        tmp_path, monkeypatch, base_url,
        ORCH_COUNCILS__DEV__AGENTS="2",
        ORCH_COUNCILS__QA__BACKEND="openai",
        ORCH_COUNCILS__QA__OPTIONS__MODEL="qa-model",
        ORCH_OPENAI_API_KEY=API_KEY,
        ORCH_OPENAI_MAX_RETRIES="0",
        ORCH_AUTH_TOKENS=f"{TOKEN},another-token",
    )


def answer(request: Recorded) -> Reply:
    """DEV's model answers; QA's refuses the key, quoting it as some servers do."""
    if request.json["model"] == "qa-model":
        return Reply({"error": {"message": f"Incorrect API key provided: {API_KEY}"}}, status=401)
    return Reply(chat_completion("File: add.py\n```python\ndef add(a, b):\n    return a + b\n```"))


async def test_no_token_or_key_in_status_records_errors_or_logs(
    llm: LLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    llm.responder = answer
    seen: list[str] = []
    settings = configure(tmp_path, monkeypatch, llm.base_url)
    seen.append(repr(settings))
    async with running_server(settings) as server, grpc.aio.insecure_channel(server.address) as channel:
        stub = pb_grpc.OrchestratorServiceStub(channel)  # type: ignore[no-untyped-call]
        good = (("authorization", f"Bearer {TOKEN}"),)

        response = await stub.Deliberate(TASK, metadata=good, timeout=60)
        assert len(response.results) == 2
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Deliberate(pb.DeliberateRequest(role="QA", task="Test add"), metadata=good, timeout=60)
        assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        seen += [refused.value.details() or "", refused.value.debug_error_string()]
        for wrong in ((), (("authorization", f"Bearer {TOKEN}x"),), (("authorization", API_KEY),)):
            with pytest.raises(grpc.aio.AioRpcError) as unauthenticated:
                await stub.GetStatus(pb.GetStatusRequest(), metadata=wrong, timeout=10)
            assert unauthenticated.value.code() is grpc.StatusCode.UNAUTHENTICATED
            seen += [unauthenticated.value.details() or "", unauthenticated.value.debug_error_string()]

        seen.append(str(await stub.GetStatus(pb.GetStatusRequest(), metadata=good, timeout=10)))
        page = await stub.ListDeliberations(pb.ListDeliberationsRequest(), metadata=good, timeout=10)
        assert len(page.deliberations) == 2
        seen += [str(record) for record in page.deliberations]

    # The key did reach the model server, as the credential it is for.
    assert {r.headers["authorization"] for r in llm.requests_to(CHAT_PATH)} == {f"Bearer {API_KEY}"}
    seen += [record.getMessage() for record in caplog.records]
    seen.append(caplog.text)
    for text in seen:
        assert "MARKER" not in text
