"""End to end: a gRPC server whose DEV council is three ``openai`` agents on a scripted LLM server.

The server is configured the way an operator would do it: a TOML file named by
ORCH_CONFIG_FILE plus ORCH_ environment variables, with the installed plugins loaded
from their entry points (only ``openai`` enabled).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from llm_server import CHAT_PATH, LLMServer, Recorded, Reply, chat_completion, running_llm_server

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_core.settings import Settings
from orchestrator_grpc.server import RunningServer, running_server

KEY = "sk-e2e-secret-key-42"
CONFIG = """\
plugins_enabled = ["openai", "policy", "lint"]
default_rounds = 1
quorum = 2
selector_role = "ARCHITECT"

[councils.DEV]
backend = "openai"
agents = 3

[councils.DEV.options]
model = "dev-model"
temperature = 0.6
temperature_spread = 0.4
seed = 100
max_retries = 1
backoff_base_seconds = 0.01

[councils.ARCHITECT]
backend = "openai"
agents = 1

[councils.ARCHITECT.options]
model = "architect-model"
temperature = 0.2
"""
RATIONALE = "Candidate 2 handles overflow."


def author_of(request: Recorded) -> str:
    return f"dev-{request.json['seed'] - 99}"


def phase_of(request: Recorded) -> str:
    user = request.json["messages"][1]["content"]
    for says, phase in (("Choose which of", "select"), ("Reviews of your code:", "revise"),
                        ("Review this code.", "critique")):
        if says in user:
            return phase
    return "generate"


def scripted_council(request: Recorded) -> Reply:
    """What a well-behaved model would answer, by model, phase and agent (its seed)."""
    if request.json["model"] == "architect-model":
        text = f'Weighing the three:\n```json\n{{"choice": 2, "rationale": "{RATIONALE}"}}\n```'
        return Reply(chat_completion(text, prompt_tokens=50, completion_tokens=20))
    author, phase = author_of(request), phase_of(request)
    text = {
        "generate": f"File: add.py\n```python\ndef add(a, b):  # {author} v0\n    return a + b\n```",
        "critique": f"{author}: add type hints.",
        "revise": f"File: add.py\n```python\ndef add(a: int, b: int) -> int:  # {author} v1\n    return a + b\n```",
    }[phase]
    return Reply(chat_completion(text, prompt_tokens=10, completion_tokens=5), delay=0.01)


@pytest.fixture
async def llm() -> AsyncIterator[LLMServer]:
    async with running_llm_server() as server:
        server.responder = scripted_council
        yield server


def configure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base_url: str) -> Settings:
    config = tmp_path / "orchestrator.toml"
    config.write_text(CONFIG)
    for name, value in {
        "ORCH_CONFIG_FILE": str(config),
        "ORCH_HOST": "127.0.0.1",
        "ORCH_PORT": "0",
        "ORCH_DATABASE_PATH": str(tmp_path / "records.sqlite3"),
        "ORCH_OPENAI_BASE_URL": base_url,
        "ORCH_OPENAI_API_KEY": KEY,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ORCH_PROMPTS_DIR", raising=False)
    return Settings()


@pytest.fixture
async def orchestrator(llm: LLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RunningServer]:
    async with running_server(configure(tmp_path, monkeypatch, llm.base_url)) as server:
        yield server


@pytest.fixture
async def stub(orchestrator: RunningServer) -> AsyncIterator[pb_grpc.OrchestratorServiceStub]:
    async with grpc.aio.insecure_channel(orchestrator.address) as channel:
        yield pb_grpc.OrchestratorServiceStub(channel)  # type: ignore[no-untyped-call]


TASK = pb.DeliberateRequest(role="DEV", task="Write add(a, b) returning the sum.")


async def test_deliberate_runs_a_real_council(llm: LLMServer, stub: pb_grpc.OrchestratorServiceStub) -> None:
    response = await stub.Deliberate(TASK, timeout=60)

    assert list(response.failures) == []
    assert response.rounds == 1
    assert sorted(r.proposal.author_id for r in response.results) == ["dev-1", "dev-2", "dev-3"]
    for result in response.results:
        assert result.proposal.revision == 1
        assert f"# {result.proposal.author_id} v1" in result.proposal.content
    # Nine calls (3 generate, 3 critique, 3 revise) of 10 + 5 tokens each.
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (90, 45)

    requests = llm.requests_to(CHAT_PATH)
    assert len(requests) == 9
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in requests)
    generated = [r for r in requests if phase_of(r) == "generate"]
    assert sorted((r.json["seed"], r.json["temperature"]) for r in generated) == [(100, 0.4), (101, 0.6), (102, 0.8)]
    for request in requests:
        user = request.json["messages"][1]["content"]
        index = request.json["seed"] - 100
        if phase_of(request) == "critique":  # agent i critiques agent i+1's proposal
            assert f"# dev-{(index + 1) % 3 + 1} v0" in user
        if phase_of(request) == "revise":  # and agent i+1 revises with it
            assert f"Critique 1 (from dev-{(index - 1) % 3 + 1}):\ndev-{(index - 1) % 3 + 1}: add type hints." in user
            assert f"# dev-{index + 1} v0" in user

    status = await stub.GetStatus(pb.GetStatusRequest(), timeout=10)
    assert (status.statistics.usage.prompt_tokens, status.statistics.usage.completion_tokens) == (90, 45)
    councils = {c.role: c for c in status.councils}
    assert (councils["DEV"].backend, councils["DEV"].agents, councils["DEV"].ready) == ("openai", 3, True)
    assert "openai" in [p.name for p in status.plugins]


async def test_orchestrate_lets_the_architect_choose(llm: LLMServer, stub: pb_grpc.OrchestratorServiceStub) -> None:
    response = await stub.Orchestrate(pb.OrchestrateRequest(deliberation=TASK, top_k=3), timeout=60)

    assert response.selected_by == "architect-1"
    assert response.rationale == RATIONALE
    assert len(response.candidates) == 3
    assert response.winner.proposal.proposal_id == response.candidates[1].proposal.proposal_id
    assert (response.selection_usage.prompt_tokens, response.selection_usage.completion_tokens) == (50, 20)
    assert (response.deliberation.usage.prompt_tokens, response.deliberation.usage.completion_tokens) == (90, 45)

    [select] = [r for r in llm.requests_to(CHAT_PATH) if r.json["model"] == "architect-model"]
    user = select.json["messages"][1]["content"]
    for number, candidate in enumerate(response.candidates, start=1):
        assert f"===== Candidate {number} (by {candidate.proposal.author_id}) =====" in user
    assert '{"choice": <the number of the chosen candidate, from 1 to 3>' in user

    status = await stub.GetStatus(pb.GetStatusRequest(), timeout=10)
    assert (status.statistics.usage.prompt_tokens, status.statistics.usage.completion_tokens) == (140, 65)


async def test_a_misbehaving_llm_server_is_a_recorded_failure(
    llm: LLMServer, stub: pb_grpc.OrchestratorServiceStub
) -> None:
    def one_broken_agent(request: Recorded) -> Reply:
        if author_of(request) == "dev-3" and phase_of(request) == "generate":
            return Reply(b'{"choices": [{"message": ')  # cut off mid-body
        return scripted_council(request)

    llm.responder = one_broken_agent
    response = await stub.Deliberate(TASK, timeout=60)

    [failure] = response.failures
    assert (failure.agent_id, failure.phase) == ("dev-3", "generate")
    assert "answered with a body that is not JSON" in failure.error
    assert sorted(r.proposal.author_id for r in response.results) == ["dev-1", "dev-2"]
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (60, 30)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _deliberate_error(settings: Settings) -> grpc.aio.AioRpcError:
    async with running_server(settings) as server, grpc.aio.insecure_channel(server.address) as channel:
        stub = pb_grpc.OrchestratorServiceStub(channel)  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.Deliberate(TASK, timeout=60)
    return raised.value


async def test_an_unreachable_endpoint_is_unavailable_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url = f"http://127.0.0.1:{_closed_port()}/v1"
    error = await _deliberate_error(configure(tmp_path, monkeypatch, base_url))

    assert error.code() is grpc.StatusCode.UNAVAILABLE
    assert f"no OpenAI-compatible server answered at {base_url}" in (error.details() or "")
    assert "ORCH_OPENAI_BASE_URL" in (error.details() or "")
    assert KEY not in (error.details() or "")


@pytest.mark.parametrize(
    ("reply", "says"),
    [
        (Reply({"error": {"message": f"Incorrect API key provided: {KEY}"}}, status=401),
         "refused the configured credentials (HTTP 401)"),
        (Reply({"error": {"message": "model 'dev-model' not found, try pulling it first"}}, status=404),
         "has no model 'dev-model'"),
    ],
    ids=["credentials", "model"],
)
async def test_a_refused_configuration_is_a_failed_precondition(
    llm: LLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reply: Reply, says: str
) -> None:
    llm.responder = lambda request: reply
    error = await _deliberate_error(configure(tmp_path, monkeypatch, llm.base_url))

    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert says in (error.details() or "")
    assert KEY not in (error.details() or "")


async def test_orchestrator_serve_runs_real_deliberations_from_orch_settings(
    llm: LLMServer, tmp_path: Path
) -> None:
    """The command an operator runs, as its own process, configured by ORCH_ variables alone."""
    program = shutil.which("orchestrator", path=str(Path(sys.executable).parent)) or shutil.which("orchestrator")
    assert program is not None, "the orchestrator command is not installed"
    env = {name: value for name, value in os.environ.items() if not name.startswith("ORCH_")}
    env.update(
        ORCH_HOST="127.0.0.1",
        ORCH_PORT="0",
        ORCH_DATABASE_PATH=str(tmp_path / "records.sqlite3"),
        ORCH_PLUGINS_ENABLED="openai",
        ORCH_DEFAULT_BACKEND="openai",
        ORCH_OPENAI_BASE_URL=llm.base_url,
        ORCH_OPENAI_MODEL="dev-model",
        ORCH_OPENAI_SEED="100",
        ORCH_COUNCILS__DEV__AGENTS="3",
    )
    process = await asyncio.create_subprocess_exec(
        program, "serve", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(30):  # guards a hang only
            line = (await process.stdout.readline()).decode()
        assert line.startswith("orchestrator serving on "), line
        address = line.removeprefix("orchestrator serving on ").strip()
        async with grpc.aio.insecure_channel(address) as channel:
            stub = pb_grpc.OrchestratorServiceStub(channel)  # type: ignore[no-untyped-call]
            response = await stub.Deliberate(TASK, timeout=60)
    finally:
        process.terminate()
        await process.wait()

    assert list(response.failures) == []
    assert sorted(r.proposal.author_id for r in response.results) == ["dev-1", "dev-2", "dev-3"]
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (90, 45)
    assert len(llm.requests_to(CHAT_PATH)) == 9
