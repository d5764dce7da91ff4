"""Submit, watch and cancel across processes: a watch on a second server process that shares
the first one's SQLite file follows a deliberation submitted to the first (by reading the
record: the in-process queue's notices do not cross processes), and the ``submit``,
``watch`` and ``cancel`` commands run as processes against a server.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_test_support import HANG_GUARD, Doubles, eventually, orchestrator_command
from queue_support import HeldProbe, queued_settings, watched, with_held_backend
from test_records_processes import Server

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_core.models import Phase
from orchestrator_core.plugins import PluginHost
from orchestrator_core.testing import PluginRegistrar
from orchestrator_grpc.server import running_server


@pytest.fixture
def held() -> HeldProbe:
    return HeldProbe()


@pytest.fixture
def queued_host(host: PluginHost, orchestrator_plugins: PluginRegistrar, held: HeldProbe) -> PluginHost:
    return with_held_backend(host, orchestrator_plugins, held)


def watcher_environment(database: Path) -> dict[str, str]:
    """A pure front on the same SQLite file: it runs nothing, it reads and streams."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("ORCH_")}
    env.update(
        ORCH_HOST="127.0.0.1",
        ORCH_PORT="0",
        ORCH_PLUGINS_ENABLED="sample",
        ORCH_COUNCILS__DEV__BACKEND="sample-template",
        ORCH_DATABASE_PATH=str(database),
        ORCH_QUEUE_WORKERS="0",
        ORCH_GRACE_PERIOD_SECONDS="1",
    )
    return env


async def test_a_watch_on_a_second_server_process_follows_a_deliberation_submitted_to_the_first(
    queued_host: PluginHost, held: HeldProbe, tmp_path: Path
) -> None:
    settings = queued_settings(tmp_path)
    # The watcher starts first: a server starting on a SQLite file interrupts what it finds
    # running there (its own earlier process's), and nothing runs yet.
    second = Server(watcher_environment(settings.database_path), tmp_path / "second.log")
    try:
        async with (
            running_server(settings, plugins=queued_host) as first,
            grpc.aio.insecure_channel(first.address) as to_first,
            grpc.aio.insecure_channel(second.address) as to_second,
        ):
            submit_stub = pb_grpc.OrchestratorServiceStub(to_first)
            watch_stub = pb_grpc.OrchestratorServiceStub(to_second)
            response = await submit_stub.SubmitDeliberation(
                pb.SubmitDeliberationRequest(deliberate=pb.DeliberateRequest(role="HELD", task="Add two numbers"))
            )
            seen: list[pb.DeliberationEvent] = []

            async def follow() -> None:
                request = pb.WatchDeliberationRequest(deliberation_id=response.deliberation_id)
                async for event in watch_stub.WatchDeliberation(request):
                    seen.append(event)

            watch = asyncio.create_task(follow())
            # The second process answers while the run has produced nothing yet...
            record = await watch_stub.GetDeliberation(
                pb.GetDeliberationRequest(deliberation_id=response.deliberation_id)
            )
            assert record.status in (pb.DELIBERATION_STATUS_QUEUED, pb.DELIBERATION_STATUS_RUNNING)
            assert seen == []
            held.release.set()  # ...and follows it as the first one runs it
            async with asyncio.timeout(HANG_GUARD):
                await watch
            on_first = await watched(submit_stub, response.deliberation_id)
        assert seen[-1].finished.status == pb.DELIBERATION_STATUS_SUCCEEDED
        assert seen == on_first  # the same numbered events, whichever replica is asked
        assert [e.sequence for e in seen[:-1]] == list(range(1, len(seen)))
    finally:
        second.stop()


# -- the commands -------------------------------------------------------------------------------


