"""The conformance kit's verifications of a check."""

from __future__ import annotations

import asyncio
import inspect
import math

from orchestrator_core.check_runs import runs_off_loop
from orchestrator_core.conformance_support import (
    DEFAULT_LIMITS,
    HOSTILE_TEXTS,
    PROPOSAL_TEXT,
    ROLE,
    TASK,
    ConformanceError,
    Limits,
    _cancel_each,
    _check_async_method,
    _councils,
    _deliberate,
    _guarded,
    _label,
    _LoopWatch,
    _no_failures,
    _orchestrator,
)
from orchestrator_core.hookspecs import (
    Check,
)
from orchestrator_core.models import (
    CheckResult,
    Proposal,
    Task,
    TaskConstraints,
)

# -- checks --------------------------------------------------------------------------------


def _proposal(content: str, n: int = 1) -> Proposal:
    return Proposal(proposal_id=f"dev-{n}-v0", author_id=f"dev-{n}", role=ROLE, content=content)


def _check_result(check: Check, result: object, what: str) -> CheckResult:
    if not isinstance(result, CheckResult):
        raise ConformanceError(f"{what} returned {type(result).__name__}, not a CheckResult")
    if (result.name, result.kind) != (check.name, check.kind):
        raise ConformanceError(
            f"{what} returned a result named {result.name!r} of kind {result.kind!r}; it must carry the check's own "
            f"name and kind ({check.name!r}, {check.kind!r}): results are reported and weighted by them"
        )
    if not isinstance(result.passed, bool):
        raise ConformanceError(f"{what} returned passed={result.passed!r}: a bool")
    if not isinstance(result.score, int | float) or not math.isfinite(result.score) or not 0 <= result.score <= 1:
        raise ConformanceError(f"{what} returned score {result.score!r}: a number in [0, 1]")
    if not isinstance(result.diagnostics, tuple) or not all(isinstance(d, str) for d in result.diagnostics):
        raise ConformanceError(f"{what} returned diagnostics {result.diagnostics!r}: a tuple of str")
    duration = result.duration_seconds
    if not isinstance(duration, int | float) or not math.isfinite(duration) or duration < 0:
        raise ConformanceError(f"{what} returned duration_seconds {duration!r}: a finite number >= 0")
    return result


async def _invoke(check: Check, task: Task, proposal: Proposal) -> object:
    """One run of the check, where the engine would run it: on the loop, or in a thread."""
    if not runs_off_loop(check):
        return await check.run(task, proposal)

    def in_thread() -> object:
        result: object = check.run(task, proposal)
        if inspect.isawaitable(result):
            awaitable = result

            async def wait() -> object:
                return await awaitable

            return asyncio.run(wait())
        return result

    return await asyncio.to_thread(in_thread)


async def _run_check(check: Check, task: Task, proposal: Proposal, limits: Limits, what: str) -> CheckResult:
    try:
        async with _LoopWatch(limits, what):
            result = await _guarded(_invoke(check, task, proposal), limits, what)
    except ConformanceError:
        raise
    except Exception as exc:
        raise ConformanceError(
            f"{what} raised {type(exc).__name__}: {exc}; a check judges every proposal it is given and says what "
            "it found in a CheckResult (passed=False and a diagnostic for what it cannot judge)"
        ) from exc
    return _check_result(check, result, what)


async def verify_check_contract(check: Check) -> None:
    """The check has a name, a kind and a ``run(task, proposal)``: ``async def``, or a plain
    def that the engine runs in a worker thread (as it does any check with ``blocking = True``)."""
    label = _label(check)
    for attribute in ("name", "kind"):
        value = getattr(check, attribute, None)
        if not isinstance(value, str) or not value.strip():
            raise ConformanceError(
                f"{label} has no {attribute}: give the check a non-empty str attribute {attribute!r}"
            )
    if not isinstance(check, Check):
        raise ConformanceError(f"{label} is not a Check: it needs `name`, `kind` and `async def run(task, proposal)`")
    if inspect.iscoroutinefunction(check.run):
        _check_async_method(check, "run", ("task", "proposal"), label)
        return
    # a plain def run is a blocking check: the engine runs it in a worker thread
    try:
        inspect.signature(check.run).bind("task", "proposal")
    except TypeError as exc:
        raise ConformanceError(
            f"{label}.run{inspect.signature(check.run)} cannot be called as run(task, proposal): {exc}"
        ) from None


