"""The orchestrator's metrics of its work, kept as the core tells its telemetry.

:class:`MetricsTelemetry` counts and times each deliberation, agent call and check as its
scope closes (the core fills in how it ended first). Labels come from the configuration or
a fixed set (see :mod:`.labels`): a role, a backend, a model, a check's name and kind, a
phase, an outcome; never an id, a task's text or an endpoint.

Each metric's buckets suit what it measures: an agent call takes from 10 ms (a cached or
scripted reply) to minutes (a large model on a CPU); a check up to minutes (a dry run); a
deliberation up to the 15 minutes of the longest budget an operator is likely to set.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from orchestrator_core import errors
from orchestrator_core.models import CallOutcome, Phase
from orchestrator_core.settings import Settings
from orchestrator_core.telemetry import AgentCallScope, CheckScope, DeliberationScope, Telemetry
from orchestrator_grpc.observability.labels import (
    LabelValues,
    configured_backends,
    configured_models,
    configured_roles,
    one_of,
)

MAX_ROLES = 32
MAX_BACKENDS = 32
MAX_MODELS = 32
MAX_CHECKS = 64
MAX_CHECK_KINDS = 16

STATUSES = frozenset({"succeeded", "failed", "cancelled"})
ERROR_KINDS = frozenset(
    {"Cancelled"} | {name for name, value in vars(errors).items()
                     if isinstance(value, type) and issubclass(value, errors.OrchestratorError)}
)
"""A failed deliberation's error_kind label: the core's own errors and "Cancelled"; any
other exception is "other"."""
KINDS = frozenset({"deliberate", "orchestrate"})
PHASES = frozenset(phase.value for phase in Phase)
CALL_OUTCOMES = frozenset(outcome.value for outcome in CallOutcome)
CHECK_OUTCOMES = frozenset({"passed", "failed", "timeout", "error", "cancelled"})
RANKED = "NoViableProposal"
"""A failure that still ranked its proposals: its rounds and viable proposals are observed."""

DELIBERATION_BUCKETS = (
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0,
)
AGENT_CALL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
CHECK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
SLOT_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
ROUNDS_BUCKETS = (0, 1, 2, 3, 4, 5, 6, 8, 10, 15, 20)
PROPOSALS_BUCKETS = (0, 1, 2, 3, 4, 5, 6, 8, 12, 16, 32, 64)


class _Timed:
    """Times the block and hands the seconds to ``done`` (cheaper than a generator-based
    context manager, entered for every agent call and check)."""

    __slots__ = ("_done", "_entered", "_started")

    def __init__(self, done: Callable[[float], None], entered: Callable[[], None] | None = None) -> None:
        self._done = done
        self._entered = entered
        self._started = 0.0

    def __enter__(self) -> None:
        if self._entered is not None:
            self._entered()
        self._started = time.perf_counter()

    def __exit__(self, *exc_info: object) -> None:
        self._done(time.perf_counter() - self._started)


class _Children:
    """One metric's labelled series, each resolved on first use and kept."""

    __slots__ = ("_metric", "_series")

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._series: dict[tuple[str, ...], Any] = {}

    def __call__(self, *labels: str) -> Any:
        found = self._series.get(labels)
        if found is None:
            found = self._series[labels] = self._metric.labels(*labels)
        return found


