"""The event log of a real server: JSON lines that join on the deliberation id, one per event
that matters, at the levels an operator reads, and nothing of the task's text."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from typing import Any

import grpc
import pytest
from grpc_test_support import HANG_GUARD, ServerFactory, request
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_core.settings import Settings
from orchestrator_grpc.observability.event_log import EVENTS_LOGGER
from orchestrator_grpc.observability.log_format import LogFormat, log_handler
from orchestrator_grpc.observability.tracing import Tracing

TASK = "Write a function that adds two numbers, marker 7f3c1e"
FAULTY_TASK = "Sum a list of integers, marker 0b9d42"

Lines = Callable[[], list[dict[str, Any]]]


@contextmanager
def capture_root(log_format: LogFormat) -> Iterator[io.StringIO]:
    """Every line logged anywhere, at DEBUG, through the service's handler in ``log_format``."""
    buffer = io.StringIO()
    handler = log_handler(log_format, buffer)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def parsed_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    """Each line logged so far as one JSON object (a line that is not fails the test)."""
    parsed = []
    for line in buffer.getvalue().splitlines():
        value = json.loads(line)
        assert isinstance(value, dict), line
        parsed.append(value)
    return parsed


@pytest.fixture
def json_lines() -> Iterator[Lines]:
    with capture_root("json") as buffer:
        yield partial(parsed_lines, buffer)


@pytest.fixture
def text_log() -> Iterator[io.StringIO]:
    with capture_root("text") as buffer:
        yield buffer


