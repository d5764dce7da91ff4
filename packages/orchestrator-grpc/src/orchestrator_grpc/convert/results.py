"""Results and events, core -> proto."""

from __future__ import annotations

from collections.abc import Iterable

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator_core.events import (
    AgentFailed,
    CheckCompleted,
    CritiqueWritten,
    DeliberationEvent,
    DeliberationFinished,
    ProposalGenerated,
    ProposalRevised,
    RankingReady,
)
from orchestrator_core.models import (
    AgentFailure,
    CheckResult,
    Critique,
    DeliberationOutcome,
    Proposal,
    RankedProposal,
    Selection,
    TokenUsage,
)
from orchestrator_core.orchestrator import Orchestration
from orchestrator_core.records import RecordStatus
from orchestrator_grpc.convert._common import STANDARD_CHECK_NAMES, STATUS_TO_PROTO


def usage_to_proto(usage: TokenUsage) -> pb.TokenUsage:
    return pb.TokenUsage(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens)


def proposal_to_proto(proposal: Proposal) -> pb.Proposal:
    return pb.Proposal(
        proposal_id=proposal.proposal_id,
        author_id=proposal.author_id,
        role=proposal.role,
        content=proposal.content,
        revision=proposal.revision,
        truncated=proposal.truncated,
    )


def critique_to_proto(critique: Critique) -> pb.Critique:
    return pb.Critique(
        critic_id=critique.critic_id,
        proposal_id=critique.proposal_id,
        author_id=critique.author_id,
        content=critique.content,
        round=critique.round,
    )


def check_result_to_proto(result: CheckResult) -> pb.CheckResult:
    return pb.CheckResult(
        name=result.name,
        kind=result.kind,
        passed=result.passed,
        score=result.score,
        diagnostics=list(result.diagnostics),
        duration_seconds=result.duration_seconds,
    )


def check_suite_to_proto(results: Iterable[CheckResult]) -> pb.CheckSuite:
    """A result is placed by its check's *name*, never its kind: the checks named policy,
    lint and dryrun (the built-in ones) fill those fields; every other check (a third-party
    check of kind ``lint`` included, whatever the load order) goes in ``others`` under its
    name."""
    suite = pb.CheckSuite()
    for result in results:
        if result.name in STANDARD_CHECK_NAMES:
            getattr(suite, result.name).CopyFrom(check_result_to_proto(result))
        else:
            suite.others[result.name].CopyFrom(check_result_to_proto(result))
    return suite


def failure_to_proto(failure: AgentFailure) -> pb.AgentFailure:
    return pb.AgentFailure(
        agent_id=failure.agent_id, phase=failure.phase.value, error=failure.error, round=failure.round
    )


def ranked_to_proto(ranked: RankedProposal) -> pb.DeliberationResult:
    return pb.DeliberationResult(
        proposal=proposal_to_proto(ranked.proposal),
        checks=check_suite_to_proto(ranked.checks),
        score=ranked.score,
        rank=ranked.rank,
        viable=ranked.viable,
    )


def outcome_to_proto(outcome: DeliberationOutcome) -> pb.DeliberateResponse:
    return pb.DeliberateResponse(
        deliberation_id=outcome.deliberation_id,
        role=outcome.task.role,
        results=[ranked_to_proto(r) for r in outcome.results],
        failures=[failure_to_proto(f) for f in outcome.failures],
        duration_seconds=outcome.duration_seconds,
        usage=usage_to_proto(outcome.usage),
        rounds=outcome.rounds,
        viable_proposals=outcome.viable_proposals,
    )


def selection_to_proto(
    execution_id: str, outcome: DeliberationOutcome, selection: Selection
) -> pb.OrchestrateResponse:
    response = pb.OrchestrateResponse(
        execution_id=execution_id,
        deliberation_id=execution_id,
        winner=ranked_to_proto(selection.winner),
        candidates=[ranked_to_proto(c) for c in selection.candidates],
        rationale=selection.rationale,
        selected_by=selection.selected_by,
        deliberation=outcome_to_proto(outcome),
        selection_usage=usage_to_proto(selection.usage),
    )
    if selection.failure is not None:
        response.selection_failure.CopyFrom(failure_to_proto(selection.failure))
    return response


def orchestration_to_proto(orchestration: Orchestration) -> pb.OrchestrateResponse:
    return selection_to_proto(orchestration.execution_id, orchestration.outcome, orchestration.selection)


def event_to_proto(deliberation_id: str, event: DeliberationEvent, sequence: int = 0) -> pb.DeliberationEvent:
    """The streamed message of ``event`` (``sequence``: its place in the record, for a
    watch). A ``DeliberationStarted`` has none of its own (the servicer puts its id on every
    later event); here it is a message with no event set."""
    message = pb.DeliberationEvent(deliberation_id=deliberation_id, sequence=sequence)
    match event:
        case ProposalGenerated(proposal=proposal):
            message.proposal_generated.CopyFrom(proposal_to_proto(proposal))
        case CritiqueWritten(critique=critique):
            message.critique.CopyFrom(critique_to_proto(critique))
        case ProposalRevised(proposal=proposal):
            message.revision.CopyFrom(proposal_to_proto(proposal))
        case CheckCompleted(proposal_id=proposal_id, result=result, started_at=started, finished_at=finished):
            check = pb.CheckEvent(
                proposal_id=proposal_id,
                result=check_result_to_proto(result),
                started_at=started,
                finished_at=finished,
            )
            message.check.CopyFrom(check)
        case AgentFailed(failure=failure):
            message.agent_failure.CopyFrom(failure_to_proto(failure))
        case RankingReady(outcome=outcome):
            message.ranking.CopyFrom(outcome_to_proto(outcome))
        case DeliberationFinished(status=status, error=error, error_kind=error_kind):
            message.finished.CopyFrom(
                pb.DeliberationFinished(
                    status=STATUS_TO_PROTO[RecordStatus(status)], error=error, error_kind=error_kind
                )
            )
    return message
