"""Viability: which proposals passed their checks, how they rank, and what Orchestrate does
when none did."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator_core.errors import NoViableProposal
from orchestrator_core.models import CheckResult, Proposal, RankedProposal, Task
from orchestrator_core.orchestrator import DeliberationRequest
from orchestrator_core.records import RecordStatus
from orchestrator_core.scoring import Scorer, rank
from orchestrator_core.selection import select_winner
from orchestrator_core.testing import ScriptedAgent, ScriptedCheck

TASK = Task(role="DEV", description="anything")


def result(kind: str, score: float, passed: bool | None = None) -> CheckResult:
    return CheckResult(name=kind, kind=kind, passed=score >= 0.5 if passed is None else passed, score=score)


def proposal(author: str) -> Proposal:
    return Proposal(proposal_id=f"{author}-v0", author_id=author, role="DEV", content=f"by {author}")


def request(description: str = "Write fizzbuzz") -> DeliberationRequest:
    return DeliberationRequest(Task(role="DEV", description=description), rounds=1)


def test_viable_means_every_counting_check_passed() -> None:
    scorer = Scorer(weights={"lint": 1.0, "dryrun": 2.0})
    assert scorer.viable([result("lint", 1.0), result("dryrun", 0.9)])
    assert not scorer.viable([result("lint", 1.0), result("dryrun", 0.1)])


def test_a_check_weighted_zero_does_not_count() -> None:
    scorer = Scorer(weights={"lint": 1.0, "style": 0.0})
    assert scorer.viable([result("lint", 1.0), result("style", 0.0)])
    assert not scorer.viable([result("style", 1.0)])  # judged by nothing that counts
    assert not scorer.judged([result("style", 1.0)])


def test_a_proposal_no_check_judged_is_not_viable() -> None:
    assert not Scorer().viable([])


def test_policy_counts_through_its_veto_even_at_weight_zero() -> None:
    judged = [result("policy", 1.0, passed=False), result("lint", 1.0)]
    assert not Scorer(weights={"policy": 0.0}, policy_veto=True).viable(judged)
    assert Scorer(weights={"policy": 0.0}, policy_veto=False).viable(judged)
    assert not Scorer(weights={"policy": 1.0}, policy_veto=False).viable(judged)


def test_viable_proposals_rank_above_better_scoring_non_viable_ones() -> None:
    scorer = Scorer(weights={"lint": 1.0, "dryrun": 1.0})
    judged = [
        (proposal("dev-1"), (result("lint", 1.0), result("dryrun", 0.8, passed=False))),  # 0.9, tests fail
        (proposal("dev-2"), (result("lint", 0.8), result("dryrun", 0.9))),  # 0.85, all pass
        (proposal("dev-3"), (result("lint", 0.1), result("dryrun", 0.1))),
    ]
    ranked = rank(judged, scorer)
    assert [(r.proposal.author_id, r.rank, r.viable) for r in ranked] == [
        ("dev-2", 1, True), ("dev-1", 2, False), ("dev-3", 3, False)]
    assert ranked[1].score == pytest.approx(0.9)  # the score itself is left as the weights make it


async def test_the_selector_chooses_only_among_viable_candidates() -> None:
    ranked = (
        RankedProposal(proposal("dev-1"), (), score=0.9, rank=1, viable=True),
        RankedProposal(proposal("dev-2"), (), score=0.95, rank=2, viable=False),
        RankedProposal(proposal("dev-3"), (), score=0.5, rank=3, viable=True),
    )
    selector = ScriptedAgent(agent_id="architect-1", choice=2)
    selection = await select_winner(TASK, ranked, selector, top_k=3, timeout_seconds=5)
    assert [c.proposal.author_id for c in selection.candidates] == ["dev-1", "dev-3"]
    assert selection.winner.proposal.author_id == "dev-3"


async def test_selection_without_a_viable_candidate_is_refused() -> None:
    ranked = (RankedProposal(proposal("dev-1"), (), score=0.9, rank=1, viable=False),)
    with pytest.raises(NoViableProposal, match="no viable proposal"):
        await select_winner(TASK, ranked, None, top_k=3, timeout_seconds=5)


def gibberish_fails(p: Proposal) -> float:
    return 0.0 if "gibberish" in p.content else 1.0


async def test_orchestrate_without_a_viable_proposal_fails_and_keeps_the_ranking(make_orchestrator: Any) -> None:
    tests = ScriptedCheck(name="tests", kind="dryrun", score_of=gibberish_fails)
    orchestrator = await make_orchestrator(None, tests)
    with pytest.raises(NoViableProposal) as raised:
        await orchestrator.orchestrate(request("gibberish"))
    message = str(raised.value)
    assert message.startswith("no viable proposal: no proposal passed its checks (3 of 3 proposal(s) judged")
    assert "the best, dev-1-v1, failed tests" in message

    [record] = (await orchestrator.list_records()).records
    assert (record.status, record.error_kind, record.error) == (RecordStatus.FAILED, "NoViableProposal", message)
    assert record.outcome is not None
    assert [r.rank for r in record.outcome.results] == [1, 2, 3]
    assert record.outcome.viable_proposals == 0
    assert record.selection is None
    assert record.usage.total_tokens == 3 * 3 * 15  # generate, critique, revise: all spent
    statistics = orchestrator.status().statistics
    assert (statistics.orchestrations, statistics.failures) == (1, 1)
    assert statistics.usage == record.usage


async def test_orchestrate_with_no_check_that_counts_says_nothing_judged(make_orchestrator: Any) -> None:
    style = ScriptedCheck(name="style", kind="style")
    orchestrator = await make_orchestrator(None, style, check_weights={"style": 0.0})
    with pytest.raises(NoViableProposal, match=r"\(0 of 3 proposal\(s\) judged .*install or weight a check"):
        await orchestrator.orchestrate(request())


async def test_deliberate_ranks_even_when_nothing_is_viable(make_orchestrator: Any) -> None:
    orchestrator = await make_orchestrator(None, ScriptedCheck(score_of=gibberish_fails))
    outcome = await orchestrator.deliberate(request("gibberish"))
    assert len(outcome.results) == 3
    assert outcome.viable_proposals == 0
    record = await orchestrator.get_record(outcome.deliberation_id)
    assert record.status is RecordStatus.SUCCEEDED
    assert record.outcome == outcome


async def test_orchestrate_picks_a_viable_winner_over_a_higher_score(make_orchestrator: Any) -> None:
    lint = ScriptedCheck(name="lint", kind="lint", score_of=lambda p: 1.0 if p.author_id == "dev-1" else 0.7)
    tests = ScriptedCheck(name="tests", kind="dryrun", score_of=lambda p: 0.4 if p.author_id == "dev-1" else 0.9)
    weights = {"lint": 5.0, "dryrun": 1.0}
    orchestrator = await make_orchestrator(None, lint, tests, selector_role="", check_weights=weights)
    orchestration = await orchestrator.orchestrate(request())
    by_author = {r.proposal.author_id: r for r in orchestration.outcome.results}
    assert by_author["dev-1"].score > by_author["dev-2"].score  # the best score failed its tests
    assert not by_author["dev-1"].viable
    assert by_author["dev-1"].rank == 3
    assert orchestration.selection.winner.viable
    assert orchestration.selection.winner.proposal.author_id == "dev-2"
    assert orchestration.outcome.viable_proposals == 2
