"""Run every (problem, arm) pair not yet finished, a few at a time, and keep each result.

Arms of one problem run one after the other in a fixed order, and ``concurrency`` pairs run
at once. A pair is judged on the hidden tests as soon as the service has answered, and its
row is appended at once, so an interrupted run loses at most the pairs in flight.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from orchestrator_grpc.client import OrchestratorClient
from orchestrator_grpc.evaluation.arms import ArmPlan
from orchestrator_grpc.evaluation.asking import Answer, AnswerStatus, ask, dryrun_passed
from orchestrator_grpc.evaluation.humaneval import Problem
from orchestrator_grpc.evaluation.judging import HiddenTestJudge, Verdict
from orchestrator_grpc.evaluation.results import CandidateResult, ResultsFile, Row

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Pair:
    problem: Problem
    plan: ArmPlan


def deliberation_sample(problems: Sequence[Problem], size: int | None, seed: int | None) -> set[str]:
    """The task ids the deliberating arms run on: all of ``problems``, or a fixed sample of
    ``size`` of them (seeded, so every rerun draws the same one)."""
    if size is None or size >= len(problems):
        return {p.task_id for p in problems}
    chosen = random.Random(seed if seed is not None else 0).sample(list(problems), size)
    return {p.task_id for p in chosen}


def plan_pairs(problems: Sequence[Problem], plans: Sequence[ArmPlan], sample: set[str]) -> list[Pair]:
    return [
        Pair(problem, plan)
        for problem in problems
        for plan in plans
        if not plan.arm.deliberates or problem.task_id in sample
    ]


class Evaluation:
    def __init__(self, client: OrchestratorClient, judge: HiddenTestJudge, results: ResultsFile, *,
                 role: str, concurrency: int, deadline: float | None, progress: Progress) -> None:
        self._client = client
        self._judge = judge
        self._results = results
        self._role = role
        self._slots = asyncio.Semaphore(max(1, concurrency))
        self._deadline = deadline
        self._progress = progress

    async def run(self, pairs: Sequence[Pair]) -> list[Row]:
        """Runs the unfinished pairs; returns the rows written."""
        todo = [p for p in pairs if not self._results.finished(p.problem.task_id, p.plan.key)]
        self._progress(f"{len(pairs) - len(todo)} of {len(pairs)} (problem, arm) pairs already finished; "
                       f"{len(todo)} to run")
        by_problem: dict[str, list[Pair]] = {}
        for pair in todo:
            by_problem.setdefault(pair.problem.task_id, []).append(pair)
        written: list[Row] = []
        async with asyncio.TaskGroup() as group:
            for problem_pairs in by_problem.values():
                group.create_task(self._problem(problem_pairs, written))
        return written

    async def _problem(self, pairs: Sequence[Pair], written: list[Row]) -> None:
        async with self._slots:
            for pair in pairs:
                row = await self._pair(pair)
                self._results.add(row)
                written.append(row)
                self._progress(_describe(row))

    async def _pair(self, pair: Pair) -> Row:
        answer = await ask(self._client, pair.problem, pair.plan, role=self._role, request_id="",
                           deadline=self._deadline)
        verdicts = await asyncio.gather(
            *(self._judge.judge(pair.problem, c.proposal.content) for c in answer.candidates)
        )
        final = await self._judge.judge(pair.problem, answer.final.proposal.content) if answer.final else None
        return _row(pair, answer, final, verdicts)


def _row(pair: Pair, answer: Answer, final: Verdict | None, verdicts: Sequence[Verdict]) -> Row:
    return Row(
        task_id=pair.problem.task_id,
        number=pair.problem.number,
        arm=pair.plan.arm.value,
        arm_key=pair.plan.key,
        status=answer.status,
        final_code=answer.final.proposal.content if answer.final else None,
        hidden_passed=bool(final and final.passed),
        hidden_score=final.score if final else 0.0,
        hidden_diagnostics=final.diagnostics if final else (),
        visible_passed=dryrun_passed(answer.final),
        prompt_tokens=answer.usage.prompt_tokens,
        completion_tokens=answer.usage.completion_tokens,
        seconds=round(answer.seconds, 3),
        deliberation_id=answer.deliberation_id,
        viable=answer.viable,
        selected_by=answer.selected_by,
        error=answer.error,
        models=answer.models,
        candidates=tuple(
            CandidateResult(c.proposal.author_id, c.rank, round(c.score, 4), c.viable, v.passed)
            for c, v in zip(answer.candidates, verdicts, strict=True)
        ),
    )


def _describe(row: Row) -> str:
    if not row.finished:
        return f"{row.task_id} {row.arm}: error ({row.error}); a rerun asks again"
    verdict = f"{'passed' if row.hidden_passed else 'failed'} the hidden tests"
    if row.status != AnswerStatus.ANSWERED:
        verdict = f"no answer ({row.error})"
    return f"{row.task_id} {row.arm}: {verdict}; {row.total_tokens} tokens, {row.seconds:.1f} s"
