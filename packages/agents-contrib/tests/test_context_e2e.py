"""End to end: a DEV council of three ``openai`` agents on a llama.cpp-like server with a 4,096-token
window, two rounds, proposals far longer than the window.

No request may exceed the window (the server counts and refuses with 400 those that do); the
critique and revise prompts carry the shortened proposals with their markers; a reply cut off
at max_tokens is flagged through gRPC, in the response and in the record, and by the CLI; a
task that cannot fit at all is FAILED_PRECONDITION, with no request sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from llm_server import CHAT_PATH, TOKENIZE_PATH, LLMServer, Recorded, Reply, chat_completion, running_llm_server
from rich.console import Console
from server_settings import openai_server_settings

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_core.models import Task
from orchestrator_grpc.cli.deliberate import TRUNCATED_NOTE, _results_table
from orchestrator_grpc.convert.client_results import outcome_from_proto
from orchestrator_grpc.server import running_server

WINDOW = 4096
AUTHORS = {0.5: "dev-1", 0.7: "dev-2", 0.9: "dev-3"}  # temperatures 0.7 ± 0.2 across the council
CUT_OFF_AUTHOR = "dev-3"
MARKER_TEXT = "characters cut to fit the model's context ...]"
LINE = "    total = compute_something(alpha, beta, gamma) + offset  # keep going\n"


def phase_of(request: Recorded) -> str:
    user = request.json["messages"][1]["content"]
    if "Critique 1 (from" in user:
        return "revise"
    if "BEGIN PROPOSAL" in user:
        return "critique"
    return "generate"


def long_council(request: Recorded) -> Reply:
    """Every proposal about 40,000 characters; dev-3's replies stop at max_tokens."""
    author, phase = AUTHORS[request.json["temperature"]], phase_of(request)
    if phase == "critique":
        return Reply(chat_completion(f"{author}: the loop repeats itself.\n" + "Also this. " * 800))
    text = f"File: add.py\n```python\n# {author} {phase} head\n" + LINE * 600 + f"# {author} {phase} tail\n```\n"
    finish = "length" if author == CUT_OFF_AUTHOR else "stop"
    return Reply(chat_completion(text, finish_reason=finish))


@pytest.fixture
async def llm() -> AsyncIterator[LLMServer]:
    async with running_llm_server() as server:
        server.context_tokens = WINDOW
        server.responder = long_council
        yield server


async def test_two_rounds_of_long_proposals_stay_inside_the_window(
    llm: LLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = openai_server_settings(tmp_path, monkeypatch, llm.base_url, ORCH_COUNCILS__DEV__AGENTS="3")
    request = pb.DeliberateRequest(role="DEV", task="Write add(a, b) returning the sum.", rounds=2)
    async with running_server(settings) as server, grpc.aio.insecure_channel(server.address) as channel:
        stub = pb_grpc.OrchestratorServiceStub(channel)  # type: ignore[no-untyped-call]
        response = await stub.Deliberate(request, timeout=120)
        record = await stub.GetDeliberation(
            pb.GetDeliberationRequest(deliberation_id=response.deliberation_id), timeout=10
        )

    assert list(response.failures) == []
    assert response.rounds == 2
    chats = llm.requests_to(CHAT_PATH)
    assert len(chats) == 3 * (1 + 2 * 2)
    assert llm.refused_as_too_long == 0
    assert max(llm.requested_tokens) <= WINDOW
    assert all(r.json["max_tokens"] == 1024 for r in chats)
    assert any(p.path == TOKENIZE_PATH for p in llm.probes)  # counted by the server's tokenizer
    for chat in chats:
        user = chat.json["messages"][1]["content"]
        if phase_of(chat) == "critique":
            assert user.count(MARKER_TEXT) == 1
            assert " head\n" in user
            assert " tail\n" in user
        if phase_of(chat) == "revise":
            assert user.count(MARKER_TEXT) == 2  # the own proposal and the critique received

    truncated = {r.proposal.author_id: r.proposal.truncated for r in response.results}
    assert truncated == {"dev-1": False, "dev-2": False, "dev-3": True}
    assert {(p.proposal_id, p.truncated) for p in record.proposals} == {
        (f"dev-{n}-v{v}", n == 3) for n in (1, 2, 3) for v in (0, 1, 2)
    }
    assert {r.proposal.author_id: r.proposal.truncated for r in record.response.results} == truncated

    console = Console(record=True, width=200)
    console.print(_results_table(outcome_from_proto(response, Task(role="DEV", description="x")).results))
    shown = {line.split("│")[2].strip() for line in console.export_text().splitlines() if "dev-" in line}
    assert shown == {"dev-1-v2", "dev-2-v2", f"dev-3-v2 {TRUNCATED_NOTE}"}


async def test_a_task_that_cannot_fit_the_window_is_a_failed_precondition(
    llm: LLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = openai_server_settings(tmp_path, monkeypatch, llm.base_url, ORCH_COUNCILS__DEV__AGENTS="3")
    task = "Implement this specification exactly.\n" + "The parser accepts every line given. " * 1500
    async with running_server(settings) as server, grpc.aio.insecure_channel(server.address) as channel:
        stub = pb_grpc.OrchestratorServiceStub(channel)  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.Deliberate(pb.DeliberateRequest(role="DEV", task=task), timeout=60)

    assert raised.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "the generate prompt takes" in (raised.value.details() or "")
    assert f"context window holds {WINDOW:,} tokens" in (raised.value.details() or "")
    assert llm.requests_to(CHAT_PATH) == []


async def test_a_server_refusing_the_request_is_a_failed_precondition_not_retried(
    llm: LLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The operator claims a window the server does not have; the server refuses with 400.
    settings = openai_server_settings(tmp_path, monkeypatch, llm.base_url, ORCH_COUNCILS__DEV__AGENTS="3",
                                      ORCH_OPENAI_CONTEXT_TOKENS="200000", ORCH_OPENAI_MAX_TOKENS="8000")
    async with running_server(settings) as server, grpc.aio.insecure_channel(server.address) as channel:
        stub = pb_grpc.OrchestratorServiceStub(channel)  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.Deliberate(pb.DeliberateRequest(role="DEV", task="Write add(a, b)."), timeout=60)

    assert raised.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "rejected the request (HTTP 400: This model's maximum context length is 4096" in (
        raised.value.details() or "")
    # A 400 is final: no agent sends a second request. Once two agents have failed, the quorum
    # (2 of 3) is lost and the third call is cancelled, before or after its request left.
    requests = llm.requests_to(CHAT_PATH)
    assert 2 <= len(requests) <= 3
    assert len({r.json["messages"][0]["content"] + str(r.json.get("temperature")) for r in requests}) == len(requests)
