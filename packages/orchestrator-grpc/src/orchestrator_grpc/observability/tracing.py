"""OpenTelemetry traces of the service (skeleton)."""

from __future__ import annotations

from orchestrator_core.settings import Settings
from orchestrator_core.telemetry import Telemetry
from orchestrator_grpc.interceptors import ServerInterceptor


class Tracing:
    """A tracer provider set up from the ``OTEL_*`` variables, its telemetry and its RPC
    interceptor."""

    def __init__(self, telemetry: Telemetry, interceptor: ServerInterceptor) -> None:
        self.telemetry = telemetry
        self.interceptor = interceptor

    @classmethod
    def from_environment(cls, settings: Settings) -> Tracing | None:
        """None when no ``OTEL_*`` variable configures an exporter."""
        return None

    def close(self) -> None:
        """Flush and shut down the tracer provider."""