def events(lines: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [line for line in lines if line.get("event") == event]


async def test_every_line_of_a_deliberation_carries_its_id(serve_with: ServerFactory, json_lines: Lines) -> None:
    async with serve_with() as server, grpc.aio.insecure_channel(server.address) as channel:
        response = await pb_grpc.OrchestratorServiceStub(channel).Deliberate(request(task=TASK, rounds=1))
    lines = json_lines()
    deliberation_id = response.deliberation_id

    [started] = events(lines, "deliberation_started")
    assert started["deliberation_id"] == deliberation_id
    assert (started["level"], started["logger"], started["role"]) == ("INFO", EVENTS_LOGGER, "DEV")
    assert (started["kind"], started["agents"], started["rounds"]) == ("deliberate", 3, 1)
    [finished] = events(lines, "deliberation_finished")
    assert finished["deliberation_id"] == deliberation_id
    assert (finished["level"], finished["status"], finished["error_kind"]) == ("INFO", "succeeded", "")
    assert (finished["rounds_run"], finished["viable_proposals"]) == (1, response.viable_proposals)
    assert (finished["input_tokens"], finished["output_tokens"]) == (
        response.usage.prompt_tokens, response.usage.completion_tokens,
    )
    assert finished["duration_seconds"] > 0
    assert finished["message"].startswith("deliberate succeeded in ")

    calls = events(lines, "agent_call_finished")
    # 3 agents: a proposal, a critique and a revision each; answered calls are DEBUG
    assert sorted((c["agent_id"], c["phase"], c["round"]) for c in calls) == sorted(
        (f"dev-{n}", phase, round_number)
        for n in (1, 2, 3) for phase, round_number in (("generate", 0), ("critique", 1), ("revise", 1))
    )
    assert {(c["level"], c["outcome"], c["backend"], c["truncated"]) for c in calls} == {
        ("DEBUG", "ok", "scripted", False)
    }
    assert sum(c["input_tokens"] for c in calls) == response.usage.prompt_tokens
    checks = events(lines, "check_finished")
    assert len(checks) == 3 * 4  # every check of every proposal
    assert {c["check"] for c in checks} == {"policy", "lint", "dryrun", "style"}
    assert {c["proposal_id"] for c in checks} == {r.proposal.proposal_id for r in response.results}
    phases = events(lines, "phase_finished")
    assert [(p["phase"], p["round"]) for p in phases] == [("generate", 0), ("critique", 1), ("revise", 1), ("check", 0)]

    ours = [line for line in lines if line.get("deliberation_id") == deliberation_id]
    assert len(ours) == 2 + 9 + 12 + 4
    assert all(line["role"] == "DEV" for line in ours)
    for line in lines:
        assert set(line) >= {"time", "level", "logger", "message"}
        assert datetime.fromisoformat(line["time"]).utcoffset().total_seconds() == 0  # type: ignore[union-attr]
        assert "7f3c1e" not in json.dumps(line)  # never the task's text


async def test_the_cores_own_warnings_carry_the_deliberation_agent_and_phase(
    serve_with: ServerFactory, json_lines: Lines
) -> None:
    # FAULTY's six agents: faulty-1 answers, -2 raises, -3 hangs, -4 is slow, -5 empty, -6 garbage.
    faulty = request(
        role="FAULTY", task=FAULTY_TASK, rounds=1, constraints=pb.TaskConstraints(agent_timeout_seconds=0.5)
    )
    async with serve_with() as server, grpc.aio.insecure_channel(server.address) as channel:
        response = await pb_grpc.OrchestratorServiceStub(channel).Deliberate(faulty, timeout=HANG_GUARD)
    lines = json_lines()
    deliberation_id = response.deliberation_id

    [timed_out] = [
        line for line in lines if line["logger"] == "orchestrator_core.agent_calls" and "timed out" in line["message"]
    ]
    assert timed_out["level"] == "WARNING"
    assert (timed_out["deliberation_id"], timed_out["agent_id"], timed_out["phase"], timed_out["role"]) == (
        deliberation_id, "faulty-3", "generate", "FAULTY",
    )
    [crashed] = [line for line in lines if line["level"] == "ERROR" and "faulty-2" in line["message"]]
    assert crashed["deliberation_id"] == deliberation_id
    assert crashed["exc_info"].startswith("Traceback (most recent call last):")
    assert "RuntimeError: model crashed" in crashed["exc_info"]

    failed_calls = {
        c["agent_id"]: (c["level"], c["outcome"]) for c in events(lines, "agent_call_finished")
        if c["outcome"] != "ok"
    }
    assert failed_calls == {
        "faulty-2": ("WARNING", "bug"),
        "faulty-3": ("WARNING", "timeout"),
        "faulty-5": ("WARNING", "error"),
        "faulty-6": ("WARNING", "bug"),
    }
    warnings = [line for line in lines if line["level"] in ("WARNING", "ERROR")]
    assert warnings
    assert all(line["deliberation_id"] == deliberation_id for line in warnings)
    assert all("0b9d42" not in json.dumps(line) for line in lines)


async def test_a_failed_deliberation_ends_in_a_warning_with_its_error_kind(
    serve_with: ServerFactory, json_lines: Lines
) -> None:
    async with serve_with() as server, grpc.aio.insecure_channel(server.address) as channel:
        stub = pb_grpc.OrchestratorServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.Deliberate(request(role="DEVOPS"))  # every backend unreachable
        listed = await stub.ListDeliberations(pb.ListDeliberationsRequest(role="DEVOPS"))
    assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
    [record] = listed.deliberations
    lines = json_lines()

    [finished] = events(lines, "deliberation_finished")
    assert finished["deliberation_id"] == record.deliberation_id
    assert (finished["level"], finished["status"], finished["error_kind"]) == ("WARNING", "failed", "QuorumLost")
    assert finished["message"].startswith("deliberate failed (QuorumLost) in ")
    calls = events(lines, "agent_call_finished")
    assert {(c["level"], c["outcome"]) for c in calls} >= {("WARNING", "error")}
    assert all(c["deliberation_id"] == record.deliberation_id for c in calls)


async def test_text_lines_of_a_deliberation_name_it(serve_with: ServerFactory, text_log: io.StringIO) -> None:
    faulty = request(role="FAULTY", rounds=0, constraints=pb.TaskConstraints(agent_timeout_seconds=0.5))
    async with serve_with() as server, grpc.aio.insecure_channel(server.address) as channel:
        response = await pb_grpc.OrchestratorServiceStub(channel).Deliberate(faulty, timeout=HANG_GUARD)
    lines = text_log.getvalue().splitlines()
    tag = f"[deliberation {response.deliberation_id}] "

    [timed_out] = [line for line in lines if "timed out after" in line]
    assert f" WARNING orchestrator_core.agent_calls: {tag}timed out after 0.5s" in timed_out
    [started] = [line for line in lines if f"{EVENTS_LOGGER}: {tag}deliberate started: role FAULTY" in line]
    assert " INFO " in started
    # a line logged outside any deliberation keeps the plain format
    serving = [line for line in lines if " INFO orchestrator_grpc.server: serving " in line]
    assert serving
    assert all("[deliberation " not in line for line in serving)


# -- with tracing on ------------------------------------------------------------------------

CALLER_TRACE_ID = "5c0e1d4f3b2a49e8a7d6c5b4a3928170"


async def test_with_tracing_each_line_carries_the_trace_and_the_span_it_was_logged_in(
    serve_with: ServerFactory, json_lines: Lines, monkeypatch: pytest.MonkeyPatch
) -> None:
    exporter = InMemorySpanExporter()

    def in_memory(cls: type[Tracing], settings: Settings) -> Tracing:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        return cls(provider, settings)

    monkeypatch.setattr(Tracing, "from_environment", classmethod(in_memory))
    faulty = request(
        role="FAULTY", task=FAULTY_TASK, rounds=0, constraints=pb.TaskConstraints(agent_timeout_seconds=0.5)
    )
    traceparent = (("traceparent", f"00-{CALLER_TRACE_ID}-00f067aa0ba902b7-01"),)
    async with serve_with() as server, grpc.aio.insecure_channel(server.address) as channel:
        response = await pb_grpc.OrchestratorServiceStub(channel).Deliberate(
            faulty, metadata=traceparent, timeout=HANG_GUARD
        )
    lines = json_lines()
    spans = exporter.get_finished_spans()

    [rpc] = [span for span in spans if span.name == "orchestrator.v1.OrchestratorService/Deliberate"]
    assert format(rpc.context.trace_id, "032x") == CALLER_TRACE_ID
    ours = [line for line in lines if line.get("deliberation_id") == response.deliberation_id]
    assert {line["trace_id"] for line in ours} == {CALLER_TRACE_ID}

    [deliberation] = [span for span in spans if span.name == "deliberate FAULTY"]
    for event in ("deliberation_started", "deliberation_finished"):
        [line] = events(lines, event)
        assert line["span_id"] == format(deliberation.context.span_id, "016x")
    call_spans = {
        (span.attributes or {}).get("gen_ai.agent.id"): format(span.context.span_id, "016x")
        for span in spans if (span.attributes or {}).get("gen_ai.operation.name") == "chat"
    }
    calls = events(lines, "agent_call_finished")
    assert len(calls) == 6
    assert {call["agent_id"]: call["span_id"] for call in calls} == call_spans
    [timed_out] = [line for line in lines if "timed out after" in line["message"]]
    assert timed_out["span_id"] == call_spans["faulty-3"]  # the core's warning, in the call's span
    serving = [line for line in lines if line["message"].startswith("serving ")]
    assert serving
    assert all("trace_id" not in line for line in serving)  # no span is current at startup
