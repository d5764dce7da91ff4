"""The ``command`` backend running a real program: prompt on stdin, reply on stdout, killed on timeout or cancel."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest

from agents_contrib.backend_base import LimitedBackend
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


@dataclass(frozen=True)
class Start:
    """A ``hang`` runner that started: the agent whose call ran it, its pid and its child's."""

    agent_id: str
    pids: tuple[int, int]


@pytest.fixture
async def starts() -> AsyncIterator[tuple[int, asyncio.Queue[Start]]]:
    """A port the ``hang`` runners report their start to, and the starts as they come."""
    reported: asyncio.Queue[Start] = asyncio.Queue()

    async def report(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        agent_id, pid, child = (await reader.read()).decode().split()
        writer.close()
        await reported.put(Start(agent_id, (int(pid), int(child))))

    server = await asyncio.start_server(report, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1], reported


async def exited(pid: int) -> None:
    """Returns once process ``pid`` has ended (a zombie not yet reaped has ended)."""
    try:
        descriptor = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    ended = loop.create_future()
    loop.add_reader(descriptor, lambda: ended.done() or ended.set_result(None))
    try:
        async with asyncio.timeout(60):  # guards a hang only
            await ended
    finally:
        loop.remove_reader(descriptor)
        os.close(descriptor)


class WatchedLimit(asyncio.Semaphore):
    """A concurrency limit that says when a caller has had to wait for it."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.queued = asyncio.Event()

    async def acquire(self) -> Literal[True]:
        if self.locked():
            self.queued.set()
        return await super().acquire()


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


async def test_a_program_past_its_time_limit_is_killed_with_its_children(
    starts: tuple[int, asyncio.Queue[Start]],
) -> None:
    port, started = starts
    call = asyncio.create_task(agent_of("hang", str(port), timeout_seconds=1).generate(TASK))
    start = await started.get()

    with pytest.raises(AgentError, match="did not finish within 1s and was killed"):
        await call
    for pid in start.pids:
        await exited(pid)


async def test_cancelling_a_call_kills_the_program(starts: tuple[int, asyncio.Queue[Start]]) -> None:
    port, started = starts
    call = asyncio.create_task(agent_of("hang", str(port)).generate(TASK))
    start = await started.get()

    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    for pid in start.pids:
        await exited(pid)


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


async def test_the_backend_keeps_to_its_concurrency_limit(
    starts: tuple[int, asyncio.Queue[Start]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, started = starts
    backend = CommandBackend(CommandSettings(max_concurrency=1), prompts_dir="")
    limit = WatchedLimit(backend.settings.max_concurrency)
    monkeypatch.setattr(backend, "limit", lambda: limit)
    program = [sys.executable, CLI, "hang", str(port)]
    calls = {
        f"a-{i}": asyncio.create_task(backend.create(AgentConfig(f"a-{i}", "DEV", i, 2, {"program": program}))
                                      .generate(TASK))
        for i in range(2)
    }
    first = await started.get()
    await limit.queued.wait()
    assert started.empty()  # the other call waits for the limit, its program not started

    calls[first.agent_id].cancel()  # the limit is free once the first call has ended
    second = await started.get()
    assert second.agent_id != first.agent_id
    calls[second.agent_id].cancel()
    results = await asyncio.gather(*calls.values(), return_exceptions=True)
    assert all(isinstance(result, asyncio.CancelledError) for result in results)
    for pid in (*first.pids, *second.pids):
        await exited(pid)


async def test_the_limit_is_the_backends_own_one_per_event_loop() -> None:
    backend = CommandBackend(CommandSettings(max_concurrency=3), prompts_dir="")
    assert isinstance(backend, LimitedBackend)
    limit = backend.limit()
    assert backend.limit() is limit
    for _ in range(3):
        await limit.acquire()
    assert limit.locked()  # a fourth call would wait
    assert await asyncio.to_thread(asyncio.run, _limit_of(backend)) is not limit


async def _limit_of(backend: CommandBackend) -> asyncio.Semaphore:
    return backend.limit()
