"""Results and events, proto -> core, for the client."""

from __future__ import annotations

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
    Phase,
    Proposal,
    RankedProposal,
    Selection,
    Task,
    TokenUsage,
)
from orchestrator_core.orchestrator import Orchestration
from orchestrator_grpc.convert._common import STANDARD_CHECK_NAMES, STATUS_FROM_PROTO


def usage_from_proto(usage: pb.TokenUsage) -> TokenUsage:
    return TokenUsage(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens)


def proposal_from_proto(proposal: pb.Proposal) -> Proposal:
    return Proposal(
        proposal_id=proposal.proposal_id,
        author_id=proposal.author_id,
        role=proposal.role,
        content=proposal.content,
        revision=proposal.revision,
        truncated=proposal.truncated,
    )


def critique_from_proto(critique: pb.Critique) -> Critique:
    return Critique(
        critic_id=critique.critic_id,
        proposal_id=critique.proposal_id,
        author_id=critique.author_id,
        content=critique.content,
        round=critique.round,
    )


def check_result_from_proto(result: pb.CheckResult) -> CheckResult:
    return CheckResult(
        name=result.name,
        kind=result.kind,
        passed=result.passed,
        score=result.score,
        diagnostics=tuple(result.diagnostics),
        duration_seconds=result.duration_seconds,
    )


def check_suite_from_proto(suite: pb.CheckSuite) -> tuple[CheckResult, ...]:
    standard = [getattr(suite, name) for name in STANDARD_CHECK_NAMES if suite.HasField(name)]
    others = [suite.others[name] for name in sorted(suite.others)]
    return tuple(check_result_from_proto(r) for r in (*standard, *others))


def failure_from_proto(failure: pb.AgentFailure) -> AgentFailure:
    return AgentFailure(
        agent_id=failure.agent_id, phase=Phase(failure.phase), error=failure.error, round=failure.round
    )


def ranked_from_proto(result: pb.DeliberationResult) -> RankedProposal:
    return RankedProposal(
        proposal=proposal_from_proto(result.proposal),
        checks=check_suite_from_proto(result.checks),
        score=result.score,
        rank=result.rank,
        viable=result.viable,
    )


def outcome_from_proto(response: pb.DeliberateResponse, task: Task) -> DeliberationOutcome:
    """The response carries the task's role only; the caller supplies the task it sent."""
    return DeliberationOutcome(
        deliberation_id=response.deliberation_id,
        task=task,
        results=tuple(ranked_from_proto(r) for r in response.results),
        failures=tuple(failure_from_proto(f) for f in response.failures),
        usage=usage_from_proto(response.usage),
        duration_seconds=response.duration_seconds,
        rounds=response.rounds,
    )


def orchestration_from_proto(response: pb.OrchestrateResponse, task: Task) -> Orchestration:
    failure = (
        failure_from_proto(response.selection_failure) if response.HasField("selection_failure") else None
    )
    return Orchestration(
        execution_id=response.deliberation_id or response.execution_id,
        outcome=outcome_from_proto(response.deliberation, task),
        selection=Selection(
            winner=ranked_from_proto(response.winner),
            candidates=tuple(ranked_from_proto(c) for c in response.candidates),
            rationale=response.rationale,
            selected_by=response.selected_by,
            usage=usage_from_proto(response.selection_usage),
            failure=failure,
        ),
    )


def event_from_proto(message: pb.DeliberationEvent, task: Task) -> DeliberationEvent | None:
    """The core event a streamed message carries; None for an event kind this client does
    not know (a newer server)."""
    which = message.WhichOneof("event")
    if which == "proposal_generated":
        return ProposalGenerated(proposal_from_proto(message.proposal_generated))
    if which == "critique":
        return CritiqueWritten(critique_from_proto(message.critique))
    if which == "revision":
        return ProposalRevised(proposal_from_proto(message.revision))
    if which == "check":
        check = message.check
        return CheckCompleted(
            check.proposal_id, check_result_from_proto(check.result), check.started_at, check.finished_at
        )
    if which == "agent_failure":
        return AgentFailed(failure_from_proto(message.agent_failure))
    if which == "ranking":
        return RankingReady(outcome_from_proto(message.ranking, task))
    if which == "finished":
        finished = message.finished
        status = STATUS_FROM_PROTO.get(finished.status)
        if status is None:
            return None  # a status this client does not know
        return DeliberationFinished(status, finished.error, finished.error_kind)
    return None
