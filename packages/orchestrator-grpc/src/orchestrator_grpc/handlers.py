"""What the server interceptors share about a method's handler: the behaviour inside it, a new
handler of the same shape around another behaviour, and the status a call ended with."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc

if TYPE_CHECKING:  # the stubs' classes are generic; grpc's own are not subscriptable
    Handler = grpc.RpcMethodHandler[Any, Any]
    Context = grpc.aio.ServicerContext[Any, Any]
else:
    Handler = grpc.RpcMethodHandler
    Context = grpc.aio.ServicerContext


def behaviour_of(handler: Handler) -> Any:
    """The function that answers ``handler``'s calls (async in grpc.aio, whatever the stubs say)."""
    if handler.request_streaming:
        return handler.stream_stream if handler.response_streaming else handler.stream_unary
    return handler.unary_stream if handler.response_streaming else handler.unary_unary


def shaped_like(
    handler: Handler, behaviour: Callable[..., Any], deserializer: Callable[[bytes], Any] | None = None
) -> Handler:
    """A handler of ``handler``'s shape and response serializer, answered by ``behaviour``;
    its request deserializer unless ``deserializer`` is given. Request-streaming methods get
    the behaviour with the request iterator as ``request``."""
    if deserializer is None:
        deserializer = handler.request_deserializer
    serializer = handler.response_serializer
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(behaviour, deserializer, serializer)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(behaviour, deserializer, serializer)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(behaviour, deserializer, serializer)
    return grpc.unary_unary_rpc_method_handler(behaviour, deserializer, serializer)


def code_set(context: Context) -> grpc.StatusCode | None:
    """The code the handler set or aborted with, if any."""
    code: Any = context.code()
    if code is None or isinstance(code, grpc.StatusCode):
        return code
    return next((known for known in grpc.StatusCode if known.value[0] == code), grpc.StatusCode.UNKNOWN)


def call_status(context: Context, error: BaseException | None = None) -> grpc.StatusCode:
    """The status a call ended with, its handler having raised ``error`` (None: returned).

    Cut short (cancelled), it is CANCELLED, or DEADLINE_EXCEEDED once its deadline has
    passed; an abort's exception carries the code the abort set; any other exception is
    UNKNOWN, gRPC's answer to it; a handler that returned ends with the code it set, or OK.
    """
    code = code_set(context)
    if error is None:
        return code or grpc.StatusCode.OK
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            return grpc.StatusCode.DEADLINE_EXCEEDED
        return grpc.StatusCode.CANCELLED
    return code if code is not None and code is not grpc.StatusCode.OK else grpc.StatusCode.UNKNOWN
