"""Counters of the deliberations this process ran, for GetStatus."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from orchestrator_core.models import TokenUsage
from orchestrator_core.plugin_calls import PluginFailures


@dataclass(frozen=True)
class RoleStatistics:
    deliberations: int = 0
    failures: int = 0
    mean_duration_seconds: float = 0.0


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


class StatisticsRecorder:
    """Tallies finished runs. Only the event loop's thread touches it."""

    def __init__(self) -> None:
        self._all = _Tally()
        self._orchestrations = 0
        self._by_role: dict[str, _Tally] = {}
        self._usage = TokenUsage()
        self.in_flight = 0

    def record(
        self, *, role: str, orchestration: bool, seconds: float, failed: bool, usage: TokenUsage
    ) -> None:
        self._all.add(seconds, failed)
        self._by_role.setdefault(role, _Tally()).add(seconds, failed)
        self._orchestrations += int(orchestration)
        self._usage += usage

    def snapshot(self) -> Statistics:
        return Statistics(
            deliberations=self._all.runs,
            orchestrations=self._orchestrations,
            failures=self._all.failures,
            mean_duration_seconds=self._all.mean,
            by_role={
                role: RoleStatistics(t.runs, t.failures, t.mean)
                for role, t in sorted(self._by_role.items())
            },
            usage=self._usage,
            in_flight=self.in_flight,
        )
