"""The loop watchdog: a stall is seen from its thread, logged naming the plugin call that ran
with the loop's stack, counted, and counted against that plugin; the orchestrator runs one
and reports what it saw in its status."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest
from core_support import MakeOrchestrator, until

from orchestrator_core.plugin_calls import CHECK, PluginCall, PluginFailureCounters, PluginFailures, plugin_call
from orchestrator_core.watchdog import LoopWatchdog


def block_the_loop_in_a_plugin(seconds: float) -> None:
    time.sleep(seconds)


async def test_a_stall_is_logged_naming_the_plugin_call_and_its_stack_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failures = PluginFailureCounters()
    watchdog = LoopWatchdog(0.2, failures)
    watchdog.start()
    try:
        with plugin_call(PluginCall(CHECK, "sleepy", "run")):
            block_the_loop_in_a_plugin(1.5)
        await until(lambda: watchdog.longest_stall_seconds > 0, "the loop's answer after the stall")
    finally:
        watchdog.stop()

    assert watchdog.stalls == 1
    assert watchdog.longest_stall_seconds > 0.2
    assert failures.of(CHECK, "sleepy") == PluginFailures(CHECK, "sleepy", loop_stalls=1)
    [stalled] = [r for r in caplog.records if r.levelno == logging.WARNING and "has not answered" in r.getMessage()]
    message = stalled.getMessage()
    assert "check 'sleepy' run" in message
    assert "ORCH_LOOP_STALL_SECONDS=0.2s" in message
    assert "block_the_loop_in_a_plugin" in message  # the loop thread's stack
    assert any("answered again after a stall" in r.getMessage() for r in caplog.records)


async def test_a_stall_outside_any_plugin_call_is_counted_against_no_plugin(caplog: pytest.LogCaptureFixture) -> None:
    failures = PluginFailureCounters()
    watchdog = LoopWatchdog(0.2, failures)
    watchdog.start()
    try:
        time.sleep(1.5)
        await until(lambda: watchdog.longest_stall_seconds > 0, "the loop's answer after the stall")
    finally:
        watchdog.stop()
    assert watchdog.stalls == 1
    assert failures.snapshot() == ()
    assert any("(no plugin call)" in r.getMessage() for r in caplog.records)


async def test_the_stalled_time_is_kept_without_the_culprits_own() -> None:
    watchdog = LoopWatchdog(0.2)
    watchdog.start()
    try:
        culprit = asyncio.current_task()
        time.sleep(1.0)
        await until(lambda: watchdog.longest_stall_seconds > 0, "the loop's answer after the stall")
        total = watchdog.stalled_seconds()
        assert total > 0.2
        assert watchdog.stalled_seconds(excluding=culprit) < total
    finally:
        watchdog.stop()


async def test_stopping_ends_the_thread() -> None:
    watchdog = LoopWatchdog(0.2)
    watchdog.start()
    assert any(t.name == "orchestrator loop watchdog" and t.daemon for t in threading.enumerate())
    watchdog.stop()
    assert not any(t.name == "orchestrator loop watchdog" for t in threading.enumerate())


def test_a_threshold_of_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="above 0"):
        LoopWatchdog(0)


async def test_the_orchestrator_runs_a_watchdog_and_reports_its_stalls(make_orchestrator: MakeOrchestrator) -> None:
    orchestrator = await make_orchestrator(loop_stall_seconds=0.2)
    assert orchestrator.watchdog is not None
    with plugin_call(PluginCall(CHECK, "sleepy", "run")):
        time.sleep(1.5)
    await until(lambda: orchestrator.status().statistics.loop_stalls == 1, "the stall in the status")
    statistics = orchestrator.status().statistics
    assert statistics.longest_loop_stall_seconds >= 0  # set once the loop answers
    assert statistics.plugin_failures == (PluginFailures(CHECK, "sleepy", loop_stalls=1),)


async def test_a_stall_threshold_of_zero_turns_the_watchdog_off(make_orchestrator: MakeOrchestrator) -> None:
    orchestrator = await make_orchestrator(loop_stall_seconds=0)
    assert orchestrator.watchdog is None
    assert orchestrator.status().statistics.loop_stalls == 0
