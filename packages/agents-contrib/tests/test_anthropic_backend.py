"""The ``anthropic`` backend (official SDK) against a real HTTP server speaking the Messages API."""

from __future__ import annotations

import asyncio
import re
import socket
from typing import Any

import pytest
from backend_support import Sleeps
from llm_server import MESSAGES_PATH, LLMServer, Reply, anthropic_message

from agents_contrib.anthropic_backend import AnthropicAgent, AnthropicBackend, AnthropicSettings, register_agents
from agents_contrib.backend_errors import MalformedReply, RequestRejected, ServerFailed
from orchestrator_core.errors import BackendRejected, BackendUnavailable
from orchestrator_core.models import AgentConfig, Task, TaskConstraints

KEY = "sk-ant-test-0123456789"
TASK = Task(role="QA", description="Test the add function.",
            constraints=TaskConstraints(rubric="Boundaries covered.", requirements=("pytest",)))


def backend_for(base_url: str, sleeps: Sleeps | None = None, **settings: Any) -> AnthropicBackend:
    values: dict[str, Any] = {"base_url": base_url, "model": "claude-test", "api_key": KEY,
                              "backoff_base_seconds": 0.01}
    values.update(settings)
    return AnthropicBackend(AnthropicSettings(**values), prompts_dir="", sleep=sleeps or Sleeps())


def agent_of(backend: AnthropicBackend, index: int = 0, size: int = 1, **options: Any) -> AnthropicAgent:
    return backend.create(AgentConfig(f"qa-{index + 1}", "QA", index, size, options))


def error_body(kind: str, message: str) -> dict[str, Any]:
    """An error as the Messages API documents it."""
    return {"type": "error", "error": {"type": kind, "message": message}}


async def test_request_has_the_documented_shape(server: LLMServer) -> None:
    backend = backend_for(server.base_url.removesuffix("/v1"), max_tokens=900, extra_headers={"X-Team": "qa"})
    reply = await agent_of(backend).generate(TASK)

    assert reply.text == "reply 1"
    [request] = server.requests
    assert (request.method, request.path) == ("POST", MESSAGES_PATH)
    # The key travels in x-api-key or, with newer SDKs, as a bearer token; never elsewhere.
    assert request.headers.get("x-api-key") == KEY or request.headers.get("authorization") == f"Bearer {KEY}"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", request.headers["anthropic-version"])
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-team"] == "qa"
    assert request.headers["x-stainless-retry-count"] == "0"  # the SDK's own retries are off
    body = request.json
    assert sorted(body) == ["max_tokens", "messages", "model", "system"]
    assert body["model"] == "claude-test"
    assert body["max_tokens"] == 900
    assert "council of QA engineers" in body["system"]
    [message] = body["messages"]
    assert message["role"] == "user"
    assert "Task: Test the add function." in message["content"]
    assert "Judged by: Boundaries covered." in message["content"]


async def test_the_default_max_tokens_is_sent(server: LLMServer) -> None:
    await agent_of(backend_for(server.url)).generate(TASK)
    assert server.requests[0].json["max_tokens"] == 4096


@pytest.mark.parametrize("name", ["temperature", "top_p", "top_k", "seed"])
def test_sampling_options_are_refused_with_the_reason(name: str) -> None:
    with pytest.raises(ValueError, match=f"unknown option '{name}' \\(the Messages API") as raised:
        agent_of(backend_for("https://api.anthropic.com"), **{name: 1})
    assert "takes no sampling parameters" in str(raised.value)


async def test_text_blocks_are_joined_and_usage_returned(server: LLMServer) -> None:
    body = anthropic_message(input_tokens=40, output_tokens=12)
    body["content"] = [{"type": "thinking", "thinking": "hmm", "signature": "x"},
                       {"type": "text", "text": "first "}, {"type": "text", "text": "second"}]
    server.script(MESSAGES_PATH, Reply(body))
    reply = await agent_of(backend_for(server.url)).generate(TASK)

    assert reply.text == "first second"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (40, 12)


