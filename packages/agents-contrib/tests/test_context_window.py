"""Prompts fit the model's context window beside the reply's budget; cut-off replies are flagged.

The scripted server plays llama.cpp (``context_tokens`` set: /props, /tokenize, and a 400 for
a request whose prompt and max_tokens exceed the window), vLLM or Ollama (``probe_answers``).
"""

from __future__ import annotations

import pytest
from backend_support import Sleeps
from llm_server import (
    CHAT_PATH,
    MESSAGES_PATH,
    MODELS_PATH,
    PROPS_PATH,
    SHOW_PATH,
    TOKENIZE_PATH,
    LLMServer,
    Reply,
    anthropic_message,
    chat_completion,
    chat_prompt_tokens,
)
from openai_support import TASK, agent_of, backend_for

from agents_contrib.anthropic_backend import AnthropicBackend, AnthropicSettings
from agents_contrib.backend_errors import PromptTooLong, RequestRejected
from agents_contrib.context_window import DEFAULT_CONTEXT_TOKENS, TEMPLATE_MARGIN_TOKENS
from agents_contrib.prompt_fit import MARKER, cap_for, shorten
from orchestrator_core.errors import BackendRejected
from orchestrator_core.models import AgentConfig, Critique, Proposal, Task

CODE_LINE = "    total = compute_something(alpha, beta, gamma) + offset  # keep\n"


def long_code(lines: int, tag: str) -> str:
    return f"File: add.py\n```python\n# head of {tag}\n" + CODE_LINE * lines + f"# tail of {tag}\n```\n"


def proposal(author: str, lines: int) -> Proposal:
    return Proposal(f"{author}-v0", author, "DEV", long_code(lines, author))


# -- shortening ---------------------------------------------------------------------------


def test_shorten_keeps_head_and_tail_and_says_how_much_was_cut() -> None:
    text = "".join(f"line {n:04d}\n" for n in range(1000))
    short = shorten(text, 2000)

    assert len(short) <= 2000
    assert short.startswith("line 0000\n")
    assert short.endswith("line 0999\n")
    [marker] = [line for line in short.splitlines() if line.startswith("[...")]
    cut = int(marker.split()[1].replace(",", ""))
    assert len(short) - len(marker) - 2 + cut == len(text)  # what is kept plus what is cut is the whole
    assert marker == MARKER.format(count=cut)


def test_shorten_leaves_a_text_that_fits_alone_and_a_cap_of_zero_leaves_only_the_marker() -> None:
    assert shorten("short text", 100) == "short text"
    assert shorten("x" * 5000, 0) == MARKER.format(count=5000)


def test_the_cap_cuts_the_longest_texts_first_and_to_the_same_length() -> None:
    assert cap_for([1000, 200, 100], 0) == 1000
    assert cap_for([1000, 200, 100], 500) == 500  # only the longest is cut
    assert cap_for([1000, 800, 100], 900) == 450  # both long ones, to 450 each
    assert cap_for([10, 10], 100) == 0


# -- the window: option, llama.cpp, vLLM, Ollama, default ----------------------------------


async def test_llama_cpp_reports_its_window_once_and_counts_with_its_tokenizer(server: LLMServer) -> None:
    server.context_tokens = 8192
    backend = backend_for(server.base_url)
    agent = agent_of(backend)

    budget = await agent.prompt_budget()
    await agent_of(backend, index=1, size=2).generate(TASK)
    await agent.generate(TASK)

    assert (budget.window, budget.reply_tokens) == (8192, 1024)
    assert budget.tokens == 8192 - 1024 - TEMPLATE_MARGIN_TOKENS
    assert [p.path for p in server.probes].count(PROPS_PATH) == 1  # cached per endpoint and model
    tokenized = [p for p in server.probes if p.path == TOKENIZE_PATH]
    assert len(tokenized) == 2  # one count per call, by the server's own tokenizer
    assert tokenized[0].json["content"].startswith("You are")
    assert [r.json["max_tokens"] for r in server.requests] == [1024, 1024]


