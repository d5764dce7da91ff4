"""OpenTelemetry traces of the service, configured by the standard ``OTEL_*`` variables.

Tracing is on when the variables name an exporter: ``OTEL_TRACES_EXPORTER`` set to anything
but ``none`` (``otlp``, ``console``, or any installed exporter's name), or an OTLP endpoint
(``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), which means
``otlp``; ``OTEL_SDK_DISABLED=true`` turns it off whatever else is set. ``otlp`` is OTLP over
gRPC, or over HTTP when ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` (or
``OTEL_EXPORTER_OTLP_PROTOCOL``) is ``http/protobuf``, as the SDK has it.

Everything else is read by the SDK itself, as it documents: the exporters read their
endpoint, headers, certificates, compression and timeout; the resource
``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` (service.name defaults to
"orchestrator"); the tracer provider ``OTEL_TRACES_SAMPLER`` and the span limits; the batch
processor ``OTEL_BSP_*``.

Off, this module imports nothing of OpenTelemetry and :func:`current_trace_ids` costs a
flag check: the SDK, the exporters and the span-making modules (:mod:`.trace_telemetry`,
:mod:`.rpc_spans`) are imported only when tracing is on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from orchestrator_core import __version__
from orchestrator_core.errors import OrchestratorError
from orchestrator_core.settings import Settings
from orchestrator_core.telemetry import Telemetry
from orchestrator_grpc.interceptors import ServerInterceptor

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = ["Tracing", "TracingUnavailable", "current_trace_ids", "tracing_configured"]

DEFAULT_SERVICE_NAME = "orchestrator"
EXPORTER_ENTRY_POINTS = "opentelemetry_traces_exporter"
"""The entry-point group where packages offer trace exporters (the SDK's own lookup)."""
_OTLP_BY_PROTOCOL = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}
_PACKAGES = {
    "otlp_proto_grpc": "opentelemetry-exporter-otlp-proto-grpc",
    "otlp_proto_http": "opentelemetry-exporter-otlp-proto-http",
    "console": "opentelemetry-sdk",
    "zipkin": "opentelemetry-exporter-zipkin",
}


class TracingUnavailable(OrchestratorError):
    """The ``OTEL_*`` variables ask for traces this installation cannot send; the message
    says what to set or install."""