async def run_command(*argv: str) -> tuple[int, str, str]:
    """``orchestrator ARGV`` as a process; its exit status, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        orchestrator_command(), *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={name: value for name, value in os.environ.items() if not name.startswith("ORCH_")},
    )
    async with asyncio.timeout(HANG_GUARD * 2):
        stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


@pytest.fixture
async def address(queued_host: PluginHost, tmp_path: Path) -> Any:
    async with running_server(queued_settings(tmp_path), plugins=queued_host) as server:
        yield server.address


async def test_the_submit_watch_and_cancel_commands(address: str, doubles: Doubles) -> None:
    code, stdout, stderr = await run_command("--address", address, "submit", "--role", "DEV", "--task", "Add 2 numbers")
    assert code == 0, stderr
    deliberation_id = stdout.strip()
    assert deliberation_id
    assert "\n" not in deliberation_id

    code, stdout, stderr = await run_command("--address", address, "watch", deliberation_id)
    assert code == 0, stderr
    assert f"deliberation {deliberation_id}:" in stdout  # the ranking's summary line
    assert "viable" in stdout

    code, stdout, stderr = await run_command("--address", address, "watch", deliberation_id, "--after", "3", "--json")
    assert code == 0, stderr
    events = [json.loads(line) for line in stdout.splitlines()]
    assert [int(e["sequence"]) for e in events[:-1]] == list(range(4, len(events) + 3))
    assert "ranking" in events[-2]
    assert events[-1]["finished"]["status"] == "DELIBERATION_STATUS_SUCCEEDED"

    code, stdout, stderr = await run_command("--address", address, "cancel", deliberation_id)
    assert code == 1
    assert "FAILED_PRECONDITION" in stderr

    code, stdout, stderr = await run_command(
        "--address", address, "submit", "--role", "DEV", "--task", "Add 2 numbers", "--orchestrate",
        "--top-k", "2", "--request-id", "cli-1", "--json",
    )
    assert code == 0, stderr
    submitted = json.loads(stdout)
    assert submitted["status"] in ("DELIBERATION_STATUS_QUEUED", "DELIBERATION_STATUS_RUNNING")
    code, again, stderr = await run_command(
        "--address", address, "submit", "--role", "DEV", "--task", "Add 2 numbers", "--orchestrate",
        "--top-k", "2", "--request-id", "cli-1",
    )
    assert (code, again.strip()) == (0, submitted["deliberation_id"])
    code, stdout, stderr = await run_command("--address", address, "watch", again.strip())
    assert code == 0, stderr
    assert "winner" in stdout

    # A running deliberation (its agents hang), cancelled: its watch exits 1.
    code, stdout, stderr = await run_command("--address", address, "submit", "--role", "QA", "--task", "Test it")
    hanging = stdout.strip()
    await eventually(lambda: doubles.hanging.in_flight[Phase.GENERATE] == 2, "the QA agents to be called")
    code, stdout, stderr = await run_command("--address", address, "cancel", hanging)
    assert code == 0, stderr
    assert stdout.startswith(f"deliberation {hanging}: ")
    code, stdout, stderr = await run_command("--address", address, "watch", hanging)
    assert code == 1
    assert f"deliberation {hanging} cancelled" in stderr


async def test_the_commands_refuse_what_they_cannot_do(address: str) -> None:
    code, _, stderr = await run_command("--address", address, "watch", "no-such-deliberation")
    assert (code, "NOT_FOUND" in stderr) == (1, True)
    code, _, stderr = await run_command("--address", address, "submit", "--role", "DEV", "--task", " ")
    assert (code, "INVALID_ARGUMENT" in stderr) == (1, True)
    code, _, stderr = await run_command("--address", address, "submit", "--role", "DEV", "--task", "x", "--top-k", "2")
    assert code == 2
    assert "--orchestrate" in stderr
    code, _, stderr = await run_command("--address", address, "watch", "some-id", "--after", "-1")
    assert code == 2


async def test_a_queued_deliberation_is_listed_as_queued_and_cancelled_at_once(
    queued_host: PluginHost, tmp_path: Path
) -> None:
    async with running_server(queued_settings(tmp_path, queue_workers=0), plugins=queued_host) as server:
        address = server.address
        code, stdout, stderr = await run_command("--address", address, "submit", "--role", "DEV", "--task", "Add")
        assert code == 0, stderr
        deliberation_id = stdout.strip()
        code, stdout, stderr = await run_command("--address", address, "deliberations", "list", "--status", "queued",
                                                 "--json")
        assert code == 0, stderr
        assert [r["deliberation_id"] for r in json.loads(stdout)["deliberations"]] == [deliberation_id]
        code, stdout, stderr = await run_command("--address", address, "cancel", deliberation_id)
        assert code == 0, stderr
        assert stdout.strip() == f"deliberation {deliberation_id}: cancelled"
        code, stdout, stderr = await run_command("--address", address, "deliberations", "list", "--status", "queued",
                                                 "--json")
        assert json.loads(stdout)["deliberations"] == []
