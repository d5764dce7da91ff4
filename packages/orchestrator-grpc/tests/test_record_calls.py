"""Each agent call and each check's times in the record, over the API: both conversions, a
record stored before they were kept, and ListDeliberations."""

from __future__ import annotations

import json
from collections import Counter

from grpc_test_support import request

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_core.models import (
    AgentCall,
    AgentFailure,
    CallOutcome,
    CheckResult,
    Critique,
    DeliberationOutcome,
    Phase,
    Proposal,
    RankedProposal,
    Selection,
    Task,
    TaskConstraints,
    TokenUsage,
)
from orchestrator_core.records import CouncilSeat, DeliberationRecord, PhaseTiming, RecordedCheck, RecordStatus
from orchestrator_core.records.sql import decode_row, encode_record
from orchestrator_grpc import convert

START = 1_700_000_000.0
TASK = Task("DEV", "Add two numbers", TaskConstraints(rubric="short", requirements=("typed",), max_rounds=1))
LINT = CheckResult(name="lint", kind="lint", passed=False, score=0.2, diagnostics=("E1",), duration_seconds=0.25)
PROPOSAL = Proposal(proposal_id="dev-1-v1", author_id="dev-1", role="DEV", content="def add(a, b): ...", revision=1)
RANKED = RankedProposal(proposal=PROPOSAL, checks=(LINT,), score=0.2, rank=1, viable=False)
CALLS = (
    AgentCall("dev-1", Phase.GENERATE, 0, START + 0.1, START + 1.5, CallOutcome.OK, TokenUsage(40, 120),
              truncated=True, model="qwen2.5"),
    AgentCall("dev-2", Phase.GENERATE, 0, START + 0.1, START + 3.0, CallOutcome.TIMEOUT, error="timed out after 3s"),
    AgentCall("dev-1", Phase.CRITIQUE, 1, START + 3.1, START + 3.9, CallOutcome.ERROR, TokenUsage(0, 0),
              error="cannot reach the model"),
    AgentCall("dev-1", Phase.REVISE, 1, START + 4.0, START + 5.0, CallOutcome.OK, TokenUsage(60, 80)),
    AgentCall("dev-1", Phase.SELECT, 0, START + 5.5, START + 5.75, CallOutcome.CANCELLED),
)


def full_record() -> DeliberationRecord:
    outcome = DeliberationOutcome(
        deliberation_id="d1", task=TASK, results=(RANKED,),
        failures=(AgentFailure("dev-2", Phase.GENERATE, "timed out after 3s"),),
        usage=TokenUsage(100, 200), duration_seconds=6.0, rounds=1,
    )
    return DeliberationRecord(
        deliberation_id="d1", kind="orchestrate", role="DEV", task=TASK, status=RecordStatus.SUCCEEDED,
        created_at=START, finished_at=START + 6.0, outcome=outcome,
        selection=Selection(winner=RANKED, candidates=(RANKED,), rationale="only one", selected_by="dev-1"),
        request_id="r1", owner="replica-1", updated_at=START + 6.0, num_agents=2, rounds=1, top_k=1,
        council=(CouncilSeat("dev-1", "scripted", {"model": '"qwen2.5"'}, model="qwen2.5"),
                 CouncilSeat("dev-2", "scripted")),
        proposals=(PROPOSAL,),
        critiques=(Critique("dev-2", "dev-1-v0", "dev-1", "fine", 1),),
        checks=(RecordedCheck("dev-1-v1", LINT, START + 5.1, START + 5.35),),
        failures=outcome.failures,
        phases=(PhaseTiming("generate", 0, START + 0.05, START + 3.05), PhaseTiming("check", 0, START + 5.05,
                                                                                     START + 5.4)),
        usage=TokenUsage(100, 200),
        calls=CALLS,
    )


def test_a_record_round_trips_with_its_calls_and_check_times() -> None:
    record = full_record()

    message = convert.record_to_proto(record)

    assert [(c.agent_id, c.phase, c.round, c.outcome) for c in message.calls] == [
        ("dev-1", "generate", 0, "ok"), ("dev-2", "generate", 0, "timeout"), ("dev-1", "critique", 1, "error"),
        ("dev-1", "revise", 1, "ok"), ("dev-1", "select", 0, "cancelled"),
    ]
    first = message.calls[0]
    assert (first.started_at, first.finished_at, first.truncated, first.model) == (START + 0.1, START + 1.5, True,
                                                                                   "qwen2.5")
    assert (first.usage.prompt_tokens, first.usage.completion_tokens) == (40, 120)
    assert message.calls[1].error == "timed out after 3s"
    assert (message.checks[0].started_at, message.checks[0].finished_at) == (START + 5.1, START + 5.35)
    assert convert.record_from_proto(message) == record


def test_a_running_record_comes_back_unfinished() -> None:
    record = DeliberationRecord("d2", "deliberate", "DEV", TASK, RecordStatus.RUNNING, START, calls=CALLS[:1])

    back = convert.record_from_proto(convert.record_to_proto(record))

    assert back == record
    assert back.finished_at is None


def test_a_record_stored_before_calls_were_kept_still_loads() -> None:
    """A stored document without ``calls`` and with checks without times (as written before
    they were kept) reads back with no calls and checks at time 0, and converts."""
    document = json.loads(encode_record(full_record()))
    del document["calls"]
    for check in document["checks"]:
        del check["started_at"], check["finished_at"]
    assert "calls" not in json.dumps(document)

    record = decode_row(("succeeded", START + 6.0, "", json.dumps(document), document["owner"], False))
    message = convert.record_to_proto(record)

    assert record.calls == ()
    assert [(c.proposal_id, c.result, c.started_at, c.finished_at) for c in record.checks] == [
        ("dev-1-v1", LINT, 0.0, 0.0)
    ]
    assert record.proposals == (PROPOSAL,)
    assert list(message.calls) == []
    assert (message.checks[0].started_at, message.checks[0].result.name) == (0.0, "lint")


async def test_listed_records_carry_every_call_with_its_times(stub: pb_grpc.OrchestratorServiceStub) -> None:
    response = await stub.Deliberate(request(rounds=1))

    [record] = (await stub.ListDeliberations(pb.ListDeliberationsRequest())).deliberations
    got = await stub.GetDeliberation(pb.GetDeliberationRequest(deliberation_id=response.deliberation_id))

    assert list(got.calls) == list(record.calls)
    # 3 agents: each generates, critiques one other's proposal and revises its own.
    assert Counter((c.phase, c.round) for c in record.calls) == {("generate", 0): 3, ("critique", 1): 3,
                                                                 ("revise", 1): 3}
    assert {c.agent_id for c in record.calls} == {"dev-1", "dev-2", "dev-3"}
    for call in record.calls:
        assert record.created_at <= call.started_at <= call.finished_at <= record.finished_at
        assert (call.outcome, call.usage.prompt_tokens, call.usage.completion_tokens) == ("ok", 10, 5)
    assert record.checks
    for check in record.checks:
        assert record.created_at <= check.started_at <= check.finished_at <= record.finished_at
