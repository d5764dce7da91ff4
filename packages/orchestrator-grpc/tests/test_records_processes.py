"""Records across real server processes: a server killed with SIGKILL mid-deliberation and
restarted, and two replicas sharing one PostgreSQL database.

The servers are ``orchestrator serve`` processes with the third-party sample plugin
(installed in the test environment) as the DEV council's backend; its ``delay_seconds``
option makes each agent call slow enough to catch a deliberation while it runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import selectors
import signal
import subprocess
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from grpc_test_support import HANG_GUARD, orchestrator_command

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator_core.models import Task
from orchestrator_grpc.client import OrchestratorClient

READY_LINE = "orchestrator serving on "
POSTGRES_URL = os.environ.get("ORCH_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
SLOW_AGENT_SECONDS = 0.3
TASK = Task(role="DEV", description="Write a function that adds two numbers")


class Server:
    """One ``orchestrator serve`` process."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("a") as stderr:
            self.process = subprocess.Popen(
                [orchestrator_command(), "serve"], env=env, stdout=subprocess.PIPE, stderr=stderr, text=True
            )
        assert self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            ready = selector.select(timeout=HANG_GUARD)
        line = self.process.stdout.readline() if ready else ""
        if not line.startswith(READY_LINE):
            self.process.kill()
            pytest.fail(f"orchestrator serve did not start ({line!r}); its log:\n{log.read_text()}")
        self.address = line.removeprefix(READY_LINE).strip()

    def client(self) -> OrchestratorClient:
        return OrchestratorClient(self.address)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=HANG_GUARD)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Starts servers with the given extra ORCH_* settings; stops every one after the test."""
    started: list[Server] = []
    base = {name: value for name, value in os.environ.items() if not name.startswith("ORCH_")}
    base.update(
        ORCH_HOST="127.0.0.1",
        ORCH_PORT="0",
        ORCH_PLUGINS_ENABLED="sample",
        ORCH_COUNCILS__DEV__BACKEND="sample-template",
        ORCH_COUNCILS__DEV__AGENTS="3",
        ORCH_COUNCILS__DEV__OPTIONS=json.dumps({"delay_seconds": SLOW_AGENT_SECONDS}),
        ORCH_GRACE_PERIOD_SECONDS="1",
    )

    def start(**settings: str) -> Server:
        server = Server({**base, **settings}, tmp_path / f"serve-{len(started)}.log")
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The test PostgreSQL database, its tables in a schema of this test's own."""
    schema = f"orch_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')  # type: ignore[arg-type]
    separator = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')  # type: ignore[arg-type]


async def until(probe: Callable[[], Awaitable[Any]], what: str) -> Any:
    """Polls ``probe`` until it returns something truthy; fails after HANG_GUARD seconds."""
    try:
        async with asyncio.timeout(HANG_GUARD):
            while not (result := await probe()):
                await asyncio.sleep(0.05)
            return result
    except TimeoutError:
        pytest.fail(f"timed out waiting until {what}")


async def running_record(client: OrchestratorClient, request_id: str, proposals: int = 3) -> pb.DeliberationRecord:
    """Waits until the record of ``request_id`` is stored RUNNING with ``proposals`` proposals."""

    async def probe() -> pb.DeliberationRecord | None:
        page = await client.list_deliberations(status=pb.DELIBERATION_STATUS_RUNNING)
        return next(
            (r for r in page.deliberations if r.request_id == request_id and len(r.proposals) >= proposals), None
        )

    record: pb.DeliberationRecord = await until(probe, f"{request_id} was running with its proposals stored")
    return record


