"""Prometheus metrics of the service (skeleton)."""

from __future__ import annotations

from orchestrator_core.orchestrator import Orchestrator
from orchestrator_core.settings import Settings
from orchestrator_core.telemetry import Telemetry
from orchestrator_grpc.interceptors import ServerInterceptor


class ServiceMetrics:
    """The service's metrics registry, its telemetry, its gRPC interceptor and its HTTP server."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.telemetry = Telemetry()
        self.interceptor: ServerInterceptor = ServerInterceptor()
        self.port = 0
        """The port serving /metrics once started (the one picked, for port 0)."""

    async def start(self, orchestrator: Orchestrator) -> None:
        """Serve /metrics on the settings' host and metrics_port."""

    async def close(self) -> None:
        """Stop serving /metrics."""
