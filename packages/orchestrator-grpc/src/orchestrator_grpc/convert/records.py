"""Stored records and their pages, core -> proto."""

from __future__ import annotations

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator_core.models import AgentCall
from orchestrator_core.records import DeliberationRecord, RecordedCheck, RecordPage
from orchestrator_core.records.paging import first_records
from orchestrator_grpc.convert._common import STATUS_TO_PROTO
from orchestrator_grpc.convert.requests import constraints_to_proto
from orchestrator_grpc.convert.results import (
    check_result_to_proto,
    critique_to_proto,
    failure_to_proto,
    outcome_to_proto,
    proposal_to_proto,
    selection_to_proto,
    usage_to_proto,
)


def record_to_proto(record: DeliberationRecord) -> pb.DeliberationRecord:
    message = pb.DeliberationRecord(
        deliberation_id=record.deliberation_id,
        role=record.role,
        task=record.task.description,
        status=STATUS_TO_PROTO[record.status],
        created_at=record.created_at,
        finished_at=record.finished_at or 0.0,
        error=record.error,
        kind=record.kind,
        request_id=record.request_id,
        owner=record.owner,
        updated_at=record.updated_at,
        error_kind=record.error_kind,
        council=[
            pb.CouncilSeat(
                agent_id=s.agent_id,
                backend=s.backend,
                options=dict(s.options),
                model=s.model,
                endpoint=s.endpoint,
                source=s.source,
            )
            for s in record.council
        ],
        num_agents=record.num_agents,
        rounds=record.rounds,
        top_k=record.top_k,
        proposals=[proposal_to_proto(p) for p in record.proposals],
        critiques=[critique_to_proto(c) for c in record.critiques],
        checks=[recorded_check_to_proto(c) for c in record.checks],
        failures=[failure_to_proto(f) for f in record.failures],
        phases=[
            pb.PhaseTiming(phase=p.phase, round=p.round, started_at=p.started_at, finished_at=p.finished_at)
            for p in record.phases
        ],
        usage=usage_to_proto(record.usage),
        constraints=constraints_to_proto(record.task.constraints),
        calls=[agent_call_to_proto(c) for c in record.calls],
        deadline_at=record.deadline_at,
    )
    if record.outcome is not None:
        message.response.CopyFrom(outcome_to_proto(record.outcome))
        if record.selection is not None:
            message.orchestration.CopyFrom(
                selection_to_proto(record.deliberation_id, record.outcome, record.selection)
            )
    return message


def recorded_check_to_proto(check: RecordedCheck) -> pb.CheckEvent:
    return pb.CheckEvent(
        proposal_id=check.proposal_id,
        result=check_result_to_proto(check.result),
        started_at=check.started_at,
        finished_at=check.finished_at,
    )


def agent_call_to_proto(call: AgentCall) -> pb.AgentCall:
    return pb.AgentCall(
        agent_id=call.agent_id,
        phase=call.phase.value,
        round=call.round,
        started_at=call.started_at,
        finished_at=call.finished_at,
        outcome=call.outcome.value,
        usage=usage_to_proto(call.usage),
        truncated=call.truncated,
        model=call.model,
        error=call.error,
    )


PAGE_HEADROOM_BYTES = 1024
"""Room left in a page for its token and framing."""


def page_to_proto(page: RecordPage, max_bytes: int | None = None) -> pb.ListDeliberationsResponse:
    """The page; with ``max_bytes``, cut short where the next record would make it larger
    (the core then gives the token that resumes after the last record sent). A first record
    larger than that on its own is still sent, and fails as gRPC's own RESOURCE_EXHAUSTED."""
    messages: list[pb.DeliberationRecord] = []
    size = 0
    for record in page.records:
        message = record_to_proto(record)
        size += message.ByteSize() + 8  # the field's tag and length
        if max_bytes is not None and messages and size > max_bytes - PAGE_HEADROOM_BYTES:
            page = first_records(page, len(messages))
            break
        messages.append(message)
    return pb.ListDeliberationsResponse(deliberations=messages, next_page_token=page.next_page_token)
