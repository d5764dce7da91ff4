"""pass@1 per arm with a 95 % Wilson interval, cost per problem, and the oracle gap.

pass@1 here is the share of problems whose one returned answer passed the hidden tests
(one answer per problem and arm, so no unbiased-estimator sampling is involved). The
*oracle gap* is how often a correct proposal existed among those the council ranked but
was not the one returned: the share of problems better checks (or a better selector) could
have won without a better model.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from orchestrator_grpc.evaluation.results import Row

Z_95 = 1.959963984540054
"""The standard normal quantile of a two-sided 95 % interval."""


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion; (0, 1) when there are no trials."""
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes} of {trials}")
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class ArmSummary:
    arm: str
    arm_key: str
    problems: int
    solved: int
    errors: int
    oracle_solved: int
    tokens: int
    seconds: float
    visible_passed: int

    @property
    def pass_at_1(self) -> float:
        return self.solved / self.problems if self.problems else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.solved, self.problems)

    @property
    def oracle_gap(self) -> int:
        """Problems where a correct proposal was ranked but not returned."""
        return self.oracle_solved - self.solved

    @property
    def tokens_per_problem(self) -> float:
        return self.tokens / self.problems if self.problems else 0.0

    @property
    def tokens_per_solved(self) -> float | None:
        return self.tokens / self.solved if self.solved else None

    @property
    def seconds_per_problem(self) -> float:
        return self.seconds / self.problems if self.problems else 0.0


def summarise(rows: Iterable[Row], arm_key: str, only: set[str] | None = None) -> ArmSummary:
    """One arm's figures over its finished rows (restricted to the task ids in ``only``)."""
    chosen = [r for r in rows if r.arm_key == arm_key and (only is None or r.task_id in only)]
    finished = [r for r in chosen if r.finished]
    arm = chosen[0].arm if chosen else arm_key.split(":", 1)[0]
    return ArmSummary(
        arm=arm,
        arm_key=arm_key,
        problems=len(finished),
        solved=sum(1 for r in finished if r.hidden_passed),
        errors=len(chosen) - len(finished),
        oracle_solved=sum(1 for r in finished if r.oracle_passed),
        tokens=sum(r.total_tokens for r in finished),
        seconds=sum(r.seconds for r in finished),
        visible_passed=sum(1 for r in finished if r.visible_passed),
    )


def common_problems(rows: Sequence[Row], arm_keys: Sequence[str]) -> set[str]:
    """The task ids every one of the arms finished: where the arms compare like for like."""
    sets = [{r.task_id for r in rows if r.arm_key == key and r.finished} for key in arm_keys]
    return set.intersection(*sets) if sets else set()