async def test_the_reply_names_the_model_that_answered(server: LLMServer) -> None:
    server.script(MESSAGES_PATH, Reply(anthropic_message(model="claude-test-20260115")))
    reply = await agent_of(backend_for(server.url)).generate(TASK)

    assert server.requests[0].json["model"] == "claude-test"
    assert reply.model == "claude-test-20260115"


def test_a_missing_key_is_reported_when_the_agent_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORCH_ANTHROPIC_API_KEY", raising=False)
    backend = AnthropicBackend(AnthropicSettings(), prompts_dir="")
    with pytest.raises(ValueError, match="needs an API key: set ORCH_ANTHROPIC_API_KEY"):
        agent_of(backend)


def test_unknown_options_are_reported() -> None:
    with pytest.raises(ValueError, match="unknown option 'modle'"):
        agent_of(backend_for("https://api.anthropic.com"), modle="claude")


def test_settings_come_from_orch_anthropic_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("ORCH_ANTHROPIC_MODEL", "claude-opus-4-1")
    registered: list[Any] = []
    register_agents(registered.append)

    [backend] = registered
    assert backend.name == "anthropic"
    assert backend.settings.model == "claude-opus-4-1"
    assert backend.settings.api_key.get_secret_value() == KEY
    assert backend.settings.base_url == "https://api.anthropic.com"


@pytest.mark.parametrize(
    ("reply", "says"),
    [
        (Reply(b"{\"content\": ["), "not JSON"),
        (Reply([1, 2]), "no content blocks"),
        (Reply(error_body("overloaded_error", "Overloaded")), "200 with an error: Overloaded"),
        (Reply({**anthropic_message(), "content": "just a string"}), "no content blocks"),
        (Reply({**anthropic_message(), "content": [], "stop_reason": "max_tokens"}),
         "no text (stop_reason 'max_tokens')"),
        (Reply({**anthropic_message(), "content": [{"type": "tool_use", "id": "t", "name": "x", "input": {}}]}),
         "no text"),
    ],
)
async def test_a_misbehaving_server_makes_a_malformed_reply_error(server: LLMServer, reply: Reply, says: str) -> None:
    server.script(MESSAGES_PATH, reply)
    with pytest.raises(MalformedReply) as raised:
        await agent_of(backend_for(server.url)).generate(TASK)
    assert says in str(raised.value)
    assert len(server.requests) == 1


@pytest.mark.parametrize("status", [401, 403])
async def test_refused_credentials_are_a_rejection_without_the_key(server: LLMServer, status: int) -> None:
    server.script(MESSAGES_PATH, Reply(error_body("authentication_error", f"invalid x-api-key {KEY}"), status=status))
    with pytest.raises(BackendRejected) as raised:
        await agent_of(backend_for(server.url)).generate(TASK)

    assert f"refused the configured credentials (HTTP {status})" in str(raised.value)
    assert "ORCH_ANTHROPIC_API_KEY" in str(raised.value)
    assert KEY not in str(raised.value)
    assert len(server.requests) == 1


async def test_a_missing_model_is_a_rejection_naming_it(server: LLMServer) -> None:
    server.script(MESSAGES_PATH, Reply(error_body("not_found_error", "model: claude-nope"), status=404))
    with pytest.raises(BackendRejected) as raised:
        await agent_of(backend_for(server.url), model="claude-nope").generate(TASK)
    assert "has no model 'claude-nope' (HTTP 404: model: claude-nope)" in str(raised.value)


async def test_a_wrong_base_url_is_a_rejection_about_it(server: LLMServer) -> None:
    server.script(MESSAGES_PATH, Reply("Not Found", status=404))
    with pytest.raises(BackendRejected, match="no Messages API at"):
        await agent_of(backend_for(server.url)).generate(TASK)