def tracing_configured(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the ``OTEL_*`` variables in ``environ`` ask for traces to be exported."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return bool(_named_exporters(environ))


def exporter_names(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The exporters' entry-point names: ``OTEL_TRACES_EXPORTER``'s (comma-separated), or
    ``otlp`` for an OTLP endpoint alone; ``otlp`` resolved to gRPC or HTTP by the protocol."""
    return [_otlp_by_protocol(environ) if name == "otlp" else name for name in _named_exporters(environ)]


def _named_exporters(environ: Mapping[str, str]) -> list[str]:
    named = [name.strip().lower() for name in environ.get("OTEL_TRACES_EXPORTER", "").split(",")]
    if not any(named):
        return ["otlp"] if _otlp_endpoint(environ) else []
    return [name for name in named if name and name != "none"]


class Tracing:
    """A tracer provider, the :class:`~orchestrator_core.telemetry.Telemetry` that makes a
    span of each deliberation, phase, agent call and check, and the interceptor that makes
    one of each RPC (the parent of the rest).

    Tests construct it around a provider of their own (e.g. with the SDK's
    ``InMemorySpanExporter``); the service gets it from :meth:`from_environment`.
    """

    def __init__(self, provider: TracerProvider, settings: Settings) -> None:
        from orchestrator_grpc.observability.rpc_spans import TracingInterceptor
        from orchestrator_grpc.observability.trace_telemetry import TracingTelemetry

        tracer = provider.get_tracer("orchestrator", __version__)
        self.provider = provider
        self.telemetry: Telemetry = TracingTelemetry(tracer, trace_content=settings.trace_content)
        self.interceptor: ServerInterceptor = TracingInterceptor(tracer)
        self._closed = False
        _opened()

    @classmethod
    def from_environment(cls, settings: Settings) -> Tracing | None:
        """Tracing as the ``OTEL_*`` variables configure it; None when they ask for none.

        The provider also becomes OpenTelemetry's global one unless another is set already,
        so libraries' own instrumentation (e.g. of httpx) puts its spans under ours.

        Raises:
            TracingUnavailable: an exporter named is not installed, or the protocol is unknown.
        """
        if not tracing_configured():
            return None
        from opentelemetry import trace

        tracing = cls(_provider_from_environment(), settings)
        if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            trace.set_tracer_provider(tracing.provider)
        return tracing

    def close(self) -> None:
        """Flush and shut down the tracer provider (its exporters send what they hold)."""
        if self._closed:
            return
        self._closed = True
        _closed()
        self.provider.shutdown()


def current_trace_ids() -> tuple[str, str] | None:
    """The current span's trace id and span id in hex (32 and 16 digits); None when tracing
    is off or no span is current. Off, it costs a check of one global."""
    reader = _ids_reader
    return None if reader is None else reader()


# -- the switch current_trace_ids reads ---------------------------------------------------

_ids_reader: Callable[[], tuple[str, str] | None] | None = None
_open = 0
"""How many :class:`Tracing` are open; ids are read while any is."""


def _opened() -> None:
    global _ids_reader, _open
    from opentelemetry import trace

    def read() -> tuple[str, str] | None:
        context = trace.get_current_span().get_span_context()
        if not context.is_valid:
            return None
        return format(context.trace_id, "032x"), format(context.span_id, "016x")

    _open += 1
    _ids_reader = read


def _closed() -> None:
    global _ids_reader, _open
    _open -= 1
    if _open <= 0:
        _open, _ids_reader = 0, None


# -- the provider the variables describe --------------------------------------------------


def _provider_from_environment() -> TracerProvider:
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    exporters = [_exporter(name) for name in exporter_names()]
    # Resource.create reads the variables; the detector's second reading lets them override
    # our default service name (create's own attributes would win over the variables).
    defaults = Resource.create({"service.name": DEFAULT_SERVICE_NAME, "service.version": __version__})
    provider = TracerProvider(resource=defaults.merge(OTELResourceDetector().detect()))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _exporter(name: str) -> SpanExporter:
    from opentelemetry.sdk.trace.export import SpanExporter

    found = entry_points(group=EXPORTER_ENTRY_POINTS, name=name)
    if not found:
        package = _PACKAGES.get(name, f"the package that provides the {name!r} trace exporter")
        raise TracingUnavailable(
            f"traces are configured to go to the {name!r} exporter (OTEL_TRACES_EXPORTER, "
            f"OTEL_EXPORTER_OTLP_*), which is not installed: pip install {package}; "
            "or unset OTEL_TRACES_EXPORTER and OTEL_EXPORTER_OTLP_ENDPOINT to trace nothing"
        )
    exporter_class = next(iter(found)).load()
    if not (isinstance(exporter_class, type) and issubclass(exporter_class, SpanExporter)):
        raise TracingUnavailable(f"the {name!r} entry point of {EXPORTER_ENTRY_POINTS} is not a span exporter")
    exporter: SpanExporter = exporter_class()
    return exporter


def _otlp_endpoint(environ: Mapping[str, str]) -> str:
    return (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    )


def _otlp_by_protocol(environ: Mapping[str, str]) -> str:
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "").strip()
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "").strip()
        or "grpc"
    )
    if protocol not in _OTLP_BY_PROTOCOL:
        raise TracingUnavailable(
            f"OTEL_EXPORTER_OTLP_PROTOCOL / OTEL_EXPORTER_OTLP_TRACES_PROTOCOL is {protocol!r}; "
            f"the OTLP trace exporters speak {' and '.join(sorted(_OTLP_BY_PROTOCOL))}"
        )
    return _OTLP_BY_PROTOCOL[protocol]
