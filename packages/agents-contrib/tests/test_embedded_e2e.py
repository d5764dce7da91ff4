"""End to end on a real model: the ``embedded`` backend's SmolLM2 behind the real gRPC server.

The server is configured as an operator would (``ORCH_*`` variables, plugins from their entry
points) and llama.cpp runs in the server's process through xllamacpp. What is asserted is
the pipeline, not the model's cleverness: every phase ran, the tokens the response counts are
the tokens the model server counted, no request overflowed the small context window although
the proposals embedded in later prompts needed shortening, replies cut off at ``max_tokens``
are flagged, and the record names the model.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agents_contrib.embedded import EmbeddedBackend
from agents_contrib.embedded_server import packaged_model
from agents_contrib.prompting import PromptBook
from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_core.models import AgentConfig, Critique, Phase, Proposal, Task, TaskConstraints, TaskTest
from orchestrator_core.settings import Settings
from orchestrator_grpc.observability.tracing import Tracing
from orchestrator_grpc.server import RunningServer, running_server

CONTEXT_TOKENS = 512
MAX_TOKENS = 128
TEST_FILE = "from solution import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n    assert add(-1, 1) == 0\n"
TASK = "Write a Python function add(a, b) that returns the sum of a and b."
MODEL = "SmolLM2-135M-Instruct.Q4_1"


def configure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **embedded: str) -> Settings:
    for name, value in {
        "ORCH_HOST": "127.0.0.1",
        "ORCH_PORT": "0",
        "ORCH_DATABASE_PATH": str(tmp_path / "records.sqlite3"),
        "ORCH_PLUGINS_ENABLED": "embedded,policy,lint,dryrun",
        "ORCH_COUNCILS__DEV__AGENTS": "3",
        "ORCH_QUORUM": "3",
        "ORCH_EMBEDDED_CONTEXT_TOKENS": str(CONTEXT_TOKENS),
        "ORCH_EMBEDDED_MAX_TOKENS": str(MAX_TOKENS),
        "ORCH_EMBEDDED_SEED": "7",
        **{f"ORCH_EMBEDDED_{key.upper()}": value for key, value in embedded.items()},
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("ORCH_CONFIG_FILE", "ORCH_PROMPTS_DIR", "ORCH_DEFAULT_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    return Settings()


@pytest.fixture
async def orchestrator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RunningServer]:
    async with running_server(configure(tmp_path, monkeypatch)) as server:
        yield server


def embedded_backend(server: RunningServer) -> EmbeddedBackend:
    backend = server.orchestrator.plugins.backends["embedded"]
    assert isinstance(backend, EmbeddedBackend)
    return backend


async def server_counters(backend: EmbeddedBackend) -> dict[str, float]:
    """llama.cpp's own token counters, from its Prometheus endpoint."""
    started = backend.server.started
    assert started is not None, "the embedded model server never started"
    root = started.base_url.removesuffix("/v1")
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{root}/metrics", timeout=10)).text
    return {name: float(value) for name, value in re.findall(r"^llamacpp:(\w+) ([0-9.e+]+)$", text, re.MULTILINE)}


def request(rounds: int) -> pb.DeliberateRequest:
    return pb.DeliberateRequest(
        role="DEV", task=TASK, rounds=rounds,
        constraints=pb.TaskConstraints(tests=[pb.TaskTest(path="test_add.py", content=TEST_FILE)]),
    )


async def unshortened_revise_tokens(base_url: str, record: pb.DeliberationRecord, author: str) -> int:
    """The tokens, by the model's tokenizer, of the first revise prompt of ``author`` with its
    proposal and critiques embedded whole, and the reply's budget beside it."""
    task = Task("DEV", TASK, TaskConstraints(tests=(TaskTest("test_add.py", TEST_FILE),)))
    [draft] = [p for p in record.proposals if p.author_id == author and p.revision == 0]
    critiques = [c for c in record.critiques if c.author_id == author and c.round == 1]
    prompt = PromptBook().render(
        "DEV", Phase.REVISE, task,
        proposal=Proposal(draft.proposal_id, author, "DEV", draft.content),
        feedback=[Critique(c.critic_id, c.proposal_id, author, c.content, 1) for c in critiques],
    )
    async with httpx.AsyncClient() as client:
        reply = await client.post(f"{base_url.removesuffix('/v1')}/tokenize",
                                  json={"content": f"{prompt.system}\n{prompt.user}"}, timeout=30)
    return len(reply.json()["tokens"]) + MAX_TOKENS