async def test_a_killed_server_loses_no_finished_record_and_marks_the_cut_one_interrupted(
    servers: Callable[..., Server], tmp_path: Path
) -> None:
    database = {"ORCH_DATABASE_PATH": str(tmp_path / "records.sqlite3")}
    first = servers(**database)
    async with first.client() as client:
        done = await client.deliberate(TASK, rounds=1, request_id="finished-1")
        cut = asyncio.create_task(client.deliberate(TASK, rounds=4, request_id="cut-1"))
        cut_record = await running_record(client, "cut-1")
        first.kill()
        with pytest.raises(grpc.aio.AioRpcError) as lost:
            await cut
        assert lost.value.code() is grpc.StatusCode.UNAVAILABLE

    second = servers(**database)
    async with second.client() as client:
        finished = await client.get_deliberation(done.deliberation_id)
        assert finished.status == pb.DELIBERATION_STATUS_SUCCEEDED
        assert [p.proposal_id for p in finished.proposals] == [
            "dev-1-v0", "dev-2-v0", "dev-3-v0", "dev-1-v1", "dev-2-v1", "dev-3-v1"]
        assert len(finished.critiques) == 3
        assert [r.proposal.proposal_id for r in finished.response.results] == [
            r.proposal.proposal_id for r in done.results]

        interrupted = await client.get_deliberation(cut_record.deliberation_id)
        assert (interrupted.status, interrupted.error_kind) == (pb.DELIBERATION_STATUS_INTERRUPTED, "Interrupted")
        assert len(interrupted.proposals) >= 3  # the progress written before the kill is kept
        assert interrupted.finished_at >= interrupted.created_at

        again = await client.deliberate(TASK, rounds=1, request_id="finished-1")
        assert again.deliberation_id == done.deliberation_id
        rerun = await client.deliberate(TASK, rounds=4, request_id="cut-1")
        assert rerun.deliberation_id != cut_record.deliberation_id
        statistics = (await client.status()).statistics
        assert statistics.deliberations == 1  # only the interrupted one ran again


async def test_two_replicas_share_records_and_never_run_a_request_twice(
    servers: Callable[..., Server], postgres_url: str
) -> None:
    database = {
        "ORCH_DATABASE_URL": postgres_url,
        "ORCH_RECORD_HEARTBEAT_SECONDS": "0.5",
        "ORCH_RECORD_LEASE_SECONDS": "2",
    }
    one, two = servers(**database), servers(**database)
    async with one.client() as first, two.client() as second:
        outcome = await first.deliberate(TASK, rounds=0, request_id="shared-1")
        record = await second.get_deliberation(outcome.deliberation_id)
        assert (record.status, record.request_id) == (pb.DELIBERATION_STATUS_SUCCEEDED, "shared-1")
        assert record.response.deliberation_id == outcome.deliberation_id
        retried = await second.deliberate(TASK, rounds=0, request_id="shared-1")
        assert retried.deliberation_id == outcome.deliberation_id

        # A retry sent to the other replica while the first call runs waits for it.
        running = asyncio.create_task(first.deliberate(TASK, rounds=2, request_id="shared-2"))
        await running_record(second, "shared-2")
        waited = await second.deliberate(TASK, rounds=2, request_id="shared-2")
        assert waited.deliberation_id == (await running).deliberation_id
        assert (await second.status()).statistics.deliberations == 0  # replica two ran nothing

        # Replica one dies mid-deliberation: its record is interrupted, replica two's is not.
        doomed = asyncio.create_task(first.deliberate(TASK, rounds=4, request_id="doomed"))
        alive = asyncio.create_task(second.deliberate(TASK, rounds=3, request_id="alive"))
        doomed_record = await running_record(second, "doomed")
        one.kill()
        with pytest.raises(grpc.aio.AioRpcError):
            await doomed

        async def interrupted() -> bool:
            got = await second.get_deliberation(doomed_record.deliberation_id)
            return got.status == pb.DELIBERATION_STATUS_INTERRUPTED

        await until(interrupted, "replica two marked the dead replica's record interrupted")
        survivor = await second.get_deliberation((await alive).deliberation_id)
        assert survivor.status == pb.DELIBERATION_STATUS_SUCCEEDED
        assert survivor.owner != doomed_record.owner
