"""Protobuf <-> core models: the one module that knows both.

Unset or zero protobuf fields become the core's defaults (0 means "the server's default"
throughout the API). Domain errors for bad input are raised as
:class:`~orchestrator_core.errors.InvalidRequest`, so they map to INVALID_ARGUMENT.
"""

from __future__ import annotations

from collections.abc import Iterable

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator_core.council import CouncilInfo
from orchestrator_core.errors import InvalidRequest
from orchestrator_core.events import (
    AgentFailed,
    CheckCompleted,
    CritiqueWritten,
    DeliberationEvent,
    ProposalGenerated,
    ProposalRevised,
    RankingReady,
)
from orchestrator_core.models import (
    AgentFailure,
    CheckKind,
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
from orchestrator_core.orchestrator import DeliberationRequest, Orchestration, StatusSnapshot
from orchestrator_core.plugins import FailedPlugin, PluginInfo
from orchestrator_core.records.store import encode_page_token
from orchestrator_core.statistics import RoleStatistics, Statistics
from orchestrator_core.store import DeliberationRecord, RecordPage, RecordStatus

SERVING = "SERVING"
NOT_SERVING = "NOT_SERVING"

_STATUS_TO_PROTO: dict[RecordStatus, pb.DeliberationStatus] = {
    RecordStatus.RUNNING: pb.DELIBERATION_STATUS_RUNNING,
    RecordStatus.SUCCEEDED: pb.DELIBERATION_STATUS_SUCCEEDED,
    RecordStatus.FAILED: pb.DELIBERATION_STATUS_FAILED,
    RecordStatus.CANCELLED: pb.DELIBERATION_STATUS_CANCELLED,
    RecordStatus.INTERRUPTED: pb.DELIBERATION_STATUS_INTERRUPTED,
}
_STATUS_FROM_PROTO = {value: status for status, value in _STATUS_TO_PROTO.items()}
_STANDARD_KINDS = (CheckKind.POLICY.value, CheckKind.LINT.value, CheckKind.DRYRUN.value)


# -- requests (proto -> core) ---------------------------------------------------------


def task_from_proto(request: pb.DeliberateRequest) -> Task:
    constraints = request.constraints
    return Task(
        role=request.role,
        description=request.task,
        constraints=TaskConstraints(
            rubric=constraints.rubric,
            requirements=tuple(constraints.requirements),
            forbidden=tuple(constraints.forbidden),
            max_rounds=constraints.max_rounds,
            timeout_seconds=constraints.timeout_seconds,
            tests=tuple(TaskTest(path=t.path, content=t.content) for t in constraints.tests),
            agent_timeout_seconds=constraints.agent_timeout_seconds,
        ),
    )


def deliberation_request_from_proto(request: pb.DeliberateRequest) -> DeliberationRequest:
    return DeliberationRequest(
        task=task_from_proto(request),
        num_agents=request.num_agents,
        rounds=request.rounds,
        request_id=request.request_id,
    )


def time_bound_from_proto(seconds: float) -> float | None:
    """A ListDeliberations time bound: 0 (unset) leaves that end of the range open."""
    return seconds or None


def record_status_from_proto(value: pb.DeliberationStatus) -> RecordStatus | None:
    """The record status a ListDeliberations filter names; None for "every status"."""
    if value == pb.DELIBERATION_STATUS_UNSPECIFIED:
        return None
    try:
        return _STATUS_FROM_PROTO[value]
    except KeyError:
        raise InvalidRequest(f"status {value} is not a DeliberationStatus value") from None


# -- requests (core -> proto), for clients ---------------------------------------------


def constraints_to_proto(constraints: TaskConstraints) -> pb.TaskConstraints:
    return pb.TaskConstraints(
        rubric=constraints.rubric,
        requirements=list(constraints.requirements),
        forbidden=list(constraints.forbidden),
        max_rounds=constraints.max_rounds,
        timeout_seconds=constraints.timeout_seconds,
        tests=[pb.TaskTest(path=t.path, content=t.content) for t in constraints.tests],
        agent_timeout_seconds=constraints.agent_timeout_seconds,
    )


def deliberate_request_to_proto(
    task: Task, *, num_agents: int = 0, rounds: int = 0, request_id: str = ""
) -> pb.DeliberateRequest:
    return pb.DeliberateRequest(
        role=task.role,
        task=task.description,
        constraints=constraints_to_proto(task.constraints),
        num_agents=num_agents,
        rounds=rounds,
        request_id=request_id,
    )


# -- results (core -> proto) ---------------------------------------------------------------


def usage_to_proto(usage: TokenUsage) -> pb.TokenUsage:
    return pb.TokenUsage(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens)


def proposal_to_proto(proposal: Proposal) -> pb.Proposal:
    return pb.Proposal(
        proposal_id=proposal.proposal_id,
        author_id=proposal.author_id,
        role=proposal.role,
        content=proposal.content,
        revision=proposal.revision,
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
    """The first result of each standard kind fills its field; every other one goes in
    ``others`` under its check name."""
    suite = pb.CheckSuite()
    for result in results:
        if result.kind in _STANDARD_KINDS and not suite.HasField(result.kind):
            getattr(suite, result.kind).CopyFrom(check_result_to_proto(result))
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
    )


def selection_to_proto(
    execution_id: str, outcome: DeliberationOutcome, selection: Selection
) -> pb.OrchestrateResponse:
    response = pb.OrchestrateResponse(
        execution_id=execution_id,
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


def event_to_proto(deliberation_id: str, event: DeliberationEvent) -> pb.DeliberationEvent:
    """The streamed message of ``event``. A ``DeliberationStarted`` has none of its own (the
    servicer puts its id on every later event); here it is a message with no event set."""
    message = pb.DeliberationEvent(deliberation_id=deliberation_id)
    match event:
        case ProposalGenerated(proposal=proposal):
            message.proposal_generated.CopyFrom(proposal_to_proto(proposal))
        case CritiqueWritten(critique=critique):
            message.critique.CopyFrom(critique_to_proto(critique))
        case ProposalRevised(proposal=proposal):
            message.revision.CopyFrom(proposal_to_proto(proposal))
        case CheckCompleted(proposal_id=proposal_id, result=result):
            check = pb.CheckEvent(proposal_id=proposal_id, result=check_result_to_proto(result))
            message.check.CopyFrom(check)
        case AgentFailed(failure=failure):
            message.agent_failure.CopyFrom(failure_to_proto(failure))
        case RankingReady(outcome=outcome):
            message.ranking.CopyFrom(outcome_to_proto(outcome))
    return message


def record_to_proto(record: DeliberationRecord) -> pb.DeliberationRecord:
    message = pb.DeliberationRecord(
        deliberation_id=record.deliberation_id,
        role=record.role,
        task=record.task.description,
        status=_STATUS_TO_PROTO[record.status],
        created_at=record.created_at,
        finished_at=record.finished_at or 0.0,
        error=record.error,
        kind=record.kind,
        request_id=record.request_id,
        owner=record.owner,
        updated_at=record.updated_at,
        error_kind=record.error_kind,
        council=[
            pb.CouncilSeat(agent_id=s.agent_id, backend=s.backend, options=dict(s.options)) for s in record.council
        ],
        num_agents=record.num_agents,
        rounds=record.rounds,
        top_k=record.top_k,
        proposals=[proposal_to_proto(p) for p in record.proposals],
        critiques=[critique_to_proto(c) for c in record.critiques],
        checks=[
            pb.CheckEvent(proposal_id=c.proposal_id, result=check_result_to_proto(c.result)) for c in record.checks
        ],
        failures=[failure_to_proto(f) for f in record.failures],
        phases=[
            pb.PhaseTiming(phase=p.phase, round=p.round, started_at=p.started_at, finished_at=p.finished_at)
            for p in record.phases
        ],
        usage=usage_to_proto(record.usage),
        constraints=constraints_to_proto(record.task.constraints),
    )
    if record.outcome is not None:
        message.response.CopyFrom(outcome_to_proto(record.outcome))
        if record.selection is not None:
            message.orchestration.CopyFrom(
                selection_to_proto(record.deliberation_id, record.outcome, record.selection)
            )
    return message


PAGE_HEADROOM_BYTES = 1024
"""Room left in a page for its token and framing."""


def page_to_proto(page: RecordPage, max_bytes: int | None = None) -> pb.ListDeliberationsResponse:
    """The page; with ``max_bytes``, cut short where the next record would make it larger
    (its token then resumes after the last record sent). A first record larger than that
    on its own is still sent, and fails as gRPC's own RESOURCE_EXHAUSTED."""
    response = pb.ListDeliberationsResponse(next_page_token=page.next_page_token)
    size = 0
    for index, record in enumerate(page.records):
        message = record_to_proto(record)
        size += message.ByteSize() + 8  # the field's tag and length
        if max_bytes is not None and index > 0 and size > max_bytes - PAGE_HEADROOM_BYTES:
            response.next_page_token = encode_page_token(page.records[index - 1])
            break
        response.deliberations.append(message)
    return response


def _role_statistics_to_proto(statistics: RoleStatistics) -> pb.RoleStatistics:
    return pb.RoleStatistics(
        deliberations=statistics.deliberations,
        failures=statistics.failures,
        mean_duration_seconds=statistics.mean_duration_seconds,
    )


def statistics_to_proto(statistics: Statistics) -> pb.Statistics:
    return pb.Statistics(
        deliberations=statistics.deliberations,
        orchestrations=statistics.orchestrations,
        failures=statistics.failures,
        mean_duration_seconds=statistics.mean_duration_seconds,
        by_role={role: _role_statistics_to_proto(s) for role, s in statistics.by_role.items()},
        usage=usage_to_proto(statistics.usage),
        in_flight=statistics.in_flight,
    )


def council_to_proto(council: CouncilInfo) -> pb.CouncilInfo:
    return pb.CouncilInfo(
        role=council.role,
        backend=council.backend,
        agents=council.agents,
        ready=council.ready,
        detail=council.detail,
        circuit=council.circuit.value,
    )


def plugin_to_proto(plugin: PluginInfo) -> pb.PluginInfo:
    return pb.PluginInfo(
        name=plugin.name,
        version=plugin.version,
        hooks=list(plugin.hooks),
        agents=list(plugin.agents),
        checks=list(plugin.checks),
    )


def failed_plugin_to_proto(plugin: FailedPlugin) -> pb.FailedPlugin:
    return pb.FailedPlugin(name=plugin.name, version=plugin.version, error=plugin.error)


def status_to_proto(snapshot: StatusSnapshot) -> pb.GetStatusResponse:
    return pb.GetStatusResponse(
        status=SERVING if snapshot.serving else NOT_SERVING,
        version=snapshot.version,
        uptime_seconds=snapshot.uptime_seconds,
        statistics=statistics_to_proto(snapshot.statistics),
        councils=[council_to_proto(c) for c in snapshot.councils],
        plugins=[plugin_to_proto(p) for p in snapshot.plugins],
        failed_plugins=[failed_plugin_to_proto(p) for p in snapshot.failed_plugins],
    )


# -- results (proto -> core), for clients --------------------------------------------------


def usage_from_proto(usage: pb.TokenUsage) -> TokenUsage:
    return TokenUsage(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens)


def proposal_from_proto(proposal: pb.Proposal) -> Proposal:
    return Proposal(
        proposal_id=proposal.proposal_id,
        author_id=proposal.author_id,
        role=proposal.role,
        content=proposal.content,
        revision=proposal.revision,
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
    standard = [getattr(suite, kind) for kind in _STANDARD_KINDS if suite.HasField(kind)]
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
        execution_id=response.execution_id,
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
        return CheckCompleted(message.check.proposal_id, check_result_from_proto(message.check.result))
    if which == "agent_failure":
        return AgentFailed(failure_from_proto(message.agent_failure))
    if which == "ranking":
        return RankingReady(outcome_from_proto(message.ranking, task))
    return None