async def test_a_council_of_three_deliberates_on_the_embedded_model(orchestrator: RunningServer) -> None:
    async with grpc.aio.insecure_channel(orchestrator.address) as channel:
        stub = pb_grpc.OrchestratorServiceStub(channel)  # type: ignore[no-untyped-call]
        response = await stub.Deliberate(request(rounds=2), timeout=600)
        record = await stub.GetDeliberation(
            pb.GetDeliberationRequest(deliberation_id=response.deliberation_id), timeout=30
        )

    # Every phase ran for every agent, and no request was refused for its length.
    assert list(response.failures) == []
    assert response.rounds == 2
    phases = [(p.phase, p.round) for p in record.phases]
    assert phases == [("generate", 0), ("critique", 1), ("revise", 1), ("critique", 2), ("revise", 2), ("check", 0)]
    assert len(record.proposals) == 9
    assert len(record.critiques) == 6
    assert sorted(r.proposal.revision for r in response.results) == [2, 2, 2]
    for result in response.results:
        assert {result.checks.policy.name, result.checks.lint.name, result.checks.dryrun.name} == {
            "policy", "lint", "dryrun"}

    # The tokens counted are the model server's: 15 calls, each answered.
    counters = await server_counters(embedded_backend(orchestrator))
    assert response.usage.prompt_tokens > 0
    assert response.usage.completion_tokens == counters["tokens_predicted_total"]
    assert response.usage.completion_tokens <= 15 * MAX_TOKENS
    assert record.usage.completion_tokens == response.usage.completion_tokens

    # The prompts fit a window the whole proposals and critiques would not have fitted.
    started = embedded_backend(orchestrator).server.started
    assert started is not None
    needed = max([await unshortened_revise_tokens(started.base_url, record, f"dev-{i}") for i in (1, 2, 3)])
    assert needed > CONTEXT_TOKENS, f"no revise prompt needed shortening ({needed} tokens): raise MAX_TOKENS"

    # The record says what ran.
    assert [seat.model for seat in record.council] == [MODEL] * 3
    assert all("llama.cpp" in seat.endpoint and seat.backend == "embedded" for seat in record.council)


async def test_replies_cut_off_at_max_tokens_are_flagged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_DEFAULT_ROUNDS", "0")  # a request's rounds=0 means the server's
    async with running_server(configure(tmp_path, monkeypatch, max_tokens="8")) as server:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = pb_grpc.OrchestratorServiceStub(channel)  # type: ignore[no-untyped-call]
            response = await stub.Deliberate(request(rounds=0), timeout=300)
        counters = await server_counters(embedded_backend(server))

    assert list(response.failures) == []
    assert len(response.results) == 3
    assert all(result.proposal.truncated for result in response.results)
    assert response.usage.completion_tokens == 3 * 8 == counters["tokens_predicted_total"]
    # Eight tokens hold no working add(): nothing is viable, and the response says so.
    assert response.viable_proposals == 0


async def test_a_reply_names_the_served_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    configure(tmp_path, monkeypatch, max_tokens="8")
    backend = EmbeddedBackend()
    try:
        agent = backend.create(AgentConfig("dev-1", "DEV", 0, 1, {}))
        reply = await agent.generate(Task("DEV", TASK))
    finally:
        await backend.aclose()

    assert reply.text
    assert reply.model == MODEL


async def test_a_trace_shows_each_call_with_the_served_model_its_tokens_and_its_truncation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exporter = InMemorySpanExporter()

    def in_memory(cls: type[Tracing], settings: Settings) -> Tracing:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        return cls(provider, settings)

    monkeypatch.setattr(Tracing, "from_environment", classmethod(in_memory))
    monkeypatch.setenv("ORCH_DEFAULT_ROUNDS", "0")
    settings = configure(tmp_path, monkeypatch, max_tokens="8")
    async with running_server(settings) as server, grpc.aio.insecure_channel(server.address) as channel:
        stub = pb_grpc.OrchestratorServiceStub(channel)  # type: ignore[no-untyped-call]
        response = await stub.Deliberate(request(rounds=0), timeout=300)
    calls = [span for span in exporter.get_finished_spans() if span.name.startswith("chat")]

    assert len(calls) == 3
    for call in calls:
        attributes = dict(call.attributes or {})
        assert call.name == f"chat {MODEL}"
        assert attributes["gen_ai.provider.name"] == "llama.cpp"
        assert attributes["gen_ai.request.model"] == attributes["gen_ai.response.model"] == MODEL
        assert attributes["gen_ai.usage.output_tokens"] == 8
        assert attributes["gen_ai.response.finish_reasons"] == ("length",)
    assert sum(int((c.attributes or {})["gen_ai.usage.input_tokens"]) for c in calls) == response.usage.prompt_tokens


def test_the_default_model_ships_in_a_wheel() -> None:
    model = packaged_model()
    assert model is not None
    assert model.name == f"{MODEL}.gguf"
    assert model.stat().st_size > 50_000_000