class MetricsTelemetry(Telemetry):
    """Keeps the orchestrator's metrics in ``registry``; see the module's docstring."""

    def __init__(self, settings: Settings, registry: CollectorRegistry) -> None:
        self.roles = LabelValues(MAX_ROLES, configured_roles(settings))
        self.backends = LabelValues(MAX_BACKENDS, configured_backends(settings))
        self.models = LabelValues(MAX_MODELS, configured_models(settings))
        self.checks = LabelValues(MAX_CHECKS)
        self.check_kinds = LabelValues(MAX_CHECK_KINDS)
        self.heavy_checks: frozenset[str] = frozenset()
        """The installed heavy checks: only they wait for a slot (see :meth:`know_checks`)."""

        def metric(kind: type, name: str, help_: str, labels: tuple[str, ...], **kwargs: Any) -> _Children:
            return _Children(kind(name, help_, labels, registry=registry, **kwargs))

        self._deliberations = metric(
            Counter, "orchestrator_deliberations", "Deliberations and orchestrations finished, by final status.",
            ("role", "kind", "status", "error_kind"),
        )
        self._in_flight = metric(
            Gauge, "orchestrator_deliberations_in_flight", "Deliberations and orchestrations running.",
            ("role", "kind"),
        )
        self._deliberation_seconds = metric(
            Histogram, "orchestrator_deliberation_duration_seconds",
            "Time from a deliberation's start to its final status.", ("role", "kind", "status"),
            buckets=DELIBERATION_BUCKETS,
        )
        self._rounds = metric(
            Histogram, "orchestrator_deliberation_rounds",
            "Critique-and-revise rounds run by deliberations that reached their ranking.", ("role",),
            buckets=ROUNDS_BUCKETS,
        )
        self._viable = metric(
            Histogram, "orchestrator_deliberation_viable_proposals",
            "Viable proposals in the ranking of deliberations that reached it.", ("role",),
            buckets=PROPOSALS_BUCKETS,
        )
        self._agent_calls = metric(
            Counter, "orchestrator_agent_calls", "Agent calls finished, by outcome.",
            ("role", "backend", "model", "phase", "outcome"),
        )
        self._agent_seconds = metric(
            Histogram, "orchestrator_agent_call_duration_seconds", "Time an agent call took, whatever its outcome.",
            ("backend", "model", "phase"), buckets=AGENT_CALL_BUCKETS,
        )
        self._tokens = metric(
            Counter, "orchestrator_agent_tokens",
            "Tokens agent calls used, as the model servers reported them (type: input or output).",
            ("backend", "model", "type"),
        )
        self._check_runs = metric(
            Counter, "orchestrator_check_runs", "Checks of a proposal finished, by outcome.",
            ("check", "kind", "outcome"),
        )
        self._check_seconds = metric(
            Histogram, "orchestrator_check_duration_seconds",
            "Time a check of a proposal ran (after any wait for a heavy-check slot).", ("check", "kind"),
            buckets=CHECK_BUCKETS,
        )
        self._slot_wait = metric(
            Histogram, "orchestrator_check_slot_wait_seconds", "Time a heavy check waited for a slot.",
            ("check",), buckets=SLOT_WAIT_BUCKETS,
        )

        # Each configured role's series start at 0, so the first deliberation is an increase
        # (a series that first appears at 1 shows none to rate() and increase()).
        for role in configured_roles(settings):
            for kind in sorted(KINDS):
                self._in_flight(self.roles(role), kind)
                self._deliberations(self.roles(role), kind, "succeeded", "")

    def know_checks(self, names: list[str], heavy: list[str]) -> None:
        """The installed checks (once the plugins are loaded): their names come first."""
        self.checks.allow(names)
        self.heavy_checks = frozenset(heavy)

    # -- scopes -------------------------------------------------------------------------------

    def deliberation(self, scope: DeliberationScope) -> AbstractContextManager[None]:
        role, kind = self.roles(scope.role), one_of(scope.kind, KINDS)
        in_flight = self._in_flight(role, kind)

        def ended(seconds: float) -> None:
            in_flight.dec()
            status = one_of(scope.status, STATUSES)
            error_kind = "" if status == "succeeded" else one_of(scope.error_kind, ERROR_KINDS)
            self._deliberations(role, kind, status, error_kind).inc()
            self._deliberation_seconds(role, kind, status).observe(seconds)
            if status == "succeeded" or scope.error_kind == RANKED:
                self._rounds(role).observe(scope.rounds_run)
                self._viable(role).observe(scope.viable_proposals)

        return _Timed(ended, in_flight.inc)

    def agent_call(self, scope: AgentCallScope) -> AbstractContextManager[None]:
        def ended(seconds: float) -> None:
            backend, model = self.backends(scope.backend), self.models(scope.model)
            phase = one_of(scope.phase.value, PHASES)
            self._agent_calls(
                self.roles(scope.role), backend, model, phase, one_of(scope.outcome.value, CALL_OUTCOMES)
            ).inc()
            self._agent_seconds(backend, model, phase).observe(seconds)
            usage = scope.usage
            if usage.prompt_tokens:
                self._tokens(backend, model, "input").inc(usage.prompt_tokens)
            if usage.completion_tokens:
                self._tokens(backend, model, "output").inc(usage.completion_tokens)

        return _Timed(ended)

    def check(self, scope: CheckScope) -> AbstractContextManager[None]:
        def ended(seconds: float) -> None:
            check, kind = self.checks(scope.check), self.check_kinds(scope.kind)
            self._check_runs(check, kind, one_of(scope.outcome, CHECK_OUTCOMES)).inc()
            self._check_seconds(check, kind).observe(max(0.0, seconds - scope.waited_seconds))
            if scope.check in self.heavy_checks:
                self._slot_wait(check).observe(scope.waited_seconds)

        return _Timed(ended)
