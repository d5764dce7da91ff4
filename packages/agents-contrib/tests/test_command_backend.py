"""The ``command`` backend running a real program: prompt on stdin, reply on stdout, killed on timeout or cancel."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from agents_contrib.backend_errors import MalformedReply
from agents_contrib.command import CommandAgent, CommandBackend, CommandSettings, register_agents
from orchestrator_core.errors import AgentError, BackendRejected
from orchestrator_core.models import AgentConfig, Proposal, Task, TaskConstraints

CLI = str(Path(__file__).with_name("llm_cli.py"))
TASK = Task(role="DEVOPS", description="Write a Deployment for nginx.",
            constraints=TaskConstraints(rubric="Least privilege.", requirements=("runAsNonRoot",)))


def agent_of(mode: str, *extra: str, index: int = 0, size: int = 1, **options: Any) -> CommandAgent:
    backend = CommandBackend(CommandSettings(program=[sys.executable, CLI, mode, *extra]), prompts_dir="")
    return backend.create(AgentConfig(f"devops-{index + 1}", "DEVOPS", index, size, options))


def _dead(pid: int) -> bool:
    """Gone, or a zombie waiting to be reaped: either way it runs no more."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


async def _until(predicate: Any, guard_seconds: float = 10.0) -> None:
    async with asyncio.timeout(guard_seconds):
        while not predicate():
            await asyncio.sleep(0.02)


async def test_prompt_goes_to_stdin_and_stdout_is_the_reply(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_OPENAI_API_KEY", "sk-must-not-leak")
    reply = await agent_of("reply", index=1, size=3, env={"EXTRA_FLAG": "1"}).generate(TASK)

    report = json.loads(reply.text)
    assert "council of DEVOPS engineers" in report["stdin"]  # the system prompt heads stdin
    assert "Task: Write a Deployment for nginx." in report["stdin"]
    assert "- runAsNonRoot" in report["stdin"]
    env = report["env"]
    assert env["ORCHESTRATOR_ROLE"] == "DEVOPS"
    assert env["ORCHESTRATOR_PHASE"] == "generate"
    assert env["ORCHESTRATOR_AGENT_ID"] == "devops-2"
    assert env["ORCHESTRATOR_AGENT_INDEX"] == "1"
    assert env["ORCHESTRATOR_COUNCIL_SIZE"] == "3"
    assert "council of DEVOPS engineers" in env["ORCHESTRATOR_SYSTEM_PROMPT"]
    assert env["EXTRA_FLAG"] == "1"
    assert not [name for name in env if name.startswith("ORCH_")]
    assert reply.usage.total_tokens == 0


async def test_separate_system_keeps_stdin_to_the_user_prompt(tmp_path: Path) -> None:
    agent = agent_of("reply", separate_system=True, cwd=str(tmp_path))
    proposal = Proposal("p", "devops-2", "DEVOPS", "kind: Deployment")
    report = json.loads((await agent.critique(TASK, proposal)).text)

    assert "council of DEVOPS" not in report["stdin"]
    assert "Review this code." in report["stdin"]
    assert "kind: Deployment" in report["stdin"]
    assert report["env"]["ORCHESTRATOR_PHASE"] == "critique"
    assert report["cwd"] == str(tmp_path)


async def test_a_failing_program_is_an_agent_error_with_its_stderr() -> None:
    with pytest.raises(AgentError) as raised:
        await agent_of("fail").generate(TASK)
    assert str(raised.value) == (
        f"the command {Path(sys.executable).name!r} exited with status 3: "
        "loading model... error: model file is corrupt"
    )


async def test_a_silent_program_is_a_malformed_reply() -> None:
    with pytest.raises(MalformedReply, match="printed nothing on standard output"):
        await agent_of("silent").generate(TASK)


async def test_output_past_the_limit_is_refused() -> None:
    with pytest.raises(MalformedReply, match="wrote more than 100000 bytes on standard output"):
        await agent_of("flood", max_output_bytes=100_000).generate(TASK)


async def test_a_program_that_ignores_stdin_still_answers() -> None:
    big = Task(role="DEVOPS", description="x" * 2_000_000)
    assert (await agent_of("noread").generate(big)).text == "answered without reading"


async def test_a_program_past_its_time_limit_is_killed_with_its_children(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    with pytest.raises(AgentError, match="did not finish within 1s and was killed"):
        await agent_of("hang", str(pidfile), timeout_seconds=1).generate(TASK)

    pids = [int(p) for p in pidfile.read_text().split()]
    await _until(lambda: all(_dead(pid) for pid in pids))


async def test_cancelling_a_call_kills_the_program(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    call = asyncio.create_task(agent_of("hang", str(pidfile)).generate(TASK))
    await _until(pidfile.exists)
    pids = [int(p) for p in pidfile.read_text().split()]

    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await _until(lambda: all(_dead(pid) for pid in pids))


def test_a_missing_program_is_reported_when_the_agent_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORCH_COMMAND_PROGRAM", raising=False)
    with pytest.raises(ValueError, match="needs a program: set the council's program option or ORCH_COMMAND_PROGRAM"):
        CommandBackend(CommandSettings(), prompts_dir="").create(AgentConfig("a", "DEV", 0, 1, {}))
    with pytest.raises(ValueError, match="'no-such-runner-xyz' is not an executable file or on PATH"):
        CommandBackend(CommandSettings(program="no-such-runner-xyz --fast"), prompts_dir="").create(
            AgentConfig("a", "DEV", 0, 1, {})
        )


def test_unknown_options_are_reported() -> None:
    with pytest.raises(ValueError, match="unknown option 'timeout'"):
        agent_of("reply", timeout=3)


async def test_a_program_that_vanished_after_startup_is_a_rejection(tmp_path: Path) -> None:
    script = tmp_path / "runner"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    backend = CommandBackend(CommandSettings(program=str(script)), prompts_dir="")
    agent = backend.create(AgentConfig("a", "DEV", 0, 1, {}))
    script.unlink()

    with pytest.raises(BackendRejected, match="cannot run 'runner'"):
        await agent.generate(TASK)


def test_settings_come_from_orch_command_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_COMMAND_PROGRAM", "llm -m mistral --no-stream")
    monkeypatch.setenv("ORCH_COMMAND_TIMEOUT_SECONDS", "90")
    registered: list[Any] = []
    register_agents(registered.append)

    [backend] = registered
    assert backend.name == "command"
    assert backend.settings.program == "llm -m mistral --no-stream"
    assert backend.settings.timeout_seconds == 90


async def test_the_backend_keeps_to_its_concurrency_limit(tmp_path: Path) -> None:
    backend = CommandBackend(CommandSettings(max_concurrency=1), prompts_dir="")
    first, second = tmp_path / "first", tmp_path / "second"
    agents = [
        backend.create(AgentConfig(f"a-{i}", "DEV", i, 2, {"program": [sys.executable, CLI, "hang", str(pidfile)]}))
        for i, pidfile in enumerate((first, second))
    ]
    calls = [asyncio.create_task(agent.generate(TASK)) for agent in agents]
    await _until(first.exists)
    for _ in range(25):  # the second call has every chance to start, and must not
        await asyncio.sleep(0.02)
    assert not second.exists()

    calls[0].cancel()  # the slot is freed when the first call ends
    await _until(second.exists)
    calls[1].cancel()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(result, asyncio.CancelledError) for result in results)