async def test_vllm_reports_max_model_len(server: LLMServer) -> None:
    server.probe_answers[MODELS_PATH] = {"object": "list", "data": [
        {"id": "other-model", "object": "model", "max_model_len": 999999},
        {"id": "test-model", "object": "model", "max_model_len": 32768},
    ]}
    budget = await agent_of(backend_for(server.base_url)).prompt_budget()
    assert (budget.window, budget.window_source) == (32768, "vLLM /v1/models max_model_len")
    assert budget.counter.name.startswith("estimate")


@pytest.mark.parametrize(
    ("parameters", "window"),
    [("num_ctx 8192\nstop \"<|im_end|>\"", 8192), ("stop \"<|im_end|>\"", DEFAULT_CONTEXT_TOKENS)],
    ids=["num_ctx", "unreported"],
)
async def test_ollama_window_is_num_ctx_else_the_default_never_past_the_model(
    server: LLMServer, parameters: str, window: int
) -> None:
    server.probe_answers[SHOW_PATH] = {"parameters": parameters,
                                       "model_info": {"qwen2.context_length": 32768, "general.architecture": "qwen2"}}
    budget = await agent_of(backend_for(server.base_url)).prompt_budget()

    assert budget.window == window
    [show] = [p for p in server.probes if p.path == SHOW_PATH]
    assert show.json == {"model": "test-model"}


async def test_a_server_that_reports_nothing_gets_the_default_once(server: LLMServer) -> None:
    backend = backend_for(server.base_url)
    first = await agent_of(backend).prompt_budget()
    probes = len(server.probes)
    second = await agent_of(backend).prompt_budget()

    assert (first.window, second.window) == (DEFAULT_CONTEXT_TOKENS, DEFAULT_CONTEXT_TOKENS)
    assert probes == 3
    assert len(server.probes) == 3


async def test_the_context_tokens_option_overrides_the_server(server: LLMServer) -> None:
    server.context_tokens = 8192
    budget = await agent_of(backend_for(server.base_url), context_tokens=16384, max_tokens=2000).prompt_budget()
    assert (budget.window, budget.reply_tokens, budget.window_source) == (16384, 2000, "the context_tokens option")
    assert budget.counter.name.startswith("the server's tokenizer")


# -- fitting ------------------------------------------------------------------------------


async def test_a_long_proposal_is_shortened_with_a_marker_and_the_request_fits(server: LLMServer) -> None:
    server.context_tokens = 4096
    peer = proposal("dev-2", 600)  # about 40,000 characters: far past a 4,096-token window

    reply = await agent_of(backend_for(server.base_url), max_tokens=1024).critique(TASK, peer)

    assert reply.text == "reply 1"
    [request] = server.requests
    assert server.refused_as_too_long == 0
    assert chat_prompt_tokens(request.json) + request.json["max_tokens"] <= 4096
    user = request.json["messages"][1]["content"]
    assert "# head of dev-2" in user
    assert "# tail of dev-2" in user
    assert "characters cut to fit the model's context ...]" in user
    assert "Write a function add(a, b)" in user  # the task itself is never cut


async def test_revise_shortens_the_proposal_and_every_long_critique(server: LLMServer) -> None:
    server.context_tokens = 4096
    own = proposal("dev-1", 300)
    feedback = [Critique(f"dev-{n}", "dev-1-v0", "dev-1", f"critique by dev-{n}\n" + "point. " * 3000, 1)
                for n in (2, 3)]

    await agent_of(backend_for(server.base_url)).revise(TASK, own, feedback)

    [request] = server.requests
    user = request.json["messages"][1]["content"]
    assert server.refused_as_too_long == 0
    assert user.count("characters cut to fit the model's context") == 3
    assert "critique by dev-2" in user
    assert "critique by dev-3" in user


