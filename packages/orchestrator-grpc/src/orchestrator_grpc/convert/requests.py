"""Requests, proto -> core (and back, for the client)."""

from __future__ import annotations

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator_core.errors import InvalidRequest
from orchestrator_core.models import (
    Task,
    TaskConstraints,
    TaskTest,
)
from orchestrator_core.orchestrator import DeliberationRequest
from orchestrator_core.records import RecordStatus
from orchestrator_grpc.convert._common import STATUS_FROM_PROTO

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
        rounds=request.rounds if request.HasField("rounds") else None,
        request_id=request.request_id,
    )


def submission_from_proto(request: pb.SubmitDeliberationRequest) -> tuple[DeliberationRequest, int | None]:
    """What a SubmitDeliberation asks to run, and for an orchestration its top_k (0: the
    server's default); None for a deliberation."""
    match request.WhichOneof("request"):
        case "deliberate":
            return deliberation_request_from_proto(request.deliberate), None
        case "orchestrate":
            if request.orchestrate.top_k < 0:
                raise InvalidRequest(f"top_k must not be negative; got {request.orchestrate.top_k}")
            return deliberation_request_from_proto(request.orchestrate.deliberation), request.orchestrate.top_k
    raise InvalidRequest("request is required: a deliberate or an orchestrate request")


def after_sequence_from_proto(request: pb.WatchDeliberationRequest) -> int:
    if request.after_sequence < 0:
        raise InvalidRequest(f"after_sequence must not be negative; got {request.after_sequence}")
    return request.after_sequence


def time_bound_from_proto(seconds: float) -> float | None:
    """A ListDeliberations time bound: 0 (unset) leaves that end of the range open."""
    return seconds or None


def record_status_from_proto(value: pb.DeliberationStatus) -> RecordStatus | None:
    """The record status a ListDeliberations filter names; None for "every status"."""
    if value == pb.DELIBERATION_STATUS_UNSPECIFIED:
        return None
    try:
        return STATUS_FROM_PROTO[value]
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
    task: Task, *, num_agents: int = 0, rounds: int | None = None, request_id: str = ""
) -> pb.DeliberateRequest:
    """``rounds`` None leaves the field unset: the server's default; 0 asks for no rounds."""
    request = pb.DeliberateRequest(
        role=task.role,
        task=task.description,
        constraints=constraints_to_proto(task.constraints),
        num_agents=num_agents,
        request_id=request_id,
    )
    if rounds is not None:
        request.rounds = rounds
    return request


def submit_request_to_proto(request: pb.DeliberateRequest, top_k: int | None = None) -> pb.SubmitDeliberationRequest:
    """A submission of ``request``: an orchestration among ``top_k`` candidates (0: the
    server's default), or with ``top_k`` None a deliberation."""
    if top_k is None:
        return pb.SubmitDeliberationRequest(deliberate=request)
    return pb.SubmitDeliberationRequest(orchestrate=pb.OrchestrateRequest(deliberation=request, top_k=top_k))
