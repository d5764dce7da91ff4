"""Stored records, proto -> core, for the client (the timeline draws the core record).

What the API does not carry comes back as the core's default: the request's fingerprint
(the server's own bookkeeping) is empty.
"""

from __future__ import annotations

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator_core.models import AgentCall, CallOutcome, Phase
from orchestrator_core.records import CouncilSeat, DeliberationRecord, PhaseTiming, RecordedCheck
from orchestrator_grpc.convert._common import STATUS_FROM_PROTO
from orchestrator_grpc.convert.client_results import (
    check_result_from_proto,
    critique_from_proto,
    failure_from_proto,
    orchestration_from_proto,
    outcome_from_proto,
    proposal_from_proto,
    usage_from_proto,
)
from orchestrator_grpc.convert.requests import task_from_proto


def record_from_proto(message: pb.DeliberationRecord) -> DeliberationRecord:
    task = task_from_proto(pb.DeliberateRequest(role=message.role, task=message.task, constraints=message.constraints))
    outcome = outcome_from_proto(message.response, task) if message.HasField("response") else None
    selection = (
        orchestration_from_proto(message.orchestration, task).selection
        if message.HasField("orchestration")
        else None
    )
    return DeliberationRecord(
        deliberation_id=message.deliberation_id,
        kind=message.kind,
        role=message.role,
        task=task,
        status=STATUS_FROM_PROTO[message.status],
        created_at=message.created_at,
        finished_at=message.finished_at or None,
        outcome=outcome,
        selection=selection,
        error=message.error,
        request_id=message.request_id,
        error_kind=message.error_kind,
        owner=message.owner,
        updated_at=message.updated_at,
        num_agents=message.num_agents,
        rounds=message.rounds,
        top_k=message.top_k,
        council=tuple(
            CouncilSeat(
                agent_id=s.agent_id,
                backend=s.backend,
                options=dict(s.options),
                model=s.model,
                endpoint=s.endpoint,
                source=s.source,
            )
            for s in message.council
        ),
        proposals=tuple(proposal_from_proto(p) for p in message.proposals),
        critiques=tuple(critique_from_proto(c) for c in message.critiques),
        checks=tuple(recorded_check_from_proto(c) for c in message.checks),
        failures=tuple(failure_from_proto(f) for f in message.failures),
        phases=tuple(
            PhaseTiming(phase=p.phase, round=p.round, started_at=p.started_at, finished_at=p.finished_at)
            for p in message.phases
        ),
        usage=usage_from_proto(message.usage),
        calls=tuple(agent_call_from_proto(c) for c in message.calls),
        deadline_at=message.deadline_at,
    )


def recorded_check_from_proto(check: pb.CheckEvent) -> RecordedCheck:
    return RecordedCheck(
        proposal_id=check.proposal_id,
        result=check_result_from_proto(check.result),
        started_at=check.started_at,
        finished_at=check.finished_at,
    )


def agent_call_from_proto(call: pb.AgentCall) -> AgentCall:
    return AgentCall(
        agent_id=call.agent_id,
        phase=Phase(call.phase),
        round=call.round,
        started_at=call.started_at,
        finished_at=call.finished_at,
        outcome=CallOutcome(call.outcome),
        usage=usage_from_proto(call.usage),
        truncated=call.truncated,
        model=call.model,
        error=call.error,
    )