async def test_a_short_prompt_is_sent_whole(server: LLMServer) -> None:
    server.context_tokens = 4096
    await agent_of(backend_for(server.base_url)).critique(TASK, proposal("dev-2", 3))
    assert "characters cut" not in server.requests[0].json["messages"][1]["content"]


async def test_a_task_that_cannot_fit_is_refused_without_a_request(server: LLMServer) -> None:
    server.context_tokens = 4096
    huge = Task(role="DEV", description="Implement this specification:\n" + "The parser must accept it. " * 2000)
    with pytest.raises(PromptTooLong) as raised:
        await agent_of(backend_for(server.base_url)).critique(huge, proposal("dev-2", 50))

    assert isinstance(raised.value, BackendRejected)
    assert "even with the proposals and critiques it embeds cut to nothing" in str(raised.value)
    assert "context window holds 4,096 tokens (llama.cpp /props n_ctx)" in str(raised.value)
    assert server.requests == []


async def test_a_reply_budget_that_fills_the_window_is_refused(server: LLMServer) -> None:
    with pytest.raises(PromptTooLong, match="max_tokens 4,096 leaves no room"):
        await agent_of(backend_for(server.base_url), max_tokens=4096).generate(TASK)
    assert server.requests == []


async def test_an_overlong_request_refused_by_the_server_is_final(server: LLMServer) -> None:
    # The operator claims a larger window than the server has: the server refuses with 400.
    server.context_tokens = 4096
    sleeps = Sleeps()
    agent = agent_of(backend_for(server.base_url, sleeps), context_tokens=65536)
    with pytest.raises(RequestRejected) as raised:
        await agent.critique(TASK, proposal("dev-2", 600))

    assert isinstance(raised.value, BackendRejected)
    assert "maximum context length is 4096 tokens" in str(raised.value)
    assert (len(server.requests), sleeps.delays, server.refused_as_too_long) == (1, [], 1)


# -- cut-off replies ----------------------------------------------------------------------


async def test_a_reply_cut_off_at_max_tokens_is_flagged(server: LLMServer) -> None:
    server.script(CHAT_PATH, Reply(chat_completion("```python\ndef add(a, b):\n", finish_reason="length")),
                  Reply(chat_completion("def add(a, b):\n    return a + b\n")))
    agent = agent_of(backend_for(server.base_url))

    cut, whole = await agent.generate(TASK), await agent.generate(TASK)

    assert (cut.truncated, whole.truncated) == (True, False)
    assert cut.text == "```python\ndef add(a, b):"


@pytest.mark.parametrize(("stop", "truncated"), [("max_tokens", True), ("end_turn", False)])
async def test_an_anthropic_reply_stopped_by_max_tokens_is_flagged(
    server: LLMServer, stop: str, truncated: bool
) -> None:
    server.script(MESSAGES_PATH, Reply({**anthropic_message("def add(a, b):"), "stop_reason": stop}))
    backend = AnthropicBackend(AnthropicSettings(base_url=server.url, api_key="sk-ant-test", model="claude-test"),
                               prompts_dir="", sleep=Sleeps())
    agent = backend.create(AgentConfig("dev-1", "DEV", 0, 1, {}))

    reply = await agent.generate(TASK)

    assert reply.truncated is truncated
    assert server.requests[0].json["max_tokens"] == 4096


async def test_anthropic_prompts_fit_the_configured_window(server: LLMServer) -> None:
    backend = AnthropicBackend(AnthropicSettings(base_url=server.url, api_key="sk-ant-test", model="claude-test"),
                               prompts_dir="", sleep=Sleeps())
    agent = backend.create(AgentConfig("dev-1", "DEV", 0, 1, {"context_tokens": 4096, "max_tokens": 1024}))

    await agent.critique(TASK, proposal("dev-2", 600))

    [request] = server.requests
    content = request.json["system"] + request.json["messages"][0]["content"]
    assert len(content.encode()) / 3 <= 4096 - 1024 - TEMPLATE_MARGIN_TOKENS
    assert "characters cut to fit the model's context" in content
