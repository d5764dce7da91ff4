"""Ask the service for one problem's answer in one arm, through the public API.

The task is the problem's prompt (signature and docstring) and, as its only tests, the
examples of the docstring (see :mod:`orchestrator_grpc.evaluation.examples`): what a user of
the service would have. The problem's hidden tests are never part of the request.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import cast

import grpc

from orchestrator_core.models import CheckKind, RankedProposal, Task, TaskConstraints, TokenUsage
from orchestrator_grpc.client import OrchestratorClient
from orchestrator_grpc.evaluation.arms import ArmPlan
from orchestrator_grpc.evaluation.humaneval import Problem
from orchestrator_grpc.evaluation.problem_tests import SOLUTION_MODULE, visible_tests
from orchestrator_grpc.status import DELIBERATION_ID_METADATA

TASK_TEMPLATE = """\
Complete the Python function `{entry_point}` below. Reply with the whole module \
`{module}.py` in one fenced Python code block: its imports, any helper function shown, and \
`{entry_point}` with a working body.

```python
{prompt}
```"""

# An Orchestrate that found no viable proposal (FAILED_PRECONDITION naming its record) and a
# deliberation out of time are the arm's answer to the problem: final, not asked again. Any
# other failure (an unreachable server, a prompt too long for the model, ...) is a fault of
# the run: an error, asked again by a rerun.

class AnswerStatus:
    ANSWERED = "answered"
    NO_ANSWER = "no-answer"
    """The service gave no proposal: nothing viable for Orchestrate, or the time ran out."""
    ERROR = "error"
    """The call failed for a reason that says nothing about the arm (the server was down...)."""


@dataclass(frozen=True)
class Answer:
    """What the service returned for one problem in one arm."""

    status: str
    final: RankedProposal | None
    candidates: tuple[RankedProposal, ...]
    usage: TokenUsage
    seconds: float
    deliberation_id: str = ""
    error: str = ""
    viable: int = 0
    selected_by: str = ""
    models: tuple[str, ...] = field(default_factory=tuple)


def task_for(problem: Problem, role: str) -> Task:
    description = TASK_TEMPLATE.format(
        entry_point=problem.entry_point, module=SOLUTION_MODULE, prompt=problem.prompt.rstrip()
    )
    return Task(role=role, description=description, constraints=TaskConstraints(tests=(visible_tests(problem),)))


def dryrun_passed(result: RankedProposal | None) -> bool | None:
    """Whether the final proposal passed the visible tests in the service's dry-run check;
    None when no dry-run check judged it."""
    if result is None:
        return None
    verdicts = [check.passed for check in result.checks if check.kind == CheckKind.DRYRUN]
    return all(verdicts) if verdicts else None


async def ask(client: OrchestratorClient, problem: Problem, plan: ArmPlan, *, role: str,
              request_id: str, deadline: float | None) -> Answer:
    task = task_for(problem, role)
    started = time.perf_counter()
    try:
        if plan.orchestrate:
            orchestration = await client.orchestrate(
                task, num_agents=plan.num_agents, rounds=plan.rounds, top_k=plan.top_k,
                request_id=request_id, deadline=deadline,
            )
            outcome, selection = orchestration.outcome, orchestration.selection
            answer = Answer(
                AnswerStatus.ANSWERED, selection.winner, outcome.results, outcome.usage + selection.usage,
                time.perf_counter() - started, outcome.deliberation_id, viable=outcome.viable_proposals,
                selected_by=selection.selected_by,
            )
        else:
            outcome = await client.deliberate(
                task, num_agents=plan.num_agents, rounds=plan.rounds, request_id=request_id, deadline=deadline
            )
            answer = Answer(
                AnswerStatus.ANSWERED, outcome.results[0] if outcome.results else None, outcome.results,
                outcome.usage, time.perf_counter() - started, outcome.deliberation_id,
                viable=outcome.viable_proposals, selected_by="rank",
            )
    except grpc.aio.AioRpcError as error:
        answer = await _failed(client, task, error, time.perf_counter() - started)
    return await _with_models(client, answer)


async def _failed(client: OrchestratorClient, task: Task, error: grpc.aio.AioRpcError, seconds: float) -> Answer:
    message = f"{error.code().name}: {error.details()}"
    # grpc.aio's Metadata yields (key, value) pairs, whatever its stubs say.
    metadata = cast(Iterable[tuple[str, str | bytes]], error.trailing_metadata() or ())
    deliberation_id = next((str(value) for key, value in metadata if key == DELIBERATION_ID_METADATA), "")
    no_viable = error.code() is grpc.StatusCode.FAILED_PRECONDITION and bool(deliberation_id)
    if not no_viable and error.code() is not grpc.StatusCode.DEADLINE_EXCEEDED:
        return Answer(AnswerStatus.ERROR, None, (), TokenUsage(), seconds, error=message)
    candidates: tuple[RankedProposal, ...] = ()
    usage = TokenUsage()
    if deliberation_id:
        from orchestrator_grpc import convert

        try:
            record = await client.get_deliberation(deliberation_id)
        except grpc.aio.AioRpcError:
            record = None  # the answer stands without its ranking
        if record is not None:
            usage = convert.usage_from_proto(record.usage)
            if record.HasField("response"):
                candidates = convert.outcome_from_proto(record.response, task).results
    return Answer(AnswerStatus.NO_ANSWER, None, candidates, usage, seconds, deliberation_id,
                  error=message, viable=sum(1 for c in candidates if c.viable))


async def _with_models(client: OrchestratorClient, answer: Answer) -> Answer:
    """The answer with the backend and model of each seat of the council that gave it, from
    the deliberation's record."""
    if not answer.deliberation_id:
        return answer
    try:
        record = await client.get_deliberation(answer.deliberation_id)
    except grpc.aio.AioRpcError:
        return answer
    seats = tuple(dict.fromkeys(f"{seat.backend}:{seat.model}" for seat in record.council))
    return dataclasses.replace(answer, models=seats)
