"""Score a final answer on the problem's hidden tests, afterwards, in the dry-run sandbox.

Generated code runs only in the sandbox of the ``dryrun`` check (``agents-contrib``): the
same isolation, limits and conduct rules as the service's own dry-runs, so a hostile answer
is contained and a misbehaving one fails. The hidden tests reach nothing but this check,
and only once the service has returned its answer. Identical code is judged once.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from orchestrator_core.models import Proposal, Task, TaskConstraints
from orchestrator_grpc.evaluation.humaneval import Problem
from orchestrator_grpc.evaluation.problem_tests import hidden_tests

if TYPE_CHECKING:
    from agents_contrib.checks.dryrun import DryRunCheck

DIAGNOSTIC_LINES = 12
"""How many lines of the check's diagnostics a verdict keeps (the failing assertion is early)."""


class JudgeUnavailable(Exception):
    """The sandbox to run hidden tests in is not installed; the message says what to install."""


@dataclass(frozen=True)
class Verdict:
    passed: bool
    score: float
    diagnostics: tuple[str, ...] = ()


class HiddenTestJudge:
    """Runs a problem's hidden tests against proposal contents, one sandboxed run per
    distinct (problem, content), at most ``concurrency`` at once: the dry-run check leaves
    its cap to its caller (in the service, the engine's heavy-check slots). Keep it at or
    below ``ORCH_DRYRUN_CONCURRENCY``, the sandbox's uids."""

    def __init__(self, check: DryRunCheck | None = None, *, concurrency: int = 2) -> None:
        self._check = check or _default_check()
        self._verdicts: dict[str, asyncio.Future[Verdict]] = {}
        self._running = asyncio.Semaphore(max(1, concurrency))

    async def judge(self, problem: Problem, content: str) -> Verdict:
        key = hashlib.sha256(f"{problem.task_id}\0{content}".encode()).hexdigest()
        pending = self._verdicts.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._run(problem, content))
            self._verdicts[key] = pending
        return await asyncio.shield(pending)

    async def _run(self, problem: Problem, content: str) -> Verdict:
        task = Task(role="eval", description=problem.task_id,
                    constraints=TaskConstraints(tests=(hidden_tests(problem),)))
        proposal = Proposal(proposal_id="answer", author_id="answer", role="eval", content=content)
        async with self._running:
            result = await self._check.run(task, proposal)
        return Verdict(result.passed, result.score, tuple(result.diagnostics[:DIAGNOSTIC_LINES]))


def _default_check() -> DryRunCheck:
    try:
        from agents_contrib.checks.dryrun import DryRunCheck
    except ImportError as exc:
        raise JudgeUnavailable(
            "scoring answers needs the dry-run sandbox of agents-contrib: "
            "pip install 'orchestrator-grpc[eval]' (or agents-contrib)"
        ) from exc
    return DryRunCheck()
