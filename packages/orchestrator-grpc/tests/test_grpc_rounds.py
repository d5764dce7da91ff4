"""``rounds``: unset means the server's default, 0 means no critique round at all."""

from __future__ import annotations

import grpc
import pytest
from grpc_test_support import ServerFactory, request

from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_core.models import Task
from orchestrator_grpc import convert
from orchestrator_grpc.client import OrchestratorClient

TASK = Task(role="DEV", description="Write a function that adds two numbers")


def test_an_unset_rounds_field_is_the_default_and_0_is_kept() -> None:
    assert convert.deliberation_request_from_proto(request()).rounds is None
    assert convert.deliberation_request_from_proto(request(rounds=0)).rounds == 0
    assert convert.deliberation_request_from_proto(request(rounds=2)).rounds == 2
    assert not convert.deliberate_request_to_proto(TASK).HasField("rounds")
    zero = convert.deliberate_request_to_proto(TASK, rounds=0)
    assert zero.HasField("rounds")
    assert zero.rounds == 0


async def test_rounds_0_runs_none_and_unset_runs_the_servers_default(serve_with: ServerFactory) -> None:
    async with serve_with(default_rounds=2) as server:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = pb_grpc.OrchestratorServiceStub(channel)
            assert (await stub.Deliberate(request(num_agents=3))).rounds == 2
            none = await stub.Deliberate(request(num_agents=3, rounds=0))
            assert none.rounds == 0
            # 3 proposals only, 10 + 5 tokens each
            assert (none.usage.prompt_tokens, none.usage.completion_tokens) == (30, 15)
        async with OrchestratorClient(server.address) as client:
            assert (await client.deliberate(TASK, num_agents=3, rounds=0)).rounds == 0
            assert (await client.deliberate(TASK, num_agents=3)).rounds == 2


async def test_too_many_rounds_is_invalid_and_says_how_to_get_the_default(serve_with: ServerFactory) -> None:
    async with serve_with(default_rounds=2) as server, grpc.aio.insecure_channel(server.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await pb_grpc.OrchestratorServiceStub(channel).Deliberate(request(rounds=6))
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details() == (
        "rounds must be between 0 and 5 (ORCH_MAX_ROUNDS), or unset for the server default (2); got 6"
    )
