"""A span per RPC (kind SERVER), continuing the caller's W3C trace context.

The span is named ``{service}/{method}`` (e.g. ``orchestrator.v1.OrchestratorService/Deliberate``)
with the RPC semantic conventions' attributes: ``rpc.system`` "grpc", ``rpc.service``,
``rpc.method`` and ``rpc.grpc.status_code``; any code but OK sets the span's status to ERROR.
Its parent is the ``traceparent`` (and ``tracestate``) of the call's metadata, read with the
W3C TraceContext propagator; a call without one starts a trace.

grpc.aio runs each handler in a task of its own, so the span is made current inside the
wrapped handler: everything the servicer does, the deliberation's spans included, is its
child. Health checks and reflection are not traced: probes every few seconds would bury the
deliberations' traces. A method the server does not have (UNIMPLEMENTED) has no handler to
wrap and no span.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from orchestrator_grpc.interceptors import (
    HEALTH_METHODS,
    REFLECTION_METHODS,
    Continuation,
    Handler,
    ServerInterceptor,
    method_of,
)

UNTRACED = (HEALTH_METHODS, *REFLECTION_METHODS)
_PROPAGATOR = TraceContextTextMapPropagator()


class TracingInterceptor(ServerInterceptor):
    """Wraps each traced method's handler in a SERVER span made current while it runs."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler:
        handler = await continuation(handler_call_details)
        method = method_of(handler_call_details)
        if handler is None or method.startswith(UNTRACED):
            return handler
        service, _, name = method.lstrip("/").rpartition("/")
        carrier = _carrier(handler_call_details.invocation_metadata)
        tracer = self.tracer

        def start() -> trace.Span:
            return tracer.start_span(
                f"{service}/{name}",
                context=_PROPAGATOR.extract(carrier),
                kind=SpanKind.SERVER,
                attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name},
            )

        if handler.response_streaming:
            inner_stream: Any = handler.unary_stream or handler.stream_stream
            if inspect.isasyncgenfunction(inner_stream):
                return _with_behaviour(handler, _streaming(start, inner_stream))
            return _with_behaviour(handler, _unary(start, inner_stream))  # writes with context.write
        inner_unary: Any = handler.unary_unary or handler.stream_unary  # async in grpc.aio
        return _with_behaviour(handler, _unary(start, inner_unary))


def _unary(start: Callable[[], trace.Span], inner: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def behaviour(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        span = start()
        token = otel_context.attach(trace.set_span_in_context(span))
        error: BaseException | None = None
        try:
            return await inner(request, context)
        except BaseException as exc:
            error = exc
            raise
        finally:
            otel_context.detach(token)
            _end(span, context, error)

    return behaviour


def _streaming(
    start: Callable[[], trace.Span], inner: Callable[..., AsyncIterator[Any]]
) -> Callable[..., AsyncIterator[Any]]:
    async def behaviour(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        span = start()
        token = otel_context.attach(trace.set_span_in_context(span))
        error: BaseException | None = None
        try:
            async for item in inner(request, context):
                yield item
        except BaseException as exc:
            error = exc
            raise
        finally:
            otel_context.detach(token)
            _end(span, context, error)

    return behaviour


def _end(span: trace.Span, context: grpc.aio.ServicerContext[Any, Any], error: BaseException | None) -> None:
    code = _status_code(context, error)
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code is not grpc.StatusCode.OK:
        span.set_status(Status(StatusCode.ERROR, f"{code.name}: {context.details() or ''}".rstrip(": ")))
    span.end()


def _status_code(context: grpc.aio.ServicerContext[Any, Any], error: BaseException | None) -> grpc.StatusCode:
    """The code the call ends with: the one the handler set or aborted with; else CANCELLED
    for a cancelled handler, UNKNOWN for any other exception (as gRPC answers), OK."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(code, int):
        return next((known for known in grpc.StatusCode if known.value[0] == code), grpc.StatusCode.UNKNOWN)
    if isinstance(error, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    if error is not None:
        return grpc.StatusCode.UNKNOWN
    return grpc.StatusCode.OK


def _carrier(metadata: Any) -> dict[str, str]:
    """The call's text metadata as a mapping the propagator reads (keys are lower case)."""
    return {str(key).lower(): value for key, value in metadata or () if isinstance(value, str)}


def _with_behaviour(handler: Handler, behaviour: Callable[..., Any]) -> Handler:
    """A handler of ``handler``'s shape, serializers and deserializer, answered by ``behaviour``."""
    deserializer, serializer = handler.request_deserializer, handler.response_serializer
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(behaviour, deserializer, serializer)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(behaviour, deserializer, serializer)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(behaviour, deserializer, serializer)
    return grpc.unary_unary_rpc_method_handler(behaviour, deserializer, serializer)
