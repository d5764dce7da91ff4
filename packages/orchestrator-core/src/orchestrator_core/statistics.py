"""Counters of the deliberations this process ran, for GetStatus, and the latency
percentiles of each role's recent runs."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from orchestrator_core.models import TokenUsage
from orchestrator_core.plugin_calls import PluginFailures


@dataclass(frozen=True)
class RoleStatistics:
    deliberations: int = 0
    failures: int = 0
    mean_duration_seconds: float = 0.0
    """Over every run since the process started."""
    p50_duration_seconds: float = 0.0
    p95_duration_seconds: float = 0.0
    p99_duration_seconds: float = 0.0
    """Nearest-rank percentiles (:func:`percentile`) of the durations of the role's most
    recent runs, failed and cancelled ones included; 0 before the first."""
    latency_samples: int = 0
    """How many runs the percentiles cover: every run, up to the window (ORCH_LATENCY_WINDOW)."""


@dataclass(frozen=True)
class Statistics:
    deliberations: int = 0
    orchestrations: int = 0
    failures: int = 0
    mean_duration_seconds: float = 0.0
    by_role: Mapping[str, RoleStatistics] = field(default_factory=dict)
    usage: TokenUsage = field(default_factory=TokenUsage)
    in_flight: int = 0
    loop_stalls: int = 0
    """Stalls of the event loop the watchdog saw (ORCH_LOOP_STALL_SECONDS)."""
    longest_loop_stall_seconds: float = 0.0
    plugin_failures: tuple[PluginFailures, ...] = ()
    """Failures counted against each plugin object that failed, by kind, then name."""
    abandoned_plugin_threads: int = 0
    """Off-loop plugin calls still running after their caller stopped waiting."""


def percentile(ordered: Sequence[float], percent: float) -> float:
    """The nearest-rank ``percent``-th percentile of ``ordered`` (ascending): the smallest
    value at least ``percent`` % of the values are less than or equal to, i.e. the value of
    rank ceil(percent / 100 * n); 0.0 for no values.

    Nearest rank, not interpolation: the answer is always a duration some run really took,
    and over few runs a p99 is honestly the slowest of them."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(percent * len(ordered) / 100))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class _Tally:
    runs: int = 0
    failures: int = 0
    total_seconds: float = 0.0

    def add(self, seconds: float, failed: bool) -> None:
        self.runs += 1
        self.failures += int(failed)
        self.total_seconds += seconds

    @property
    def mean(self) -> float:
        return self.total_seconds / self.runs if self.runs else 0.0


@dataclass
class _RoleTally(_Tally):
    recent: deque[float] = field(default_factory=deque)
    """The durations of the latest runs, the oldest dropped beyond the window (its maxlen)."""

    def add(self, seconds: float, failed: bool) -> None:
        super().add(seconds, failed)
        self.recent.append(seconds)

    def statistics(self) -> RoleStatistics:
        ordered = sorted(self.recent)
        return RoleStatistics(
            deliberations=self.runs,
            failures=self.failures,
            mean_duration_seconds=self.mean,
            p50_duration_seconds=percentile(ordered, 50),
            p95_duration_seconds=percentile(ordered, 95),
            p99_duration_seconds=percentile(ordered, 99),
            latency_samples=len(ordered),
        )


class StatisticsRecorder:
    """Tallies finished runs. Only the event loop's thread touches it.

    Args:
      latency_window: how many of each role's latest runs its percentiles cover.
    """

    def __init__(self, latency_window: int = 1000) -> None:
        if latency_window < 1:
            raise ValueError(f"latency_window must be at least 1, not {latency_window}")
        self.latency_window = latency_window
        self._all = _Tally()
        self._orchestrations = 0
        self._by_role: dict[str, _RoleTally] = {}
        self._usage = TokenUsage()
        self.in_flight = 0

    def record(
        self, *, role: str, orchestration: bool, seconds: float, failed: bool, usage: TokenUsage
    ) -> None:
        self._all.add(seconds, failed)
        tally = self._by_role.get(role)
        if tally is None:
            tally = self._by_role[role] = _RoleTally(recent=deque(maxlen=self.latency_window))
        tally.add(seconds, failed)
        self._orchestrations += int(orchestration)
        self._usage += usage

    def snapshot(self) -> Statistics:
        return Statistics(
            deliberations=self._all.runs,
            orchestrations=self._orchestrations,
            failures=self._all.failures,
            mean_duration_seconds=self._all.mean,
            by_role={role: tally.statistics() for role, tally in sorted(self._by_role.items())},
            usage=self._usage,
            in_flight=self.in_flight,
        )
