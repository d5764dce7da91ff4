"""The gRPC server's metrics, under the names go-grpc-prometheus gave them.

Dashboards built for gRPC services query ``grpc_server_started_total``,
``grpc_server_handled_total{grpc_code}``, ``grpc_server_msg_received_total``,
``grpc_server_msg_sent_total`` and the ``grpc_server_handling_seconds`` histogram, each
labelled ``grpc_type`` (unary, client_stream, server_stream, bidi_stream), ``grpc_service``
and ``grpc_method``. :class:`GrpcServerMetrics` is a grpc.aio server interceptor that keeps
them. It runs before every other interceptor (see :mod:`orchestrator_grpc.server`), so it
sees every call: those the drain gate or the authentication reject, an aborted call with
the code its servicer set, a cancelled one, and a call of a method the server does not have
(UNIMPLEMENTED; counted as the method "unknown" of the service "unknown", so a client cannot
make a series per path it invents).

It is our own: py-grpc-prometheus works with the synchronous server only, and
py-async-grpc-prometheus (0.2.0) counts no call of an unknown method, none that is cancelled,
reports an aborted stream as UNKNOWN, uses upper-case ``grpc_type`` values and labels every
path a client sends.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram

from orchestrator_grpc.handlers import behaviour_of, call_status, shaped_like
from orchestrator_grpc.interceptors import Continuation, Handler, ServerInterceptor
from orchestrator_grpc.observability.labels import OTHER, UNKNOWN

UNARY, CLIENT_STREAM, SERVER_STREAM, BIDI_STREAM = "unary", "client_stream", "server_stream", "bidi_stream"
MAX_METHODS = 100
"""Distinct (service, method) pairs labelled; further ones are counted as "other"."""
HANDLING_BUCKETS = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0,
    1800.0,
)
"""Seconds: from a health check (a millisecond) to a deliberation's longest budget."""
_LABELS = ("grpc_type", "grpc_service", "grpc_method")
_Context = grpc.aio.ServicerContext[Any, Any]


class _MethodMetrics:
    """The series of one method, resolved once."""

    __slots__ = ("_by_code", "_handled", "_labels", "received", "seconds", "sent", "started")

    def __init__(self, families: GrpcServerMetrics, labels: tuple[str, str, str]) -> None:
        self._labels = labels
        self.started = families.started.labels(*labels)
        self.received = families.received.labels(*labels)
        self.sent = families.sent.labels(*labels)
        self.seconds = families.seconds.labels(*labels)
        self._handled = families.handled
        self._by_code: dict[grpc.StatusCode, Any] = {}

    def handled(self, code: grpc.StatusCode, started: float) -> None:
        child = self._by_code.get(code)
        if child is None:
            child = self._by_code[code] = self._handled.labels(*self._labels, code.name)
        child.inc()
        self.seconds.observe(time.perf_counter() - started)


class GrpcServerMetrics(ServerInterceptor):
    """Counts and times every call the server receives; see the module's docstring."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.started = Counter(
            "grpc_server_started", "RPCs started on the server.", _LABELS, registry=registry
        )
        self.handled = Counter(
            "grpc_server_handled", "RPCs completed on the server, whatever their status code.",
            (*_LABELS, "grpc_code"), registry=registry,
        )
        self.received = Counter(
            "grpc_server_msg_received", "Request messages received by the server.", _LABELS, registry=registry
        )
        self.sent = Counter(
            "grpc_server_msg_sent", "Response messages sent by the server.", _LABELS, registry=registry
        )
        self.seconds = Histogram(
            "grpc_server_handling_seconds", "Time from an RPC's start to its end on the server.", _LABELS,
            registry=registry, buckets=HANDLING_BUCKETS,
        )
        self._methods: dict[tuple[str, str, str], _MethodMetrics] = {}
        self._names: set[tuple[str, str]] = set()

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler:
        handler = await continuation(handler_call_details)
        if handler is None:  # gRPC answers UNIMPLEMENTED
            unknown = self._method(UNARY, UNKNOWN, UNKNOWN)
            unknown.started.inc()
            unknown.handled(grpc.StatusCode.UNIMPLEMENTED, time.perf_counter())
            return handler
        service, method = self._name(handler_call_details.method)
        return _monitored(handler, self._method(_type_of(handler), service, method))

    def _name(self, path: str | bytes) -> tuple[str, str]:
        """(service, method) of a method's path, "/package.Service/Method"; beyond
        :data:`MAX_METHODS` distinct ones, ("other", "other")."""
        if isinstance(path, bytes):
            path = path.decode("utf-8", "replace")
        _, _, rest = path.partition("/")
        service, _, method = rest.partition("/")
        name = (service or UNKNOWN, method or UNKNOWN)
        if name not in self._names:
            if len(self._names) >= MAX_METHODS:
                return OTHER, OTHER
            self._names.add(name)
        return name

    def _method(self, grpc_type: str, service: str, method: str) -> _MethodMetrics:
        key = (grpc_type, service, method)
        found = self._methods.get(key)
        if found is None:
            found = self._methods[key] = _MethodMetrics(self, key)
        return found


def _type_of(handler: Handler) -> str:
    if handler.request_streaming:
        return BIDI_STREAM if handler.response_streaming else CLIENT_STREAM
    return SERVER_STREAM if handler.response_streaming else UNARY


class _CountingWrites:
    """A servicer context whose ``write`` counts each message sent (for a streaming handler
    that writes with ``context.write`` rather than yielding, e.g. health's Watch)."""

    def __init__(self, context: _Context, sent: Any) -> None:
        self._context = context
        self._sent = sent

    async def write(self, message: Any) -> None:
        await self._context.write(message)
        self._sent.inc()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


async def _counted(requests: AsyncIterator[Any], received: Any) -> AsyncIterator[Any]:
    async for request in requests:
        received.inc()
        yield request


def _monitored(handler: Handler, metrics: _MethodMetrics) -> Handler:
    """``handler`` with the same shape, counting and timing each call."""
    request_streaming = handler.request_streaming
    inner = behaviour_of(handler)

    def begin(request: Any) -> tuple[float, Any]:
        metrics.started.inc()
        if not request_streaming:
            metrics.received.inc()
            return time.perf_counter(), request
        return time.perf_counter(), _counted(request, metrics.received)

    async def unary(request: Any, context: _Context) -> Any:
        started, request = begin(request)
        try:
            response = await inner(request, context)
        except BaseException as error:
            metrics.handled(call_status(context, error), started)
            raise
        code = call_status(context)
        if code is grpc.StatusCode.OK:
            metrics.sent.inc()
        metrics.handled(code, started)
        return response

    async def streaming(request: Any, context: _Context) -> AsyncIterator[Any]:
        started, request = begin(request)
        try:
            async for response in inner(request, context):
                metrics.sent.inc()
                yield response
        except BaseException as error:
            metrics.handled(call_status(context, error), started)
            raise
        metrics.handled(call_status(context), started)

    async def writing(request: Any, context: _Context) -> None:
        started, request = begin(request)
        try:
            await inner(request, _CountingWrites(context, metrics.sent))
        except BaseException as error:
            metrics.handled(call_status(context, error), started)
            raise
        metrics.handled(call_status(context), started)

    behaviour: Callable[..., Any] = unary
    if handler.response_streaming:
        behaviour = streaming if inspect.isasyncgenfunction(inner) else writing
    return shaped_like(handler, behaviour)
