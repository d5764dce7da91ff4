"""Protobuf <-> core models: defaults for unset fields, the check suite, round trips."""

from __future__ import annotations

import pkgutil
import re
from pathlib import Path

import pytest

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator_core.errors import InvalidRequest
from orchestrator_core.events import (
    AgentFailed,
    CheckCompleted,
    CritiqueWritten,
    ProposalGenerated,
    ProposalRevised,
    RankingReady,
)
from orchestrator_core.models import (
    AgentFailure,
    CheckResult,
    Critique,
    DeliberationOutcome,
    Phase,
    Proposal,
    RankedProposal,
    Selection,
    Task,
    TaskConstraints,
    TaskTest,
    TokenUsage,
)
from orchestrator_core.orchestrator import DeliberationRequest, Orchestration
from orchestrator_core.records import DeliberationRecord, RecordPage, RecordStatus
from orchestrator_core.records.paging import decode_page_token, first_records
from orchestrator_grpc import convert

TASK = Task(
    role="DEV",
    description="Add two numbers",
    constraints=TaskConstraints(
        rubric="correct and short",
        requirements=("typed",),
        forbidden=("eval",),
        max_rounds=2,
        timeout_seconds=30.0,
        tests=(TaskTest(path="tests/test_add.py", content="def test(): pass\n"),),
    ),
)


def check(name: str, kind: str, score: float = 1.0) -> CheckResult:
    return CheckResult(
        name=name, kind=kind, passed=score >= 0.5, score=score, diagnostics=(name,), duration_seconds=0.5
    )


def ranked(author: str, rank: int, *checks: CheckResult) -> RankedProposal:
    proposal = Proposal(proposal_id=f"{author}-v1", author_id=author, role="DEV", content=f"by {author}", revision=1)
    return RankedProposal(proposal=proposal, checks=checks, score=1.0 / rank, rank=rank)


OUTCOME = DeliberationOutcome(
    deliberation_id="d1",
    task=TASK,
    results=(
        ranked("dev-1", 1, check("policy", "policy"), check("lint", "lint", 0.7), check("dryrun", "dryrun")),
        ranked("dev-2", 2, check("style", "style", 0.2)),
    ),
    failures=(AgentFailure(agent_id="dev-3", phase=Phase.REVISE, error="timed out", round=1),),
    usage=TokenUsage(prompt_tokens=7, completion_tokens=3),
    duration_seconds=1.5,
    rounds=1,
)


def test_unset_request_fields_become_the_defaults() -> None:
    assert convert.deliberation_request_from_proto(pb.DeliberateRequest()) == DeliberationRequest(
        task=Task(role="", description="", constraints=TaskConstraints())
    )


def test_a_request_round_trips() -> None:
    message = convert.deliberate_request_to_proto(TASK, num_agents=3, rounds=2, request_id="r1")
    assert convert.deliberation_request_from_proto(message) == DeliberationRequest(
        task=TASK, num_agents=3, rounds=2, request_id="r1"
    )


def test_the_checks_named_policy_lint_and_dryrun_fill_their_fields_and_others_go_by_name() -> None:
    suite = convert.check_suite_to_proto(
        [check("opa", "policy"), check("ruff", "lint"), check("policy", "policy"), check("lint", "lint"),
         check("dryrun", "dryrun"), check("mypy", "lint"), check("size", "budget")]
    )
    assert (suite.policy.name, suite.lint.name, suite.dryrun.name) == ("policy", "lint", "dryrun")
    assert sorted(suite.others) == ["mypy", "opa", "ruff", "size"]
    assert suite.others["size"].kind == "budget"


def test_missing_standard_checks_stay_unset() -> None:
    suite = convert.check_suite_to_proto([check("style", "style")])
    assert not suite.HasField("policy")
    assert not suite.HasField("lint")
    assert not suite.HasField("dryrun")


def test_an_outcome_round_trips() -> None:
    message = convert.outcome_to_proto(OUTCOME)
    assert message.role == "DEV"
    assert message.failures[0].phase == "revise"
    assert convert.outcome_from_proto(message, TASK) == OUTCOME


