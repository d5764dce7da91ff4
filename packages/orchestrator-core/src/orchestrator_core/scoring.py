"""From check results to a score per proposal, and from scores to a ranking."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from orchestrator_core.models import CheckKind, CheckResult, Proposal, RankedProposal


@dataclass(frozen=True)
class Scorer:
    """A weighted mean of check scores, by check kind.

    A proposal that no check judged scores 0: there is nothing to rank it by.
    """

    weights: Mapping[str, float] = field(default_factory=dict)
    default_weight: float = 1.0
    policy_veto: bool = True

    def weight(self, kind: str) -> float:
        return self.weights.get(kind, self.default_weight)

    def score(self, results: Sequence[CheckResult]) -> float:
        if self.policy_veto and any(
            r.kind == CheckKind.POLICY.value and not r.passed for r in results
        ):
            return 0.0
        total_weight = sum(self.weight(r.kind) for r in results)
        if total_weight <= 0:
            return 0.0
        return sum(self.weight(r.kind) * r.score for r in results) / total_weight


def rank(
    judged: Sequence[tuple[Proposal, tuple[CheckResult, ...]]], scorer: Scorer
) -> tuple[RankedProposal, ...]:
    """Rank proposals by score, best first; ties keep the given (council) order."""
    scored = [(scorer.score(checks), position, proposal, checks)
              for position, (proposal, checks) in enumerate(judged)]
    scored.sort(key=lambda item: (-item[0], item[1]))
    return tuple(
        RankedProposal(proposal=proposal, checks=checks, score=score, rank=rank_number)
        for rank_number, (score, _, proposal, checks) in enumerate(scored, start=1)
    )
