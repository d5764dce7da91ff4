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

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from orchestrator_grpc.handlers import behaviour_of, call_status, shaped_like
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

        inner = behaviour_of(handler)
        if handler.response_streaming and inspect.isasyncgenfunction(inner):
            return shaped_like(handler, _streaming(start, inner))
        return shaped_like(handler, _unary(start, inner))  # a unary call, or a stream written with context.write


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
    code = call_status(context, error)
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code is not grpc.StatusCode.OK:
        span.set_status(Status(StatusCode.ERROR, f"{code.name}: {context.details() or ''}".rstrip(": ")))
    span.end()


def _carrier(metadata: Any) -> dict[str, str]:
    """The call's text metadata as a mapping the propagator reads (keys are lower case)."""
    return {str(key).lower(): value for key, value in metadata or () if isinstance(value, str)}