async def verify_check_result(check: Check, limits: Limits = DEFAULT_LIMITS) -> None:
    """``run()`` returns a CheckResult with the check's name and kind, a bool verdict, a
    score in [0, 1] and str diagnostics, without blocking the event loop."""
    await _run_check(check, TASK, _proposal(PROPOSAL_TEXT), limits, f"{_label(check)}.run()")


async def verify_check_hostile_inputs(check: Check, limits: Limits = DEFAULT_LIMITS) -> None:
    """``run()`` judges each hostile text (as the proposal and as the task) and an empty
    proposal, returning a valid result: a client controls all of them."""
    cases = {**HOSTILE_TEXTS, "an empty proposal": ""}
    for name, text in cases.items():
        task = Task(ROLE, text or TASK.description, TaskConstraints(rubric=text))
        await _run_check(check, task, _proposal(text), limits, f"{_label(check)}.run() on {name}")


async def verify_check_concurrency(check: Check, limits: Limits = DEFAULT_LIMITS, *, runs: int = 8) -> None:
    """``runs`` runs at once (the engine checks every proposal concurrently), each valid."""
    what = f"{runs} runs at once of {_label(check)}"
    proposals = [_proposal(PROPOSAL_TEXT.replace("add", f"add{n}"), n) for n in range(1, runs + 1)]
    try:
        async with _LoopWatch(limits, what):
            results = await _guarded(asyncio.gather(*(_invoke(check, TASK, p) for p in proposals)), limits, what)
    except ConformanceError:
        raise
    except Exception as exc:
        raise ConformanceError(f"{what}: one raised {type(exc).__name__}: {exc}") from exc
    for result in results:
        _check_result(check, result, what)


async def verify_check_cancellation(check: Check, limits: Limits = DEFAULT_LIMITS) -> None:
    """A run ends when cancelled (a timed-out check, a cancelled deliberation)."""
    await _cancel_each(_label(check), {"run": lambda: _invoke(check, TASK, _proposal(PROPOSAL_TEXT))}, limits)


async def verify_check_in_engine(check: Check, limits: Limits = DEFAULT_LIMITS, *, agents: int = 3) -> None:
    """The check judges every proposal of a real deliberation (scripted agents): each ranked
    proposal has its result, and none is the engine's report of an error or a timeout."""
    from orchestrator_core.testing import ScriptedBackend

    backend = ScriptedBackend(name="conformance-scripted", defaults={"proposal": PROPOSAL_TEXT})
    async with _orchestrator(
        [backend], [check], limits, councils=_councils(backend, {}, agents), check_timeout_seconds=limits.guard_seconds
    ) as orchestrator:
        what = f"a deliberation checked by {_label(check)}"
        async with _LoopWatch(limits, what):
            outcome = await _deliberate(orchestrator, TASK, 1, limits, what)
        _no_failures(outcome, what)
        for ranked in outcome.results:
            mine = [r for r in ranked.checks if r.name == check.name]
            if len(mine) != 1:
                raise ConformanceError(
                    f"{what}: proposal {ranked.proposal.proposal_id} has {len(mine)} results named {check.name!r}"
                )
            reported = " ".join(mine[0].diagnostics)
            if "check error" in reported or "timed out" in reported:
                raise ConformanceError(f"{what}: the engine reported {reported!r} for {ranked.proposal.proposal_id}")
