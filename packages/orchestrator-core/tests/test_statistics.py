"""GetStatus's statistics: the latency percentiles of each role's recent runs."""

from __future__ import annotations

import random
from typing import Any

import pytest

from orchestrator_core.models import Task, TokenUsage
from orchestrator_core.orchestrator import DeliberationRequest
from orchestrator_core.statistics import StatisticsRecorder, percentile
from orchestrator_core.testing import ScriptedCheck


def record(recorder: StatisticsRecorder, role: str, *durations: float, failed: bool = False) -> None:
    for seconds in durations:
        recorder.record(role=role, orchestration=False, seconds=seconds, failed=failed, usage=TokenUsage())


def test_percentiles_are_nearest_rank_durations_of_the_runs() -> None:
    recorder = StatisticsRecorder()
    durations = [float(n) for n in range(1, 101)]
    random.Random(15).shuffle(durations)  # the order they finished in does not matter
    record(recorder, "DEV", *durations)

    dev = recorder.snapshot().by_role["DEV"]

    assert (dev.p50_duration_seconds, dev.p95_duration_seconds, dev.p99_duration_seconds) == (50.0, 95.0, 99.0)
    assert (dev.latency_samples, dev.deliberations) == (100, 100)
    assert dev.mean_duration_seconds == pytest.approx(50.5)


def test_over_few_runs_each_percentile_is_a_duration_one_of_them_took() -> None:
    recorder = StatisticsRecorder()
    record(recorder, "DEV", 0.3, 0.1, 0.2)

    dev = recorder.snapshot().by_role["DEV"]

    # ranks ceil(0.5 * 3) = 2, ceil(0.95 * 3) = 3, ceil(0.99 * 3) = 3
    assert (dev.p50_duration_seconds, dev.p95_duration_seconds, dev.p99_duration_seconds) == (0.2, 0.3, 0.3)
    assert dev.latency_samples == 3


def test_one_run_is_every_percentile() -> None:
    recorder = StatisticsRecorder()
    record(recorder, "QA", 4.5)

    qa = recorder.snapshot().by_role["QA"]

    assert (qa.p50_duration_seconds, qa.p95_duration_seconds, qa.p99_duration_seconds, qa.latency_samples) == (
        4.5, 4.5, 4.5, 1,
    )


def test_the_window_drops_the_oldest_runs_from_the_percentiles_not_from_the_counts() -> None:
    recorder = StatisticsRecorder(latency_window=3)
    record(recorder, "DEV", 10.0, 20.0, 30.0)
    record(recorder, "DEV", 1.0, 2.0)  # 10 and 20 leave the window

    dev = recorder.snapshot().by_role["DEV"]

    assert dev.latency_samples == 3
    assert (dev.p50_duration_seconds, dev.p95_duration_seconds, dev.p99_duration_seconds) == (2.0, 30.0, 30.0)
    assert dev.deliberations == 5
    assert dev.mean_duration_seconds == pytest.approx(63.0 / 5)

    record(recorder, "DEV", 3.0)  # 30 leaves too
    dev = recorder.snapshot().by_role["DEV"]
    assert (dev.p50_duration_seconds, dev.p99_duration_seconds, dev.latency_samples) == (2.0, 3.0, 3)


def test_failed_runs_count_and_each_role_has_its_own_window() -> None:
    recorder = StatisticsRecorder(latency_window=2)
    record(recorder, "DEV", 1.0, 2.0)
    record(recorder, "DEV", 9.0, failed=True)  # a run that timed out is the slowest a caller saw
    record(recorder, "QA", 5.0)

    by_role = recorder.snapshot().by_role

    assert (by_role["DEV"].p99_duration_seconds, by_role["DEV"].p50_duration_seconds) == (9.0, 2.0)
    assert (by_role["DEV"].failures, by_role["DEV"].latency_samples) == (1, 2)
    assert (by_role["QA"].p50_duration_seconds, by_role["QA"].latency_samples) == (5.0, 1)
    assert list(by_role) == ["DEV", "QA"]


def test_percentile_of_no_durations_is_0() -> None:
    assert percentile([], 50) == 0.0


def test_a_window_below_1_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        StatisticsRecorder(latency_window=0)


async def test_the_orchestrator_keeps_the_window_its_settings_give(make_orchestrator: Any) -> None:
    orchestrator = await make_orchestrator(None, ScriptedCheck(), latency_window=2)
    for _ in range(3):
        await orchestrator.deliberate(DeliberationRequest(Task(role="dev", description="Write fizzbuzz"), rounds=0))

    dev = orchestrator.status().statistics.by_role["DEV"]

    assert (dev.deliberations, dev.latency_samples) == (3, 2)
    assert 0 < dev.p50_duration_seconds <= dev.p95_duration_seconds <= dev.p99_duration_seconds
