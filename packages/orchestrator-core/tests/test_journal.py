"""The journal: what a record says its deliberation completed, call by call and check by check."""

from __future__ import annotations

from orchestrator_core.journal import Journal
from orchestrator_core.models import (
    AgentCall,
    AgentFailure,
    AgentReply,
    CallOutcome,
    CheckResult,
    Critique,
    Phase,
    Proposal,
    Task,
    TokenUsage,
)
from orchestrator_core.records import DeliberationRecord, RecordStatus
from orchestrator_core.records.model import RecordedCheck

TASK = Task("DEV", "x")
COST = TokenUsage(3, 2)


def call(
    agent_id: str, phase: Phase, round_number: int = 0, outcome: CallOutcome = CallOutcome.OK,
    usage: TokenUsage = COST, *, truncated: bool = False,
) -> AgentCall:
    return AgentCall(agent_id, phase, round_number, 1.0, 2.0, outcome, usage, truncated, model="m")


def proposal(author: str, revision: int, content: str, *, truncated: bool = False) -> Proposal:
    return Proposal(f"{author}-v{revision}", author, "DEV", content, revision, truncated)


def record(**fields: object) -> DeliberationRecord:
    return DeliberationRecord("d1", "deliberate", "DEV", TASK, RecordStatus.RUNNING, 0.0, **fields)  # type: ignore[arg-type]


def test_an_empty_record_journals_nothing() -> None:
    journal = Journal.from_record(record())
    assert journal.empty
    assert journal.reply("a", Phase.GENERATE, 0) is None
    assert journal.check("a-v0", "lint") is None


def test_each_completed_call_is_journaled_with_the_reply_its_product_holds() -> None:
    journal = Journal.from_record(record(
        calls=(
            call("a", Phase.GENERATE, usage=TokenUsage(7, 1), truncated=True),
            call("b", Phase.GENERATE),
            call("a", Phase.CRITIQUE, 1, usage=TokenUsage(5, 5)),
            call("b", Phase.REVISE, 1, usage=TokenUsage(9, 9)),
        ),
        proposals=(
            proposal("a", 0, "A's", truncated=True), proposal("b", 0, "B's"), proposal("b", 1, "B's, better"),
        ),
        critiques=(Critique("a", "b-v0", "b", "too short", 1),),
    ))

    assert journal.reply("a", Phase.GENERATE, 0) == AgentReply("A's", TokenUsage(7, 1), truncated=True, model="m")
    assert journal.reply("b", Phase.GENERATE, 0) == AgentReply("B's", TokenUsage(3, 2), model="m")
    assert journal.reply("a", Phase.CRITIQUE, 1) == AgentReply("too short", TokenUsage(5, 5), model="m")
    assert journal.reply("b", Phase.REVISE, 1) == AgentReply("B's, better", TokenUsage(9, 9), model="m")
    assert journal.reply("a", Phase.REVISE, 1) is None
    assert [entry.position for entry in journal.calls.values()] == [0, 1, 2, 3]


def test_a_revision_is_the_authors_nth_not_the_round() -> None:
    """b got no feedback in round 1 (its critic failed), so its round-2 revise made b-v1."""
    journal = Journal.from_record(record(
        calls=(call("b", Phase.GENERATE), call("b", Phase.REVISE, 2), call("a", Phase.REVISE, 1),
               call("a", Phase.REVISE, 2)),
        proposals=(proposal("b", 0, "v0"), proposal("a", 0, "a0"), proposal("a", 1, "a1"),
                   proposal("b", 1, "b1"), proposal("a", 2, "a2")),
    ))
    assert journal.reply("b", Phase.REVISE, 2) == AgentReply("b1", TokenUsage(3, 2), model="m")
    assert journal.reply("a", Phase.REVISE, 1) == AgentReply("a1", TokenUsage(3, 2), model="m")
    assert journal.reply("a", Phase.REVISE, 2) == AgentReply("a2", TokenUsage(3, 2), model="m")


def test_a_failed_call_is_journaled_as_its_failure_and_a_bug_says_so() -> None:
    down = AgentFailure("a", Phase.CRITIQUE, "model down", 1)
    broken = AgentFailure("b", Phase.GENERATE, "KeyError: 'x'")
    journal = Journal.from_record(record(
        calls=(call("b", Phase.GENERATE, outcome=CallOutcome.BUG),
               call("c", Phase.GENERATE, outcome=CallOutcome.TIMEOUT),
               call("a", Phase.CRITIQUE, 1, outcome=CallOutcome.ERROR, usage=TokenUsage(4, 0))),
        failures=(broken, down),
    ))
    assert journal.reply("a", Phase.CRITIQUE, 1) == down
    assert journal.reply("b", Phase.GENERATE, 0) == broken
    assert journal.call("b", Phase.GENERATE, 0).plugin_bug  # type: ignore[union-attr]
    assert not journal.call("a", Phase.CRITIQUE, 1).plugin_bug  # type: ignore[union-attr]
    assert journal.call("a", Phase.CRITIQUE, 1).call.usage == TokenUsage(4, 0)  # type: ignore[union-attr]
    assert journal.reply("c", Phase.GENERATE, 0) is None  # its failure never reached the record


def test_calls_cut_short_or_without_their_product_and_selections_are_not_journaled() -> None:
    journal = Journal.from_record(record(
        calls=(
            call("a", Phase.GENERATE, outcome=CallOutcome.CANCELLED),
            call("b", Phase.GENERATE),  # its proposal was not written yet
            call("a", Phase.GENERATE),  # made again after the cut: this one completed
            call("a", Phase.SELECT),
        ),
        proposals=(proposal("a", 0, "A's"),),
    ))
    assert journal.reply("b", Phase.GENERATE, 0) is None
    assert journal.reply("a", Phase.GENERATE, 0) == AgentReply("A's", TokenUsage(3, 2), model="m")
    assert journal.call("a", Phase.GENERATE, 0).position == 2  # type: ignore[union-attr]
    assert journal.reply("a", Phase.SELECT, 0) is None
    assert len(journal.calls) == 1


def test_checks_are_journaled_by_proposal_and_check_name() -> None:
    lint = CheckResult("lint", "lint", True, 1.0)
    policy = CheckResult("policy", "policy", False, 0.0, ("forbidden",))
    journal = Journal.from_record(record(
        checks=(RecordedCheck("a-v1", lint, 1.0, 2.0), RecordedCheck("a-v1", policy), RecordedCheck("b-v0", lint)),
    ))
    assert journal.check("a-v1", "lint") == lint
    assert journal.check("a-v1", "policy") == policy
    assert journal.check("b-v0", "lint") == lint
    assert journal.check("b-v0", "policy") is None
    assert not journal.empty
