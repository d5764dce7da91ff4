"""The ``openai`` backend against a real HTTP server speaking Chat Completions on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from backend_support import Sleeps
from llm_server import CHAT_PATH, LLMServer, Reply, chat_completion
from openai_support import KEY, TASK, agent_of, backend_for

from agents_contrib.backend_errors import MalformedReply, RequestRejected
from agents_contrib.openai_compat import OpenAISettings, register_agents
from orchestrator_core.errors import AgentError, BackendRejected, BackendUnavailable
from orchestrator_core.models import Proposal

# -- the request ------------------------------------------------------------------


async def test_request_has_the_documented_shape(server: LLMServer) -> None:
    backend = backend_for(server.base_url, api_key=KEY, top_p=0.9, max_tokens=512, seed=41,
                          temperature=0.3, extra_headers={"X-Team": "core"})
    reply = await agent_of(backend).generate(TASK)

    assert reply.text == "reply 1"
    [request] = server.requests
    assert request.method == "POST"
    assert request.path == CHAT_PATH
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "application/json"
    assert request.headers["user-agent"].startswith("orchestrator-agents-contrib/")
    assert request.headers["x-team"] == "core"
    body = request.json
    assert sorted(body) == ["max_tokens", "messages", "model", "seed", "stream", "temperature", "top_p"]
    assert body["model"] == "test-model"
    assert body["stream"] is False
    assert body["temperature"] == 0.3
    assert body["top_p"] == 0.9
    assert body["max_tokens"] == 512
    assert body["seed"] == 41
    system, user = body["messages"]
    assert sorted(system) == ["content", "role"]
    assert system["role"] == "system"
    assert "council of DEV engineers" in system["content"]
    assert user["role"] == "user"
    assert "Task: Write a function add(a, b) that returns the sum." in user["content"]
    assert "Judged by: Correct, typed and documented." in user["content"]
    assert "Requirements:\n- Python 3.11\n- No third-party imports" in user["content"]
    assert "Forbidden:\n- eval" in user["content"]
    assert "File: test_add.py\n```python\nfrom add import add" in user["content"]
    assert "fenced code block" in user["content"]


async def test_optional_fields_and_the_key_are_left_out_when_unset(server: LLMServer) -> None:
    await agent_of(backend_for(server.base_url)).generate(TASK)

    [request] = server.requests
    assert "authorization" not in request.headers
    # max_tokens is never left out: unset, a server may generate until its context is full
    assert sorted(request.json) == ["max_tokens", "messages", "model", "stream", "temperature"]
    assert request.json["max_tokens"] == 1024


async def test_key_can_come_from_the_environment_variable_an_option_names(
    server: LLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEAM_LLM_KEY", KEY)
    await agent_of(backend_for(server.base_url), api_key_env="TEAM_LLM_KEY").generate(TASK)

    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"


async def test_council_agents_each_get_their_own_temperature_and_seed(server: LLMServer) -> None:
    backend = backend_for(server.base_url, temperature=0.7, temperature_spread=0.4, seed=7)
    agents = [agent_of(backend, index, 3) for index in range(3)]
    await asyncio.gather(*(agent.generate(TASK) for agent in agents))

    sent = sorted((r.json["seed"], r.json["temperature"]) for r in server.requests)
    assert sent == [(7, 0.5), (8, 0.7), (9, 0.9)]


async def test_council_options_override_the_backend_settings(server: LLMServer) -> None:
    backend = backend_for("http://127.0.0.1:9/v1", model="other")
    agent = agent_of(backend, base_url=server.base_url, model="architect-model", temperature=0.2,
                     temperature_spread=0)
    await agent.generate(TASK)

    assert server.requests[0].json["model"] == "architect-model"
    assert server.requests[0].json["temperature"] == 0.2


async def test_critique_revise_and_select_send_the_peer_work(server: LLMServer) -> None:
    agent = agent_of(backend_for(server.base_url), role="ARCHITECT")
    proposal = Proposal("p-2", "architect-2", "ARCHITECT", "File: add.py\n```python\ndef add(a, b): ...\n```")
    other = Proposal("p-3", "architect-3", "ARCHITECT", "Use a lookup table.")
    from orchestrator_core.models import Critique

    critique = Critique("architect-1", "p-2", "architect-2", "It lacks type hints.", 1)

    await agent.critique(TASK, proposal)
    await agent.revise(TASK, proposal, [critique])
    await agent.select(TASK, [proposal, other])

    critique_prompt, revise_prompt, select_prompt = (r.json["messages"][1]["content"] for r in server.requests)
    assert "----- BEGIN PROPOSAL -----\nFile: add.py\n```python\ndef add(a, b): ...\n```" in critique_prompt
    assert "Code written by architect-2:" in critique_prompt
    assert "Critique 1 (from architect-1):\nIt lacks type hints." in revise_prompt
    assert "===== Candidate 1 (by architect-2) =====" in select_prompt
    assert "===== Candidate 2 (by architect-3) =====\nUse a lookup table." in select_prompt
    assert '{"choice": <the number of the chosen candidate, from 1 to 2>' in select_prompt


# -- the reply --------------------------------------------------------------------


async def test_reply_text_and_usage_are_returned(server: LLMServer) -> None:
    server.script(CHAT_PATH, Reply(chat_completion("File: a.py\n```python\nx = 1\n```", prompt_tokens=120,
                                                   completion_tokens=30)))
    reply = await agent_of(backend_for(server.base_url)).generate(TASK)

    assert reply.text == "File: a.py\n```python\nx = 1\n```"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (120, 30)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ([{"type": "text", "text": "part one, "}, {"type": "text", "text": "part two"}], "part one, part two"),
        ("<think>\nweighing options\n</think>\n\nthe answer", "the answer"),
    ],
)
async def test_reply_content_quirks_are_read(server: LLMServer, content: Any, expected: str) -> None:
    server.script(CHAT_PATH, Reply(chat_completion(content)))
    assert (await agent_of(backend_for(server.base_url)).generate(TASK)).text == expected


async def test_the_reply_names_the_model_that_answered(server: LLMServer) -> None:
    server.script(CHAT_PATH, Reply(chat_completion("fine", model="test-model-2026-01-15")))
    reply = await agent_of(backend_for(server.base_url)).generate(TASK)

    assert server.requests[0].json["model"] == "test-model"
    assert reply.model == "test-model-2026-01-15"


async def test_a_reply_that_names_no_model_names_none(server: LLMServer) -> None:
    body = chat_completion("fine")
    del body["model"]
    server.script(CHAT_PATH, Reply(body))
    assert (await agent_of(backend_for(server.base_url)).generate(TASK)).model == ""


async def test_a_reply_without_usage_counts_zero_tokens(server: LLMServer) -> None:
    body = chat_completion("fine")
    del body["usage"]
    server.script(CHAT_PATH, Reply(body))
    reply = await agent_of(backend_for(server.base_url)).generate(TASK)

    assert (reply.text, reply.usage.total_tokens) == ("fine", 0)


def _without_choices() -> dict[str, Any]:
    return {**chat_completion(), "choices": []}


def _null_content() -> dict[str, Any]:
    return chat_completion(None, finish_reason="length")


@pytest.mark.parametrize(
    ("reply", "says"),
    [
        (Reply(b"{\"choices\": [", headers={}), "not JSON"),
        (Reply("<html>502 upstream</html>"), "not JSON"),
        (Reply([1, 2]), "not an object"),
        (Reply(_without_choices()), "no choices"),
        (Reply({"id": "x", "object": "chat.completion"}), "no choices"),
        (Reply({"choices": ["text"]}), "has no message"),
        (Reply(_null_content()), "no content (finish_reason 'length')"),
        (Reply(chat_completion("   ")), "no content"),
        (Reply({"error": {"message": "upstream overloaded", "type": "server_error"}}),
         "200 with an error: upstream overloaded"),
        (Reply({"choices": [{"message": {"content": None, "refusal": "I can't help"}}]}),
         "refused to answer: I can't help"),
    ],
)
async def test_a_misbehaving_server_makes_a_malformed_reply_error(server: LLMServer, reply: Reply, says: str) -> None:
    server.script(CHAT_PATH, reply)
    with pytest.raises(MalformedReply) as raised:
        await agent_of(backend_for(server.base_url)).generate(TASK)

    assert says in str(raised.value)
    assert len(server.requests) == 1  # a malformed reply is not retried


async def test_odd_usage_values_count_as_zero(server: LLMServer) -> None:
    body = chat_completion("ok")
    body["usage"] = {"prompt_tokens": "many", "completion_tokens": -3}
    server.script(CHAT_PATH, Reply(body))
    reply = await agent_of(backend_for(server.base_url)).generate(TASK)

    assert reply.usage.total_tokens == 0


# -- errors that name what to fix -------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_a_refused_local_endpoint_gets_one_quick_retry_and_names_the_setting(host: str) -> None:
    # Nothing listens on that port of this machine: waiting does not start a server, so the
    # policy's retries (4 here) are not spent; one retry covers a server starting up.
    base_url = f"http://{host}:{_closed_port()}/v1"
    sleeps = Sleeps()
    agent = agent_of(backend_for(base_url, sleeps, api_key=KEY, max_retries=4))
    with pytest.raises(BackendUnavailable) as raised:
        await agent.generate(TASK)

    message = str(raised.value)
    assert f"no OpenAI-compatible server answered at {base_url} (connection refused)" in message
    assert "ORCH_OPENAI_BASE_URL" in message
    assert "gave up after 2 attempt(s)" in message
    assert KEY not in message
    assert len(sleeps.delays) == 1


async def test_credentials_in_the_url_never_reach_a_message() -> None:
    port = _closed_port()
    agent = agent_of(backend_for(f"http://user:hunter2@127.0.0.1:{port}/v1", max_retries=0))
    with pytest.raises(BackendUnavailable) as raised:
        await agent.generate(TASK)

    assert "hunter2" not in str(raised.value)
    assert f"http://127.0.0.1:{port}/v1" in str(raised.value)


@pytest.mark.parametrize("status", [401, 403])
async def test_refused_credentials_are_a_rejection_without_the_key(server: LLMServer, status: int) -> None:
    echo = {"error": {"message": f"Incorrect API key provided: {KEY}", "type": "invalid_request_error",
                      "code": "invalid_api_key"}}
    server.script(CHAT_PATH, Reply(echo, status=status))
    with pytest.raises(BackendRejected) as raised:
        await agent_of(backend_for(server.base_url, api_key=KEY)).generate(TASK)

    message = str(raised.value)
    assert f"refused the configured credentials (HTTP {status})" in message
    assert "ORCH_OPENAI_API_KEY" in message
    assert KEY not in message
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (404, {"error": {"message": "The model `nope` does not exist or you do not have access to it.",
                         "type": "invalid_request_error", "param": None, "code": "model_not_found"}}),
        (404, {"error": {"message": 'model "nope" not found, try pulling it first', "type": "api_error"}}),
        (404, {"object": "error", "message": "The model `nope` does not exist.", "type": "NotFoundError",
               "code": 404}),
        (400, {"error": "model 'nope' not found"}),
        (200, {"error": {"message": "model 'nope' not found", "code": "model_not_found"}}),
    ],
    ids=["openai", "ollama", "vllm", "ollama-400", "status-200"],
)
async def test_missing_model_is_a_rejection_naming_it(server: LLMServer, status: int, body: dict[str, Any]) -> None:
    server.script(CHAT_PATH, Reply(body, status=status))
    with pytest.raises(BackendRejected) as raised:
        await agent_of(backend_for(server.base_url), model="nope").generate(TASK)

    assert f"has no model 'nope' (HTTP {status}" in str(raised.value)
    assert len(server.requests) == 1


async def test_a_wrong_path_is_a_rejection_about_the_base_url(server: LLMServer) -> None:
    server.script(CHAT_PATH, Reply("404 page not found", status=404))
    with pytest.raises(BackendRejected) as raised:
        await agent_of(backend_for(server.base_url)).generate(TASK)

    assert "no Chat Completions API at" in str(raised.value)
    assert "check the base_url" in str(raised.value)


@pytest.mark.parametrize("status", [400, 413, 422])
async def test_other_client_errors_are_not_retried(server: LLMServer, status: int) -> None:
    server.script(CHAT_PATH, Reply({"error": {"message": "maximum context length is 8192 tokens"}}, status=status))
    sleeps = Sleeps()
    with pytest.raises(RequestRejected) as raised:
        await agent_of(backend_for(server.base_url, sleeps)).generate(TASK)

    assert f"rejected the request (HTTP {status}: maximum context length is 8192 tokens)" in str(raised.value)
    assert len(server.requests) == 1
    assert sleeps.delays == []


# -- options and registration -----------------------------------------------------


def test_unknown_options_are_reported_when_the_agent_is_built() -> None:
    backend = backend_for("http://127.0.0.1:11434/v1")
    with pytest.raises(ValueError, match="unknown option 'temprature'") as raised:
        agent_of(backend, temprature=0.2)
    assert "known options:" in str(raised.value)


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"temperature": 5}, "option 'temperature': Input should be less than or equal to 2"),
        ({"base_url": "localhost:11434"}, "is not an http(s) URL"),
        ({"max_tokens": 0}, "option 'max_tokens'"),
    ],
)
def test_unusable_options_are_value_errors(options: dict[str, Any], says: str) -> None:
    with pytest.raises(ValueError, match="the openai backend") as raised:
        agent_of(backend_for("http://127.0.0.1:11434/v1"), **options)
    assert says in str(raised.value)


def test_a_bad_key_option_is_reported_without_its_value() -> None:
    with pytest.raises(ValueError, match="option 'api_key'") as raised:
        agent_of(backend_for("http://127.0.0.1:11434/v1"), api_key=["sk-leaked-value"])
    assert "sk-leaked-value" not in str(raised.value)


def test_settings_come_from_orch_openai_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_OPENAI_BASE_URL", "http://gpu-box:8000/v1")
    monkeypatch.setenv("ORCH_OPENAI_MODEL", "Qwen/Qwen2.5-Coder-32B-Instruct")
    monkeypatch.setenv("ORCH_OPENAI_API_KEY", KEY)
    monkeypatch.setenv("ORCH_OPENAI_MAX_CONCURRENCY", "3")
    monkeypatch.setenv("ORCH_OPENAI_EXTRA_HEADERS", '{"X-Tenant": "a"}')
    registered: list[Any] = []
    register_agents(registered.append)

    [backend] = registered
    assert backend.name == "openai"
    settings = backend.settings
    assert settings.base_url == "http://gpu-box:8000/v1"
    assert settings.model == "Qwen/Qwen2.5-Coder-32B-Instruct"
    assert settings.api_key.get_secret_value() == KEY
    assert KEY not in repr(settings)
    assert settings.max_concurrency == 3
    assert settings.extra_headers == {"X-Tenant": "a"}


def test_defaults_point_at_a_local_ollama(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ORCH_OPENAI_BASE_URL", "ORCH_OPENAI_MODEL", "ORCH_OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    settings = OpenAISettings()
    assert settings.base_url == "http://127.0.0.1:11434/v1"
    assert settings.model == "qwen2.5-coder:7b"
    assert settings.api_key is None


async def test_an_agent_is_a_selecting_agent(server: LLMServer) -> None:
    from orchestrator_core.hookspecs import SelectingAgent

    assert isinstance(agent_of(backend_for(server.base_url)), SelectingAgent)


async def test_errors_are_agent_errors(server: LLMServer) -> None:
    server.script(CHAT_PATH, Reply(b"garbage"))
    with pytest.raises(AgentError):
        await agent_of(backend_for(server.base_url)).generate(TASK)


def test_a_backend_wide_setting_given_as_a_council_option_says_where_it_belongs() -> None:
    with pytest.raises(ValueError, match="unknown option 'max_concurrency' \\(it is backend-wide: set ORCH_OPENAI_MAX"):
        agent_of(backend_for("http://127.0.0.1:11434/v1"), max_concurrency=4)
