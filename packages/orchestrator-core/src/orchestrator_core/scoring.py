"""From check results to a score and a verdict per proposal, and from those to a ranking.

**Viability** is defined here and nowhere else. A check *counts* when its verdict can sink a
proposal: the policy kind while ``policy_veto`` is on, and any kind whose weight is above
zero. A proposal is *viable* when at least one counting check judged it and it passed every
counting check that did. A check of a kind weighted 0 (and a policy check without the veto
and without weight) informs, but decides nothing.

**Ranking** puts every viable proposal above every non-viable one, then orders each group by
score (ties keep the council's order). The score alone can put a proposal that failed its
tests (0.9 from lint and policy) above one that passed everything (0.85); rank 1 should be
the best proposal that can be used, so viability comes first and the score only orders
within it. The scores themselves are left as the weights make them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from orchestrator_core.models import CheckKind, CheckResult, Proposal, RankedProposal


@dataclass(frozen=True)
class Scorer:
    """A weighted mean of check scores, by check kind, and the viability verdict.

    A proposal that no check judged scores 0: there is nothing to rank it by.
    """

    weights: Mapping[str, float] = field(default_factory=dict)
    default_weight: float = 1.0
    policy_veto: bool = True

    def weight(self, kind: str) -> float:
        return self.weights.get(kind, self.default_weight)

    def vetoes(self, kind: str) -> bool:
        """True when a failed check of this kind scores the proposal 0."""
        return self.policy_veto and kind == CheckKind.POLICY.value

    def counts(self, kind: str) -> bool:
        """True when a check of this kind decides viability: it has a veto or a weight above 0."""
        return self.vetoes(kind) or self.weight(kind) > 0

    def judged(self, results: Sequence[CheckResult]) -> bool:
        """True when at least one check that counts judged the proposal."""
        return any(self.counts(r.kind) for r in results)

    def viable(self, results: Sequence[CheckResult]) -> bool:
        """True when at least one check that counts judged the proposal and it passed every
        check that counts."""
        counting = [r for r in results if self.counts(r.kind)]
        return bool(counting) and all(r.passed for r in counting)

    def score(self, results: Sequence[CheckResult]) -> float:
        if any(self.vetoes(r.kind) and not r.passed for r in results):
            return 0.0
        total_weight = sum(self.weight(r.kind) for r in results)
        if total_weight <= 0:
            return 0.0
        return sum(self.weight(r.kind) * r.score for r in results) / total_weight


def rank(judged: Sequence[tuple[Proposal, tuple[CheckResult, ...]]], scorer: Scorer) -> tuple[RankedProposal, ...]:
    """Rank proposals best first: viable ones above the rest, each group by score; ties keep
    the given (council) order.

    Every deliberation ranks, most with a few checks per proposal or none, so this does no
    more than it must: a proposal no check judged is not viable and scores 0 without asking
    the scorer, and the sort is stable, so its key needs no position to keep ties in order."""
    scored = [
        (scorer.viable(checks), scorer.score(checks), proposal, checks) if checks else (False, 0.0, proposal, checks)
        for proposal, checks in judged
    ]
    scored.sort(key=_best_first)
    return tuple(
        RankedProposal(proposal, checks, score, rank_number, viable)
        for rank_number, (viable, score, proposal, checks) in enumerate(scored, start=1)
    )


def _best_first(item: tuple[bool, float, Proposal, tuple[CheckResult, ...]]) -> tuple[bool, float]:
    return not item[0], -item[1]


def no_viable_message(scorer: Scorer, results: Sequence[RankedProposal]) -> str:
    """Says that nothing passed, how many proposals a counting check judged, and what the
    best one failed."""
    total = len(results)
    judged = sum(1 for r in results if scorer.judged(r.checks))
    message = (
        f"no viable proposal: no proposal passed its checks ({judged} of {total} proposal(s) "
        "judged by a check with a veto or a weight above zero)"
    )
    if total and judged == 0:
        return message + "; install or weight a check (ORCH_CHECK_WEIGHTS) so proposals can be judged"
    best = next((r for r in results if scorer.judged(r.checks)), None)
    if best is not None:
        failed = sorted({c.name for c in best.checks if scorer.counts(c.kind) and not c.passed})
        message += f"; the best, {best.proposal.proposal_id}, failed {', '.join(failed)}"
    return message
