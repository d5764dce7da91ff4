"""One check of one proposal, as the deliberation engine runs it.

Checks run concurrently, each within its own budget: its ``timeout_seconds`` when it declares
one (a positive number), else ``check_timeout_seconds`` (ORCH_CHECK_TIMEOUT_SECONDS), measured
without the loop stalls other tasks caused (:class:`~orchestrator_core.plugin_calls.Budget`).
A check that declares ``blocking = True``, or whose ``run`` is not a coroutine function, runs
in a daemon thread of its own, off the event loop. A check's result is identified by the
check's name: the engine gives it the check's declared name and kind, whatever the check
wrote. A check that raises, returns something other than a CheckResult or a score outside
[0, 1] has a bug: the proposal fails that check, and the bug is logged with its traceback and
counted against the check; a check that times out fails that proposal's check, naming the
bound.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import time
from dataclasses import replace
from functools import partial

from orchestrator_core.hookspecs import Check
from orchestrator_core.models import CheckResult, Proposal, Task
from orchestrator_core.plugin_calls import (
    CHECK,
    Budget,
    OffLoopRunner,
    PluginCall,
    count_failure,
    log_plugin_bug,
    plugin_call,
)
from orchestrator_core.telemetry import CheckScope

log = logging.getLogger(__name__)

CHECK_TIMEOUT_SETTING = "ORCH_CHECK_TIMEOUT_SECONDS"


async def run_check(
check: Check,
task: Task,
proposal: Proposal,
scope: CheckScope,
*,
timeout_seconds: float,
heavy_slots: asyncio.Semaphore,
off_loop: OffLoopRunner,
) -> tuple[CheckResult, float]:
    """``check``'s result on ``proposal`` and when it began to run (after any wait for one of
    the ``heavy_slots``, which ``scope`` records with how the check ended). Never raises for
    the check's own failings: they are a failed result. ``timeout_seconds`` is the server's
    bound, for a check that declares none."""
    named = PluginCall(CHECK, check.name, "run")
    seconds, setting = check_bound(check, timeout_seconds)
    started, started_at = time.monotonic(), time.time()
    try:
        if getattr(check, "heavy", False):
            async with heavy_slots:
                scope.waited_seconds = time.monotonic() - started
                started, started_at = time.monotonic(), time.time()
                result = await _run(check, task, proposal, named, seconds, off_loop)
        else:
            result = await _run(check, task, proposal, named, seconds, off_loop)
        scope.outcome = "passed" if result.passed else "failed"
    except _CheckTimedOut:
        message = f"timed out: {named} did not finish within {seconds:g}s ({setting})"
        log.warning("%s (proposal %s)", message, proposal.proposal_id)
        count_failure(named, "timeouts")
        result = _failed(check, message, started)
        scope.outcome = "timeout"
    except Exception as exc:
        log_plugin_bug(named, exc, f"proposal {proposal.proposal_id}")
        result = _failed(
            check,
            f"check error: {type(exc).__name__}: {exc} {named.bug_note}",
            started,
        )
        scope.outcome = "error"
    return result, started_at

async def _run(
check: Check, task: Task, proposal: Proposal, named: PluginCall, seconds: float, off_loop: OffLoopRunner
) -> CheckResult:
    budget = Budget(seconds, strict=True)
    result: object
    try:
        with plugin_call(named):
            async with budget:
                if runs_off_loop(check):
                    result = await off_loop.run(named, partial(check.run, task, proposal))
                else:
                    result = await check.run(task, proposal)
    except TimeoutError:
        if budget.expired:
            raise _CheckTimedOut from None
        raise
    if not isinstance(result, CheckResult):
        raise TypeError(f"returned {type(result).__name__}, not a CheckResult")
    if not (isinstance(result.score, int | float) and math.isfinite(result.score) and 0 <= result.score <= 1):
        raise ValueError(f"returned score {result.score!r}, outside [0, 1]")
    if (result.name, result.kind) != (check.name, check.kind):
        log.warning("%s returned a result named %r of kind %r; it is the check's own, %r of kind %r",
                    named, result.name, result.kind, check.name, check.kind)
        result = replace(result, name=check.name, kind=check.kind)
    return result

def _failed(check: Check, reason: str, started: float) -> CheckResult:
    return CheckResult(
        name=check.name,
        kind=check.kind,
        passed=False,
        score=0.0,
        diagnostics=(reason,),
        duration_seconds=time.monotonic() - started,
    )


class _CheckTimedOut(Exception):
    """A check's budget ran out (not a TimeoutError the check raised itself)."""


def check_bound(check: Check, default_seconds: float) -> tuple[float, str]:
    """A check's timeout and what sets it: its own ``timeout_seconds`` when that is a positive
    number, else the server's (ORCH_CHECK_TIMEOUT_SECONDS)."""
    own = getattr(check, "timeout_seconds", None)
    if isinstance(own, int | float) and not isinstance(own, bool) and math.isfinite(own) and own > 0:
        return float(own), "the check's timeout_seconds"
    return default_seconds, CHECK_TIMEOUT_SETTING


def runs_off_loop(check: Check) -> bool:
    """True for a check that blocks: it declares ``blocking = True``, or its ``run`` is not a
    coroutine function."""
    if getattr(check, "blocking", False) is True:
        return True
    return not inspect.iscoroutinefunction(check.run)
