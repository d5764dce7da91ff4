"""Prometheus metrics of the service, served at ``/metrics`` when ``ORCH_METRICS_PORT`` is set.

:class:`ServiceMetrics` owns a registry of its own (several servers in one process do not
share series) and fills it from three sources:

- :class:`~.grpc_metrics.GrpcServerMetrics`, the server interceptor: every RPC
  (``grpc_server_*``);
- :class:`~.orchestrator_metrics.MetricsTelemetry`, the core's telemetry: deliberations,
  agent calls, tokens and checks as they end;
- :class:`~.state_collector.OrchestratorState`, read at each scrape: breakers, plugin
  failures, loop stalls, abandoned threads, councils ready, the work queue's depth;

plus ``orchestrator_build_info{version} 1``. With metrics off nothing of this is imported:
prometheus-client is loaded only when a ServiceMetrics is made.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from orchestrator_core import __version__
from orchestrator_core.orchestrator import Orchestrator
from orchestrator_core.settings import Settings

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from orchestrator_grpc.observability.grpc_metrics import GrpcServerMetrics
    from orchestrator_grpc.observability.metrics_http import MetricsHttpServer
    from orchestrator_grpc.observability.orchestrator_metrics import MetricsTelemetry
    from orchestrator_grpc.observability.state_collector import QueueDepthCache

log = logging.getLogger(__name__)


class ServiceMetrics:
    """The service's metrics registry, its telemetry, its gRPC interceptor and its HTTP server."""

    def __init__(self, settings: Settings) -> None:
        from prometheus_client import CollectorRegistry, Gauge

        from orchestrator_grpc.observability.grpc_metrics import GrpcServerMetrics
        from orchestrator_grpc.observability.metrics_http import MetricsHttpServer
        from orchestrator_grpc.observability.orchestrator_metrics import MetricsTelemetry

        self.settings = settings
        self.registry: CollectorRegistry = CollectorRegistry()
        self.telemetry: MetricsTelemetry = MetricsTelemetry(settings, self.registry)
        self.interceptor: GrpcServerMetrics = GrpcServerMetrics(self.registry)
        build = Gauge("orchestrator_build_info", "1, labelled with the version serving.", ["version"],
                      registry=self.registry)
        build.labels(__version__).set(1)
        self._http: MetricsHttpServer = MetricsHttpServer(self.registry, settings.host, settings.metrics_port or 0)
        self._queue_depth: QueueDepthCache | None = None

    @property
    def port(self) -> int:
        """The port serving /metrics once started (the one picked, for port 0)."""
        return self._http.port

    @property
    def url(self) -> str:
        return self._http.url

    async def start(self, orchestrator: Orchestrator) -> None:
        """Read the orchestrator's state at each scrape, and serve /metrics on the settings'
        host and metrics_port."""
        from orchestrator_grpc.observability.state_collector import OrchestratorState, QueueDepthCache

        checks = orchestrator.plugins.checks
        self.telemetry.know_checks(
            [check.name for check in checks], [check.name for check in checks if getattr(check, "heavy", False)]
        )
        self._queue_depth = QueueDepthCache(orchestrator)
        self._queue_depth.start()
        self.registry.register(OrchestratorState(orchestrator, self._queue_depth))
        self._http.start()
        log.info("serving Prometheus metrics on %s, bound to %s (plain HTTP, no token)", self.url, self._http.bound)

    async def close(self) -> None:
        """Stop serving /metrics."""
        await self._http.close()
        if self._queue_depth is not None:
            await self._queue_depth.close()
