"""The observers the settings and the environment ask for, composed for the server.

- metrics (:mod:`.metrics`), when ``ORCH_METRICS_PORT`` is set;
- traces (:mod:`.tracing`), when the standard ``OTEL_*`` variables configure an exporter;
- the event log (:mod:`.event_log`), always: one line per event that matters.

Each gives the core a :class:`~orchestrator_core.telemetry.Telemetry` and may give the server
interceptors (its own view of every RPC) and something to start once the orchestrator exists
and to close at shutdown.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator_core.orchestrator import Orchestrator
from orchestrator_core.settings import Settings
from orchestrator_core.telemetry import Telemetry, chained
from orchestrator_grpc.interceptors import ServerInterceptor
from orchestrator_grpc.observability.event_log import EventLog
from orchestrator_grpc.observability.metrics import ServiceMetrics
from orchestrator_grpc.observability.tracing import Tracing


@dataclass
class Observability:
    telemetry: Telemetry
    """What the orchestrator tells of each deliberation, phase, agent call and check."""
    interceptors: list[ServerInterceptor] = field(default_factory=list)
    """To run before every other interceptor, so they see every call, rejected ones included."""
    metrics: ServiceMetrics | None = None
    tracing: Tracing | None = None

    async def start(self, orchestrator: Orchestrator) -> None:
        """Start serving metrics (they read the orchestrator's state when scraped)."""
        if self.metrics is not None:
            await self.metrics.start(orchestrator)

    async def close(self) -> None:
        if self.metrics is not None:
            await self.metrics.close()
        if self.tracing is not None:
            self.tracing.close()


def observability_for(settings: Settings) -> Observability:
    tracing = Tracing.from_environment(settings)
    metrics = ServiceMetrics(settings) if settings.metrics_port is not None else None
    observers: list[Telemetry] = []
    interceptors: list[ServerInterceptor] = []
    if tracing is not None:
        observers.append(tracing.telemetry)
        interceptors.append(tracing.interceptor)
    if metrics is not None:
        observers.append(metrics.telemetry)
        interceptors.append(metrics.interceptor)
    observers.append(EventLog())
    return Observability(chained(observers), interceptors, metrics, tracing)
