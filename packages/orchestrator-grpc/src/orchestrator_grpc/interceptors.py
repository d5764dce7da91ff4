"""Server interceptors that act before a call reaches its servicer.

- :class:`DrainGate`: once shutdown begins, new calls get UNAVAILABLE at once (health
  checks still answer, with NOT_SERVING), while the calls in flight finish.
- :class:`DecodeGuard`: a request that is not a valid message of its type (corrupt wire
  format, a string field that is not UTF-8) is INVALID_ARGUMENT with the parser's reason,
  where gRPC alone would answer UNKNOWN.

Authentication (:mod:`orchestrator_grpc.auth`) uses :func:`rejecting` too: a handler of the
same shape as the method's (unary or streaming) that ends the call with a status.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.message import DecodeError

from orchestrator_grpc.handlers import shaped_like

if TYPE_CHECKING:  # the stubs' classes are generic; grpc's own are not subscriptable
    Handler = grpc.RpcMethodHandler[Any, Any]
    ServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    Handler = grpc.RpcMethodHandler
    ServerInterceptor = grpc.aio.ServerInterceptor
Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[Handler]]
"""What an interceptor calls for the method's own handler (None, at run time, for an
unknown method: gRPC then answers UNIMPLEMENTED)."""

HEALTH_METHODS = "/grpc.health.v1.Health/"
REFLECTION_METHODS = ("/grpc.reflection.v1alpha.ServerReflection/", "/grpc.reflection.v1.ServerReflection/")
SHUTTING_DOWN = "the server is shutting down; retry on another replica"


def method_of(details: grpc.HandlerCallDetails) -> str:
    return details.method


def rejecting(handler: Handler, code: grpc.StatusCode, message: str) -> Handler:
    """A handler shaped like ``handler`` that ends every call with ``code`` and ``message``."""

    async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(code, message)

    async def streaming(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        await context.abort(code, message)
        yield  # pragma: no cover - abort raises; this makes the function a generator

    return shaped_like(handler, streaming if handler.response_streaming else unary)


class _Undecodable:
    """Stands for a request that failed to parse; the guard answers it with INVALID_ARGUMENT."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _tolerant(deserialize: Callable[[bytes], Any] | None, method: str) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        if deserialize is None:
            return data
        try:
            return deserialize(data)
        except DecodeError as error:
            return _Undecodable(f"the request to {method} is not a valid message: {error}")

    return parse


class DecodeGuard(ServerInterceptor):
    """Undecodable requests of unary-request methods become INVALID_ARGUMENT.

    The guarded handler of a method is built once and kept: gRPC hands this interceptor the
    same handler for every call of a method, and the guard runs before every call."""

    def __init__(self) -> None:
        self._guarded: dict[str, tuple[Handler, Handler]] = {}
        """method -> (its handler, the guarded handler)."""

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_streaming:
            return handler
        method = method_of(handler_call_details)
        kept = self._guarded.get(method)
        if kept is not None and kept[0] is handler:
            return kept[1]
        guarded = _guarded(handler, method)
        self._guarded[method] = (handler, guarded)
        return guarded


def _guarded(handler: Handler, method: str) -> Handler:
    """``handler`` (a unary-request method's) with an undecodable request answered INVALID_ARGUMENT."""
    inner_unary: Any = handler.unary_unary  # async in grpc.aio, whatever the stubs say
    inner_stream: Any = handler.unary_stream

    async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if isinstance(request, _Undecodable):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.reason)
        assert inner_unary is not None
        return await inner_unary(request, context)

    async def streaming(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        if isinstance(request, _Undecodable):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.reason)
        assert inner_stream is not None
        async for item in inner_stream(request, context):
            yield item

    async def writing(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        """For a streaming method that writes with ``context.write`` (e.g. health's Watch)."""
        if isinstance(request, _Undecodable):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.reason)
        assert inner_stream is not None
        await inner_stream(request, context)

    respond = streaming if inspect.isasyncgenfunction(inner_stream) else writing
    behaviour = respond if handler.response_streaming else unary
    return shaped_like(handler, behaviour, _tolerant(handler.request_deserializer, method))


class DrainGate(ServerInterceptor):
    """Refuses new calls (UNAVAILABLE) once :attr:`closed`; health checks always pass."""

    def __init__(self) -> None:
        self.closed = False

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler:
        handler = await continuation(handler_call_details)
        if handler is None or not self.closed or method_of(handler_call_details).startswith(HEALTH_METHODS):
            return handler
        return rejecting(handler, grpc.StatusCode.UNAVAILABLE, SHUTTING_DOWN)
