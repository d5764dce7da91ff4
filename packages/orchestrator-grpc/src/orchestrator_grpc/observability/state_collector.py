"""Metrics read from the orchestrator when Prometheus scrapes: what it keeps anyway.

The circuit breakers' states, the plugins' failures, the loop watchdog's stalls, the plugin
threads abandoned and which councils are ready are already counted by the core (GetStatus
shows them); :class:`OrchestratorState` reads them at each scrape, on the HTTP server's
thread, through the core's thread-safe accessors, so nothing is counted twice and nothing
costs anything between scrapes. The work queue's depth is the exception: reading it asks
NATS, so :class:`QueueDepthCache` reads it every few seconds on the event loop, and a
scrape shows the last value read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from orchestrator_core.breaker import CircuitState
from orchestrator_core.council import Breakers
from orchestrator_core.orchestrator import Orchestrator
from orchestrator_core.plugin_calls import FAILURE_KINDS
from orchestrator_core.work_queue import QueueDepth
from orchestrator_grpc.observability.labels import OTHER, endpoint_label

log = logging.getLogger(__name__)

BREAKER_VALUES = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}
MAX_ENDPOINTS = 64
MAX_PLUGINS = 64
MAX_ROLES = 32
QUEUE_DEPTH_REFRESH_SECONDS = 2.0
"""How often the work queue's depth is read for the metrics (on the event loop)."""


class QueueDepthCache:
    """The work queue's depth as last read on the event loop: a scrape runs on the HTTP
    server's thread and must not wait on NATS, so it reads this instead."""

    def __init__(self, orchestrator: Orchestrator, interval: float | None = None) -> None:
        self.orchestrator = orchestrator
        self.interval = QUEUE_DEPTH_REFRESH_SECONDS if interval is None else interval
        self.value = QueueDepth()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._refresh(), name="queue-depth")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _refresh(self) -> None:
        while True:
            try:
                self.value = await self.orchestrator.queue.depth()
            except Exception as exc:  # the queue may come back; the last value stands meanwhile
                log.debug("could not read the work queue's depth: %s", exc)
            await asyncio.sleep(self.interval)


class OrchestratorState(Collector):
    """Collects the orchestrator's state; see the module's docstring."""

    def __init__(self, orchestrator: Orchestrator, queue_depth: QueueDepthCache | None = None) -> None:
        self.orchestrator = orchestrator
        self.queue_depth = queue_depth

    def describe(self) -> Iterator[Metric]:
        """The families without samples (the registry checks names against these)."""
        return iter(_Families().all())

    def collect(self) -> Iterator[Metric]:
        families = _Families()
        orchestrator = self.orchestrator
        for (backend, endpoint), state in self._breaker_states().items():
            families.breakers.add_metric([backend, endpoint], state)
        for (kind, name, failure), count in self._plugin_failures().items():
            families.failures.add_metric([kind, name, failure], count)
        watchdog = orchestrator.watchdog
        families.stalls.add_metric([], watchdog.stalls if watchdog is not None else 0)
        families.longest.add_metric([], watchdog.longest_stall_seconds if watchdog is not None else 0.0)
        families.abandoned.add_metric([], orchestrator.engine.off_loop.abandoned)
        for role, council in sorted(orchestrator.councils.items())[:MAX_ROLES]:
            families.ready.add_metric([role], 1 if council.ready else 0)
        depth = self.queue_depth.value if self.queue_depth is not None else QueueDepth()
        families.queue_pending.add_metric([], depth.pending)
        families.queue_in_flight.add_metric([], depth.in_flight)
        return iter(families.all())

    def _breaker_states(self) -> dict[tuple[str, str], int]:
        """The worst state per (backend, endpoint shown): two configured endpoints may show
        alike once redacted, and Prometheus refuses a scrape with a series twice."""
        seen: set[int] = set()
        states: dict[tuple[str, str], int] = {}
        for council in list(self.orchestrator.councils.values()):
            breakers: Breakers = council.breakers
            if id(breakers) in seen:
                continue
            seen.add(id(breakers))
            for backend, endpoint, breaker in breakers.endpoints():
                key = (backend, endpoint_label(endpoint))
                if key not in states and len(states) >= MAX_ENDPOINTS:
                    key = (OTHER, OTHER)
                states[key] = max(states.get(key, 0), BREAKER_VALUES[breaker.current_state()])
        return states

    def _plugin_failures(self) -> dict[tuple[str, str, str], int]:
        counts: dict[tuple[str, str, str], int] = {}
        names: set[tuple[str, str]] = set()
        for failures in self.orchestrator.plugin_failures.snapshot():
            plugin = (failures.kind, failures.name)
            if plugin not in names and len(names) >= MAX_PLUGINS:
                plugin = (failures.kind, OTHER)
            names.add(plugin)
            for failure in FAILURE_KINDS:
                key = (*plugin, failure)
                counts[key] = counts.get(key, 0) + getattr(failures, failure)
        return counts


class _Families:
    """One scrape's metric families, empty until filled."""

    def __init__(self) -> None:
        self.breakers = GaugeMetricFamily(
            "orchestrator_breaker_state", "Circuit breaker of each agent endpoint: 0 closed, 1 half-open, 2 open.",
            labels=["backend", "endpoint"],
        )
        self.failures = CounterMetricFamily(
            "orchestrator_plugin_failures",
            "Failures counted against each plugin (bugs, timeouts, errors, loop_stalls).",
            labels=["plugin_kind", "plugin", "failure"],
        )
        self.stalls = CounterMetricFamily(
            "orchestrator_loop_stalls", "Times the event loop stopped answering (seen by the loop watchdog)."
        )
        self.longest = GaugeMetricFamily(
            "orchestrator_loop_stall_longest_seconds", "The longest event loop stall so far."
        )
        self.abandoned = GaugeMetricFamily(
            "orchestrator_abandoned_plugin_threads",
            "Threads of blocking plugin calls still running past their timeout.",
        )
        self.ready = GaugeMetricFamily(
            "orchestrator_council_ready", "1 when the role's council can deliberate, else 0.", labels=["role"]
        )

        self.queue_pending = GaugeMetricFamily(
            "orchestrator_queue_pending",
            "Submitted deliberations waiting for a worker (with NATS: for every worker of the stream).",
        )
        self.queue_in_flight = GaugeMetricFamily(
            "orchestrator_queue_in_flight", "Submitted deliberations delivered to a worker and not yet finished."
        )

    def all(self) -> tuple[Metric, ...]:
        return (
            self.breakers, self.failures, self.stalls, self.longest, self.abandoned, self.ready,
            self.queue_pending, self.queue_in_flight,
        )