def test_an_orchestration_round_trips() -> None:
    failure = AgentFailure(agent_id="architect-1", phase=Phase.SELECT, error="timed out")
    selection = Selection(
        winner=OUTCOME.results[0], candidates=OUTCOME.results, rationale="top score",
        selected_by="score", usage=TokenUsage(1, 2), failure=failure,
    )
    orchestration = Orchestration(execution_id="d1", outcome=OUTCOME, selection=selection)
    message = convert.orchestration_to_proto(orchestration)
    assert message.selection_failure.agent_id == "architect-1"
    assert (message.deliberation_id, message.execution_id) == ("d1", "d1")
    assert convert.orchestration_from_proto(message, TASK) == orchestration


def test_an_orchestration_from_an_older_server_takes_its_execution_id() -> None:
    message = convert.orchestration_to_proto(
        Orchestration(execution_id="d1", outcome=OUTCOME, selection=Selection(
            winner=OUTCOME.results[0], candidates=OUTCOME.results, rationale="", selected_by="score",
            usage=TokenUsage(0, 0))))
    message.ClearField("deliberation_id")
    assert convert.orchestration_from_proto(message, TASK).execution_id == "d1"


@pytest.mark.parametrize(
    "event",
    [
        ProposalGenerated(OUTCOME.results[0].proposal),
        CritiqueWritten(Critique(critic_id="dev-2", proposal_id="dev-1-v0", author_id="dev-1", content="c", round=1)),
        ProposalRevised(OUTCOME.results[1].proposal),
        CheckCompleted("dev-1-v1", check("lint", "lint", 0.3), 1000.25, 1001.5),
        AgentFailed(OUTCOME.failures[0]),
        RankingReady(OUTCOME),
    ],
)
def test_every_event_round_trips(event: object) -> None:
    message = convert.event_to_proto("d1", event)  # type: ignore[arg-type]
    assert message.deliberation_id == "d1"
    assert convert.event_from_proto(message, TASK) == event


def test_an_event_of_an_unknown_kind_is_skipped() -> None:
    assert convert.event_from_proto(pb.DeliberationEvent(deliberation_id="d1"), TASK) is None


def test_record_statuses_map_both_ways() -> None:
    assert convert.record_status_from_proto(pb.DELIBERATION_STATUS_UNSPECIFIED) is None
    for status in RecordStatus:
        value = pb.DeliberationStatus.Value(f"DELIBERATION_STATUS_{status.name}")
        assert convert.record_status_from_proto(value) is status  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="status 42"):
        convert.record_status_from_proto(42)  # type: ignore[arg-type]



def stored(n: int, content: str = "") -> DeliberationRecord:
    return DeliberationRecord(
        f"d{n}", "deliberate", "DEV", Task("DEV", content or "x"), RecordStatus.SUCCEEDED, 1000.0 - n
    )


def test_a_page_is_copied_with_its_token() -> None:
    page = RecordPage(records=(stored(1), stored(2)), next_page_token="from-the-core")
    message = convert.page_to_proto(page)
    assert [r.deliberation_id for r in message.deliberations] == ["d1", "d2"]
    assert message.next_page_token == "from-the-core"


def test_a_page_too_large_for_a_message_is_cut_and_resumes_where_the_core_says() -> None:
    page = RecordPage(records=tuple(stored(n, "y" * 3000) for n in range(3)), next_page_token="")
    message = convert.page_to_proto(page, max_bytes=8000)
    assert [r.deliberation_id for r in message.deliberations] == ["d0", "d1"]
    assert message.next_page_token == first_records(page, 2).next_page_token
    assert decode_page_token(message.next_page_token) == (999.0, "d1")
    alone = convert.page_to_proto(page, max_bytes=10)  # the first record goes even when too large
    assert [r.deliberation_id for r in alone.deliberations] == ["d0"]


PACKAGES = Path(__file__).resolve().parents[2]


def test_the_public_api_holds_every_name_other_modules_use() -> None:
    submodules = {module.name for module in pkgutil.iter_modules(convert.__path__)}
    used: set[str] = set()
    for path in PACKAGES.glob("*/*/**/*.py"):
        if "convert" not in path.relative_to(PACKAGES).parts:
            used.update(re.findall(r"\bconvert\.([A-Za-z]\w*)", path.read_text(encoding="utf-8")))
    assert "outcome_to_proto" in used  # the scan found the servicer's uses
    assert sorted(used - submodules - set(convert.__all__)) == []
    assert [name for name in convert.__all__ if not hasattr(convert, name)] == []