async def test_a_bad_request_is_not_retried(server: LLMServer) -> None:
    server.script(MESSAGES_PATH, Reply(error_body("invalid_request_error", "prompt is too long"), status=400))
    sleeps = Sleeps()
    with pytest.raises(RequestRejected, match=r"rejected the request \(HTTP 400: prompt is too long\)"):
        await agent_of(backend_for(server.url, sleeps)).generate(TASK)
    assert (len(server.requests), sleeps.delays) == (1, [])


async def test_429_then_success_honours_retry_after(server: LLMServer) -> None:
    server.script(MESSAGES_PATH, Reply(error_body("rate_limit_error", "slow down"), status=429,
                                       headers={"retry-after": "3"}),
                  Reply(anthropic_message("done", input_tokens=8, output_tokens=3)))
    sleeps = Sleeps()
    reply = await agent_of(backend_for(server.url, sleeps)).generate(TASK)

    assert (reply.text, reply.usage.total_tokens) == ("done", 11)
    assert sleeps.delays == [3.0]
    assert len(server.requests) == 2


async def test_overloaded_529_then_success(server: LLMServer) -> None:
    server.script(MESSAGES_PATH, Reply(error_body("overloaded_error", "Overloaded"), status=529), Reply())
    assert (await agent_of(backend_for(server.url)).generate(TASK)).text == "reply 2"


async def test_persistent_server_errors_give_up(server: LLMServer) -> None:
    server.script(MESSAGES_PATH, *(Reply(error_body("api_error", "boom"), status=500) for _ in range(3)))
    sleeps = Sleeps()
    with pytest.raises(ServerFailed, match="gave up after 3 attempt"):
        await agent_of(backend_for(server.url, sleeps, max_retries=2)).generate(TASK)
    assert len(server.requests) == 3
    assert len(sleeps.delays) == 2


async def test_an_unreachable_endpoint_is_unavailable_naming_it() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}"
    sleeps = Sleeps()
    with pytest.raises(BackendUnavailable) as raised:
        await agent_of(backend_for(base_url, sleeps, max_retries=4)).generate(TASK)

    assert f"no Anthropic API server answered at {base_url} (connection refused)" in str(raised.value)
    assert "ORCH_ANTHROPIC_BASE_URL" in str(raised.value)
    assert "gave up after 2 attempt(s)" in str(raised.value)
    assert KEY not in str(raised.value)
    # Refused on this machine: one quick retry, not the policy's four.
    assert len(sleeps.delays) == 1


async def test_a_timeout_is_retried_and_the_slow_request_abandoned(server: LLMServer) -> None:
    server.script(MESSAGES_PATH, Reply(delay=60), Reply(anthropic_message("in time")))
    agent = agent_of(backend_for(server.url, request_timeout_seconds=1.0))

    assert (await agent.generate(TASK)).text == "in time"
    await server.wait_for(lambda: server.disconnects == 1)


async def test_cancelling_a_call_aborts_its_http_request(server: LLMServer) -> None:
    release = asyncio.Event()
    server.script(MESSAGES_PATH, Reply(hold=release))
    call = asyncio.create_task(agent_of(backend_for(server.url)).generate(TASK))
    await server.wait_for(lambda: server.in_flight == 1)

    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await server.wait_for(lambda: server.disconnects == 1)


async def test_the_backend_keeps_to_its_concurrency_limit(server: LLMServer) -> None:
    release = asyncio.Event()
    server.script(MESSAGES_PATH, *(Reply(hold=release) for _ in range(4)))
    backend = backend_for(server.url, max_concurrency=1)
    calls = [asyncio.create_task(agent_of(backend, i, 4).generate(TASK)) for i in range(4)]

    await server.wait_for(lambda: server.in_flight == 1)
    for _ in range(20):
        await asyncio.sleep(0.01)
    assert len(server.requests) == 1

    release.set()
    assert len(await asyncio.gather(*calls)) == 4
    assert server.max_in_flight == 1
