"""The openai backend's retries, backoff, deadlines, cancellation and concurrency limit."""

from __future__ import annotations

import asyncio

import pytest
from backend_support import Sleeps
from llm_server import CHAT_PATH, LLMServer, Reply, chat_completion
from openai_support import TASK, agent_of, backend_for

from agents_contrib.backend_errors import ServerFailed
from orchestrator_core.errors import BackendUnavailable

# -- retries ----------------------------------------------------------------------


async def test_429_then_success_waits_as_long_as_retry_after_asks(server: LLMServer) -> None:
    server.script(CHAT_PATH, Reply({"error": {"message": "slow down"}}, status=429, headers={"Retry-After": "2"}),
                  Reply(chat_completion("done", prompt_tokens=5, completion_tokens=2)))
    sleeps = Sleeps()
    reply = await agent_of(backend_for(server.base_url, sleeps)).generate(TASK)

    assert reply.text == "done"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (5, 2)  # the successful attempt's
    assert len(server.requests) == 2
    assert sleeps.delays == [2.0]
    assert server.requests[0].json == server.requests[1].json


async def test_retry_after_ms_is_honoured(server: LLMServer) -> None:
    server.script(CHAT_PATH, Reply(status=429, body={}, headers={"retry-after-ms": "1500"}), Reply())
    sleeps = Sleeps()
    await agent_of(backend_for(server.base_url, sleeps)).generate(TASK)

    assert sleeps.delays == [1.5]


async def test_a_retry_after_past_the_deadline_ends_the_call_at_once(server: LLMServer) -> None:
    server.script(CHAT_PATH, Reply(status=429, body={}, headers={"Retry-After": "600"}))
    sleeps = Sleeps()
    with pytest.raises(ServerFailed) as raised:
        await agent_of(backend_for(server.base_url, sleeps, call_timeout_seconds=30)).generate(TASK)

    assert "rate limiting requests (HTTP 429)" in str(raised.value)
    assert "would start after the call's 30s deadline" in str(raised.value)
    assert sleeps.delays == []
    assert len(server.requests) == 1


async def test_retries_stop_at_the_deadline_the_deliberation_gave_the_call(server: LLMServer) -> None:
    from orchestrator_core.deadlines import call_deadline

    server.script(CHAT_PATH, Reply(status=429, body={}, headers={"Retry-After": "20"}))
    sleeps = Sleeps()
    with call_deadline(5.0), pytest.raises(ServerFailed) as raised:  # the engine's bound, tighter than 170 s
        await agent_of(backend_for(server.base_url, sleeps)).generate(TASK)

    assert "rate limiting requests (HTTP 429)" in str(raised.value)
    assert sleeps.delays == []
    assert len(server.requests) == 1


async def test_server_errors_are_retried_with_growing_jittered_backoff(server: LLMServer) -> None:
    server.script(CHAT_PATH, *(Reply({"error": {"message": "boom"}}, status=500) for _ in range(4)))
    sleeps = Sleeps()
    backend = backend_for(server.base_url, sleeps, max_retries=3, backoff_base_seconds=1.0, backoff_max_seconds=3.0)
    with pytest.raises(ServerFailed) as raised:
        await agent_of(backend).generate(TASK)

    assert "failed (HTTP 500: boom)" in str(raised.value)
    assert "gave up after 4 attempt(s)" in str(raised.value)
    assert len(server.requests) == 4
    caps = [1.0, 2.0, 3.0]  # base * 2**n, capped at backoff_max
    assert len(sleeps.delays) == 3
    for delay, cap in zip(sleeps.delays, caps, strict=True):
        assert cap / 2 <= delay <= cap


async def test_503_then_success(server: LLMServer) -> None:
    server.script(CHAT_PATH, Reply(status=503, body="overloaded"), Reply(chat_completion("ok")))
    assert (await agent_of(backend_for(server.base_url)).generate(TASK)).text == "ok"
    assert len(server.requests) == 2


async def test_persistent_502_is_unavailable(server: LLMServer) -> None:
    server.script(CHAT_PATH, *(Reply(status=502, body="bad gateway") for _ in range(2)))
    with pytest.raises(BackendUnavailable) as raised:
        await agent_of(backend_for(server.base_url, max_retries=1)).generate(TASK)
    assert "failed (HTTP 502: bad gateway)" in str(raised.value)


async def test_a_dropped_connection_is_retried(server: LLMServer) -> None:
    server.script(CHAT_PATH, Reply(drop=True), Reply(chat_completion("second try")))
    assert (await agent_of(backend_for(server.base_url)).generate(TASK)).text == "second try"
    assert len(server.requests) == 2


async def test_a_request_timeout_is_retried_and_the_slow_request_abandoned(server: LLMServer) -> None:
    server.script(CHAT_PATH, Reply(delay=60), Reply(chat_completion("in time")))
    agent = agent_of(backend_for(server.base_url, request_timeout_seconds=1.0))

    assert (await agent.generate(TASK)).text == "in time"
    assert len(server.requests) == 2
    await server.wait_for(lambda: server.disconnects == 1)


async def test_timeouts_until_the_end_are_unavailable_naming_the_wait(server: LLMServer) -> None:
    server.script(CHAT_PATH, Reply(delay=60), Reply(delay=60))
    agent = agent_of(backend_for(server.base_url, request_timeout_seconds=0.2, max_retries=1))
    with pytest.raises(BackendUnavailable) as raised:
        await agent.generate(TASK)

    assert "sent no reply within 0.2s" in str(raised.value)


# -- cancellation and the concurrency limit ---------------------------------------


async def test_cancelling_a_call_aborts_its_http_request(server: LLMServer) -> None:
    release = asyncio.Event()
    server.script(CHAT_PATH, Reply(hold=release))
    call = asyncio.create_task(agent_of(backend_for(server.base_url)).generate(TASK))
    await server.wait_for(lambda: server.in_flight == 1)

    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await server.wait_for(lambda: server.disconnects == 1)
    assert len(server.requests) == 1


async def test_the_backend_keeps_to_its_concurrency_limit(server: LLMServer) -> None:
    release = asyncio.Event()
    server.script(CHAT_PATH, *(Reply(hold=release) for _ in range(5)))
    backend = backend_for(server.base_url, max_concurrency=2)
    agents = [agent_of(backend, index, 5) for index in range(5)]
    calls = [asyncio.create_task(agent.generate(TASK)) for agent in agents]

    await server.wait_for(lambda: server.in_flight == 2)
    for _ in range(20):  # let the other three calls run as far as they can
        await asyncio.sleep(0.01)
    assert len(server.requests) == 2

    release.set()
    replies = await asyncio.gather(*calls)
    assert len(replies) == 5
    assert server.max_in_flight == 2
    assert len(server.requests) == 5
