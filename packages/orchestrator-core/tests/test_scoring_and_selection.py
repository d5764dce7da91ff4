"""Weighted scores, ranking, and choosing a winner."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator_core.errors import BackendUnavailable
from orchestrator_core.models import CheckResult, Phase, Proposal, RankedProposal, Task
from orchestrator_core.scoring import Scorer, rank
from orchestrator_core.selection import parse_choice, select_winner
from orchestrator_core.testing import ScriptedAgent

TASK = Task(role="DEV", description="anything")


def result(kind: str, score: float, passed: bool = True) -> CheckResult:
    return CheckResult(name=kind, kind=kind, passed=passed, score=score)


def proposal(author: str) -> Proposal:
    return Proposal(proposal_id=f"{author}-v0", author_id=author, role="DEV", content=f"by {author}")


def candidates(n: int) -> tuple[RankedProposal, ...]:
    return tuple(
        RankedProposal(proposal(f"dev-{i + 1}"), (), score=1 - i / 10, rank=i + 1, viable=True) for i in range(n)
    )


def test_score_is_the_weighted_mean_by_kind() -> None:
    scorer = Scorer(weights={"lint": 1.0, "dryrun": 3.0})
    assert scorer.score([result("lint", 0.2), result("dryrun", 1.0)]) == pytest.approx((0.2 + 3.0) / 4)


def test_unnamed_kinds_take_the_default_weight() -> None:
    scorer = Scorer(weights={"lint": 1.0}, default_weight=0.0)
    assert scorer.score([result("lint", 0.5), result("style", 1.0)]) == pytest.approx(0.5)


def test_a_failed_policy_vetoes_when_configured() -> None:
    judged = [result("policy", 0.9, passed=False), result("dryrun", 1.0)]
    assert Scorer(policy_veto=True).score(judged) == 0.0
    assert Scorer(policy_veto=False).score(judged) == pytest.approx(0.95)


def test_no_checks_score_zero() -> None:
    assert Scorer().score([]) == 0.0


def test_check_scores_outside_the_unit_interval_are_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        CheckResult(name="x", kind="lint", passed=True, score=1.5)


def test_ranking_is_by_score_and_ties_keep_council_order() -> None:
    judged = [
        (proposal("dev-1"), (result("lint", 0.5),)),
        (proposal("dev-2"), (result("lint", 0.9),)),
        (proposal("dev-3"), (result("lint", 0.5),)),
    ]
    ranked = rank(judged, Scorer())
    assert [(r.proposal.author_id, r.rank) for r in ranked] == [("dev-2", 1), ("dev-1", 2), ("dev-3", 3)]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('{"choice": 2, "rationale": "cleaner"}', (1, "cleaner")),
        ('I pick:\n```json\n{"choice": "3", "rationale": "tested"}\n```', (2, "tested")),
        ('{"choice": "dev-2-v0", "rationale": "by id"}', (1, "by id")),
        ("After review.\nCHOICE: 1\nIt handles the edge cases.", (0, "After review.\n\nIt handles the edge cases.")),
        ('{"other": 1} then {"choice": 3, "rationale": "second object"}', (2, "second object")),
    ],
)
def test_selection_replies_are_read_leniently(reply: str, expected: tuple[int, str]) -> None:
    assert parse_choice(reply, candidates(3)) == expected


NESTED = '{"choice": 1, "x": ' + "[" * 100_000 + "}"
HUGE_NUMBER = '{"choice": 1' + "0" * 5000 + "}"


@pytest.mark.parametrize(
    "reply",
    [NESTED, HUGE_NUMBER, '{"choice": 4}', '{"choice": 0}', '{"choice": true}', "I like the second one",
     "CHOICE: 9", "{broken"],
)
def test_replies_naming_no_valid_candidate_are_rejected(reply: str) -> None:
    assert parse_choice(reply, candidates(3)) is None


async def test_the_selector_chooses_among_the_top_k() -> None:
    selector = ScriptedAgent(agent_id="architect-1", choice=2, rationale="simpler design")
    selection = await select_winner(TASK, candidates(5), selector, top_k=3, timeout_seconds=5)
    assert selection.winner.proposal.author_id == "dev-2"
    assert selection.rationale == "simpler design"
    assert selection.selected_by == "architect-1"
    assert len(selection.candidates) == 3


async def test_without_a_selector_the_top_score_wins() -> None:
    selection = await select_winner(TASK, candidates(3), None, top_k=3, timeout_seconds=5)
    assert selection.winner.rank == 1
    assert selection.selected_by == "score"
    assert "ranks first by check score (1.000)" in selection.rationale


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (BackendUnavailable("overloaded"), "overloaded"),  # the backend's own words
        (  # a plugin's bug, named as in a council
            RuntimeError("overloaded"),
            "RuntimeError: overloaded "
            "[a bug in backend 'ScriptedAgent' (agent architect-1 select); see the service log]",
        ),
    ],
)
async def test_a_selector_that_fails_falls_back_to_the_top_score(error: Exception, said: str) -> None:
    selector = ScriptedAgent(agent_id="architect-1", fail_in={Phase.SELECT: error})
    selection = await select_winner(TASK, candidates(3), selector, top_k=3, timeout_seconds=5)
    assert selection.winner.rank == 1
    assert selection.failure is not None
    assert selection.failure.phase is Phase.SELECT
    assert selection.failure.error == said
    assert selection.rationale.endswith(f"; the selector architect-1 failed: {said}")


async def test_a_selector_naming_nobody_falls_back_to_the_top_score() -> None:
    selector = ScriptedAgent(agent_id="architect-1", choice=7)
    selection = await select_winner(TASK, candidates(3), selector, top_k=3, timeout_seconds=5)
    assert selection.selected_by == "score"
    assert "architect-1 named no valid candidate" in selection.rationale


async def test_a_selector_that_hangs_times_out() -> None:
    selector = ScriptedAgent(agent_id="architect-1", hang_in=frozenset({Phase.SELECT}))
    async with asyncio.timeout(10):
        selection = await select_winner(TASK, candidates(2), selector, top_k=2, timeout_seconds=0.05)
    assert selection.failure is not None
    assert selection.failure.error == (
        "timed out after 0.05s (backend 'ScriptedAgent', agent architect-1 select; bound: ORCH_AGENT_TIMEOUT_SECONDS)"
    )
