"""The decode guard on a real server: an undecodable request is INVALID_ARGUMENT, a valid one
reaches its method, and the guarded handler of a method is built once, not per call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator_grpc.interceptors import DecodeGuard

METHOD = "/bench.Guarded/Echo"
NOT_UTF8 = b"\x12\x02\xff\xfe"  # field 2 (task, a string) holding bytes that are not UTF-8


async def _echo(request: pb.DeliberateRequest, context: grpc.aio.ServicerContext[Any, Any]) -> pb.DeliberateRequest:
    return request


_HANDLER = grpc.unary_unary_rpc_method_handler(
    _echo, pb.DeliberateRequest.FromString, pb.DeliberateRequest.SerializeToString
)


class _Details(grpc.HandlerCallDetails):
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


@pytest.fixture
async def address() -> AsyncIterator[str]:
    server = grpc.aio.server(interceptors=[DecodeGuard()])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Guarded", {"Echo": _HANDLER}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


async def test_valid_and_undecodable_requests_alternate_on_one_method(address: str) -> None:
    valid = pb.DeliberateRequest(role="DEV", task="Add two numbers").SerializeToString()
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.unary_unary(METHOD)
        for _ in range(2):
            assert pb.DeliberateRequest.FromString(await call(valid)).task == "Add two numbers"
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await call(NOT_UTF8)
            assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            assert raised.value.details().startswith(f"the request to {METHOD} is not a valid message: ")


async def test_a_methods_guarded_handler_is_built_once_and_rebuilt_for_a_new_handler() -> None:
    guard = DecodeGuard()
    handlers = [_HANDLER]

    async def lookup(details: grpc.HandlerCallDetails) -> Any:
        return handlers[-1]

    first = await guard.intercept_service(lookup, _Details(METHOD))
    assert await guard.intercept_service(lookup, _Details(METHOD)) is first
    assert first is not _HANDLER
    handlers.append(grpc.unary_unary_rpc_method_handler(_echo, pb.DeliberateRequest.FromString))
    replaced = await guard.intercept_service(lookup, _Details(METHOD))
    assert replaced is not first
    assert await guard.intercept_service(lookup, _Details(METHOD)) is replaced
    assert await guard.intercept_service(lookup, _Details("/bench.Guarded/Other")) is not replaced
