"""``orchestrator eval humaneval --serve`` on model servers: the harness works with any
backend the service's councils are configured with, here the openai and anthropic backends
against a scripted server that answers HumanEval/0 correctly."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from llm_server import (
    CHAT_PATH,
    MESSAGES_PATH,
    LLMServer,
    Reply,
    anthropic_message,
    chat_completion,
    running_llm_server,
)

from orchestrator_grpc.cli import main
from orchestrator_grpc.evaluation.humaneval import load_problems

PROBLEM = load_problems()[0]
ANSWER = f"```python\n{PROBLEM.prompt}{PROBLEM.canonical_solution}```\n"
SANDBOX_UIDS = 100_000 + (os.getpid() % 50_000) * 8


@pytest.fixture
async def llm() -> AsyncIterator[LLMServer]:
    async with running_llm_server() as server:
        yield server


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in [n for n in os.environ if n.startswith("ORCH_")]:
        monkeypatch.delenv(name)
    for name, value in {"SANDBOX_UID": str(SANDBOX_UIDS), "SANDBOX_UID_COUNT": "8",
                        "WORK_ROOT": str(tmp_path / "work")}.items():
        monkeypatch.setenv(f"ORCH_DRYRUN_{name}", value)
    return tmp_path


async def evaluate(out: Path) -> list[dict[str, object]]:
    argv = ["eval", "humaneval", "--serve", "--problems", "0", "--arms", "single,best-of-n", "--agents", "2",
            "--out-dir", str(out), "--report", str(out / "EVAL.md")]
    assert await asyncio.to_thread(main, argv) == 0
    return [json.loads(line) for line in (out / "humaneval.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("backend", ["openai", "anthropic"])
async def test_the_harness_runs_on_a_model_server(
    backend: str, llm: LLMServer, clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCH_PLUGINS_ENABLED", f"{backend},policy,lint,dryrun")
    monkeypatch.setenv("ORCH_DEFAULT_BACKEND", backend)
    monkeypatch.setenv(f"ORCH_{backend.upper()}_BASE_URL", llm.base_url if backend == "openai" else llm.url)
    monkeypatch.setenv(f"ORCH_{backend.upper()}_API_KEY", "sk-test-not-a-secret")
    monkeypatch.setenv(f"ORCH_{backend.upper()}_MODEL", "served-model")
    if backend == "openai":
        llm.script(CHAT_PATH, *(Reply(chat_completion(ANSWER, prompt_tokens=100, completion_tokens=40))
                                for _ in range(3)))
        path = CHAT_PATH
    else:
        llm.script(MESSAGES_PATH, *(Reply(anthropic_message(ANSWER, input_tokens=100, output_tokens=40))
                                    for _ in range(3)))
        path = MESSAGES_PATH

    rows = await evaluate(clean_env / "eval")
    assert [row["arm"] for row in rows] == ["single", "best-of-n"]
    for row in rows:
        assert row["status"] == "answered"
        assert row["hidden_passed"] is True
        assert row["visible_passed"] is True
        assert any(str(model).startswith(f"{backend}:") for model in row["models"])
    assert (rows[0]["prompt_tokens"], rows[0]["completion_tokens"]) == (100, 40)
    assert (rows[1]["prompt_tokens"], rows[1]["completion_tokens"]) == (200, 80)
    prompts = json.dumps([request.json for request in llm.requests_to(path)])
    assert "def has_close_elements" in prompts
    assert "check(candidate)" not in prompts  # the hidden test stayed hidden
    assert "METADATA" not in prompts
