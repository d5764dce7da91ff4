"""Metrics read from the orchestrator when Prometheus scrapes: what it keeps anyway.

The circuit breakers' states, the plugins' failures, the loop watchdog's stalls, the plugin
threads abandoned and which councils are ready are already counted by the core (GetStatus
shows them); :class:`OrchestratorState` reads them at each scrape, on the HTTP server's
thread, through the core's thread-safe accessors, so nothing is counted twice and nothing
costs anything between scrapes.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from orchestrator_core.breaker import CircuitState
from orchestrator_core.council import Breakers
from orchestrator_core.orchestrator import Orchestrator
from orchestrator_core.plugin_calls import FAILURE_KINDS
from orchestrator_grpc.observability.labels import OTHER, endpoint_label

BREAKER_VALUES = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}
MAX_ENDPOINTS = 64
MAX_PLUGINS = 64
MAX_ROLES = 32


class OrchestratorState(Collector):
    """Collects the orchestrator's state; see the module's docstring."""

    def __init__(self, orchestrator: Orchestrator) -> None:
        self.orchestrator = orchestrator

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

    def all(self) -> tuple[Metric, ...]:
        return (self.breakers, self.failures, self.stalls, self.longest, self.abandoned, self.ready)
