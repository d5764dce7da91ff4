"""No agent program of the ``command`` backend outlives what started it: it leads its own
process group, which a cancelled call kills whole, and the kernel kills it when the service
that started it dies, even by SIGKILL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from agents_contrib.command import CommandBackend, CommandSettings
from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_core.models import AgentConfig, Task

CLI = str(Path(__file__).with_name("llm_cli.py"))
HANG_GUARD = 60.0  # seconds before a wait that would hang fails instead
READY_LINE = "orchestrator serving on "
TASK = Task(role="DEV", description="Write add(a, b).")


async def started_programs(directory: Path, count: int) -> list[tuple[int, int]]:
    """``(program, its child)`` pids of the first ``count`` ``pidfile`` programs to start."""
    async with asyncio.timeout(HANG_GUARD):  # guards a hang only
        while len(written := sorted(directory.iterdir())) < count:
            await asyncio.sleep(0.05)
    return [(int(a), int(b)) for a, b in (path.read_text().split() for path in written[:count])]


async def exited(descriptor: int) -> None:
    """Returns once the process of pidfd ``descriptor`` has ended (a zombie has ended), and
    closes it. A pidfd names one process: a pid reused since cannot be mistaken for it."""
    loop = asyncio.get_running_loop()
    ended = loop.create_future()
    loop.add_reader(descriptor, lambda: ended.done() or ended.set_result(None))
    try:
        async with asyncio.timeout(HANG_GUARD):  # guards a hang only
            await ended
    finally:
        loop.remove_reader(descriptor)
        os.close(descriptor)


async def test_a_cancelled_call_kills_the_program_and_the_process_it_started(tmp_path: Path) -> None:
    backend = CommandBackend(CommandSettings(program=[sys.executable, CLI, "pidfile", str(tmp_path)]), prompts_dir="")
    call = asyncio.create_task(backend.create(AgentConfig("dev-1", "DEV", 0, 1, {})).generate(TASK))
    ((program, child),) = await started_programs(tmp_path, 1)
    handles = [os.pidfd_open(program), os.pidfd_open(child)]
    # The program leads a process group of its own, which its child is in.
    assert os.getpgid(program) == program
    assert os.getpgid(child) == program
    assert os.getpgid(program) != os.getpgid(0)

    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    for handle in handles:
        await exited(handle)


@pytest.fixture
def serve_environment(tmp_path: Path) -> dict[str, str]:
    """``orchestrator serve`` with one council of two ``command`` agents whose programs write
    their pids into ``tmp_path / "pids"`` and never answer."""
    pids = tmp_path / "pids"
    pids.mkdir()
    env = {name: value for name, value in os.environ.items() if not name.startswith("ORCH_")}
    env.update(
        ORCH_HOST="127.0.0.1",
        ORCH_PORT="0",
        ORCH_DATABASE_PATH=str(tmp_path / "records.sqlite3"),
        ORCH_PLUGINS_ENABLED="command",
        ORCH_COUNCILS__DEV__BACKEND="command",
        ORCH_COUNCILS__DEV__AGENTS="2",
        ORCH_COMMAND_PROGRAM=shlex.join([sys.executable, CLI, "pidfile", str(pids)]),
    )
    return env


@pytest.fixture
async def served(serve_environment: dict[str, str], tmp_path: Path) -> AsyncIterator[tuple[subprocess.Popen[str], str]]:
    command = shutil.which("orchestrator", path=str(Path(sys.executable).parent)) or shutil.which("orchestrator")
    assert command is not None, "the orchestrator command is not installed"
    with (tmp_path / "serve.log").open("w") as log:
        process = subprocess.Popen(
            [command, "serve"], env=serve_environment, stdout=subprocess.PIPE, stderr=log, text=True
        )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(HANG_GUARD):  # guards a hang only
            line = await asyncio.to_thread(process.stdout.readline)
        assert line.startswith(READY_LINE), (tmp_path / "serve.log").read_text()
        yield process, line.removeprefix(READY_LINE).strip()
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


async def test_agent_programs_die_with_a_server_killed_mid_call(
    served: tuple[subprocess.Popen[str], str], tmp_path: Path
) -> None:
    process, address = served
    async with grpc.aio.insecure_channel(address) as channel:
        call = asyncio.ensure_future(
            pb_grpc.OrchestratorServiceStub(channel).Deliberate(pb.DeliberateRequest(role="DEV", task="Add"))
        )
        programs = await started_programs(tmp_path / "pids", 2)
        handles = [os.pidfd_open(program) for program, _ in programs]
        # What the programs started themselves is theirs to end (see the module's
        # docstring): this test ends it after.
        children = [os.pidfd_open(child) for _, child in programs]
        try:
            assert not call.done()

            process.send_signal(signal.SIGKILL)  # nothing of the server runs after this
            process.wait()

            for handle in handles:
                await exited(handle)
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await call
        finally:
            for child in children:
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(child, signal.SIGKILL)
                os.close(child)
    assert error.value.code() is grpc.StatusCode.UNAVAILABLE
