"""Spans of a real server, captured with the SDK's in-memory exporter: the tree of a
deliberation under its RPC, the GenAI attributes of each agent call, failures, the caller's
trace context, and prompts and replies kept off spans unless ORCH_TRACE_CONTENT opts in."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_test_support import HANG_GUARD, eventually, make_settings, request
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from tracing_support import (
    ANSWERING_MODEL,
    CONFIGURED_MODEL,
    TASK_TEXT,
    ModelBackend,
    agent_calls,
    attributes_text,
    named,
    one,
    parent_of,
    usage_of,
)

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_core.errors import BackendUnavailable
from orchestrator_core.models import Phase
from orchestrator_core.plugins import PluginHost
from orchestrator_core.settings import Settings
from orchestrator_core.testing import ConcurrencyProbe, PluginRegistrar, ScriptedCheck, ScriptedPlugin
from orchestrator_grpc.observability import tracing
from orchestrator_grpc.observability.tracing import Tracing, current_trace_ids
from orchestrator_grpc.server import RunningServer, running_server

SERVICE = "orchestrator.v1.OrchestratorService"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN_ID = "00f067aa0ba902b7"
DOWN = "cannot reach http://127.0.0.1:9/v1: connection refused"

Serve = Callable[..., AbstractAsyncContextManager[RunningServer]]


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def stalling() -> ConcurrencyProbe:
    """Counts the calls in flight of the STALL council, whose critiques never finish."""
    return ConcurrencyProbe()


@pytest.fixture
def traced_host(orchestrator_plugins: PluginRegistrar, stalling: ConcurrencyProbe) -> PluginHost:
    orchestrator_plugins.register(
        ScriptedPlugin(
            ModelBackend(),
            ModelBackend(name="anthropic", agents={2: {"fail_in": {Phase.GENERATE: BackendUnavailable(DOWN)}}}),
            ModelBackend(name="stalling", defaults={"hang_in": frozenset({Phase.CRITIQUE}), "probe": stalling}),
            ScriptedCheck(name="lint", kind="lint"),
        ),
        name="tracing-test-doubles",
    )
    return orchestrator_plugins.host


@pytest.fixture
def serve(
    traced_host: PluginHost, exporter: InMemorySpanExporter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Serve:
    """``async with serve(**setting_overrides)``: a server whose tracing exports to ``exporter``
    (the service's own composition, with a provider of the test's in place of the one the
    OTEL_* variables would make)."""

    def in_memory(cls: type[Tracing], settings: Settings) -> Tracing:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        return cls(provider, settings)

    monkeypatch.setattr(Tracing, "from_environment", classmethod(in_memory))

    def factory(**overrides: Any) -> AbstractAsyncContextManager[RunningServer]:
        settings = make_settings(
            tmp_path,
            councils={
                "DEV": {"backend": "openai", "agents": 3},
                "ARCHITECT": {"backend": "openai", "agents": 1},
                "OPS": {"backend": "anthropic", "agents": 3},
                "STALL": {"backend": "stalling", "agents": 2},
            },
            check_weights={"lint": 1.0},
            **overrides,
        )
        return running_server(settings, plugins=traced_host)

    return factory


@pytest.fixture
async def stub(serve: Serve) -> AsyncIterator[tuple[RunningServer, pb_grpc.OrchestratorServiceStub]]:
    async with serve() as server, grpc.aio.insecure_channel(server.address) as channel:
        yield server, pb_grpc.OrchestratorServiceStub(channel)


Served = tuple[RunningServer, pb_grpc.OrchestratorServiceStub]


def finished(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return list(exporter.get_finished_spans())


async def test_a_deliberate_rpc_holds_the_deliberation_its_phases_and_their_calls_and_checks(
    stub: Served, exporter: InMemorySpanExporter
) -> None:
    server, client = stub
    response = await client.Deliberate(request(task=TASK_TEXT, rounds=1), timeout=HANG_GUARD)
    spans = finished(exporter)

    rpc = one(spans, f"{SERVICE}/Deliberate")
    assert rpc.kind is SpanKind.SERVER
    assert rpc.parent is None
    assert rpc.attributes == {
        "rpc.system": "grpc", "rpc.service": SERVICE, "rpc.method": "Deliberate", "rpc.grpc.status_code": 0,
    }
    assert rpc.status.status_code is StatusCode.UNSET
    deliberation = one(spans, "deliberate DEV")
    assert parent_of(deliberation, spans) is rpc
    assert deliberation.attributes is not None
    assert {key: deliberation.attributes[key] for key in (
        "orchestrator.deliberation.id", "orchestrator.role", "orchestrator.kind", "orchestrator.agents",
        "orchestrator.rounds", "orchestrator.status", "orchestrator.rounds_run", "orchestrator.viable_proposals",
        "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
    )} == {
        "orchestrator.deliberation.id": response.deliberation_id, "orchestrator.role": "DEV",
        "orchestrator.kind": "deliberate", "orchestrator.agents": 3, "orchestrator.rounds": 1,
        "orchestrator.status": "succeeded", "orchestrator.rounds_run": 1, "orchestrator.viable_proposals": 3,
        "gen_ai.usage.input_tokens": response.usage.prompt_tokens,
        "gen_ai.usage.output_tokens": response.usage.completion_tokens,
    }

    phases = [span for span in spans if parent_of(span, spans) is deliberation]
    in_order = sorted(phases, key=lambda span: span.start_time or 0)
    assert [(p.name, (p.attributes or {})["orchestrator.round"]) for p in in_order] == [
        ("generate", 0), ("critique", 1), ("revise", 1), ("check", 0),
    ]
    calls = agent_calls(spans)
    record = await server.orchestrator.get_record(response.deliberation_id)
    assert len(calls) == len(record.calls) == 9  # 3 proposals, 3 critiques, 3 revisions
    for call in calls:
        phase = parent_of(call, spans)
        assert phase is not None
        assert phase in phases
        assert (call.attributes or {})["orchestrator.phase"] == phase.name
    checks = named(spans, "check lint")
    assert len(checks) == 3
    assert {parent_of(check, spans).name for check in checks} == {"check"}  # type: ignore[union-attr]
    assert {(c.attributes or {})["orchestrator.proposal.id"] for c in checks} == {
        result.proposal.proposal_id for result in response.results
    }
    assert {(c.attributes or {})["orchestrator.check.outcome"] for c in checks} == {"passed"}
    assert {span.context.trace_id for span in spans} == {rpc.context.trace_id}


async def test_each_agent_call_carries_the_genai_attributes_and_the_tokens_its_reply_counted(
    stub: Served, exporter: InMemorySpanExporter
) -> None:
    _server, client = stub
    response = await client.Deliberate(request(task=TASK_TEXT, rounds=1), timeout=HANG_GUARD)
    calls = agent_calls(finished(exporter))

    assert len(calls) == 9
    for call in calls:
        attributes = dict(call.attributes or {})
        index = int(str(attributes["gen_ai.agent.id"]).rsplit("-", 1)[1]) - 1
        assert call.kind is SpanKind.CLIENT
        assert call.name == f"chat {CONFIGURED_MODEL}"
        assert call.status.status_code is StatusCode.UNSET
        assert attributes == {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.system": "openai",
            "gen_ai.request.model": CONFIGURED_MODEL,
            "gen_ai.response.model": ANSWERING_MODEL,
            "gen_ai.usage.input_tokens": usage_of(index).prompt_tokens,
            "gen_ai.usage.output_tokens": usage_of(index).completion_tokens,
            "gen_ai.response.finish_reasons": ("stop",),
            "gen_ai.agent.id": f"dev-{index + 1}",
            "orchestrator.deliberation.id": response.deliberation_id,
            "orchestrator.role": "DEV",
            "orchestrator.phase": attributes["orchestrator.phase"],
            "orchestrator.round": 0 if attributes["orchestrator.phase"] == "generate" else 1,
            "orchestrator.backend": "openai",
            "orchestrator.outcome": "ok",
        }
    assert sum(int((c.attributes or {})["gen_ai.usage.input_tokens"]) for c in calls) == response.usage.prompt_tokens
    assert sum(
        int((c.attributes or {})["gen_ai.usage.output_tokens"]) for c in calls
    ) == response.usage.completion_tokens


async def test_an_orchestration_adds_the_select_phase_with_the_selectors_call(
    stub: Served, exporter: InMemorySpanExporter
) -> None:
    _, client = stub
    response = await client.Orchestrate(
        pb.OrchestrateRequest(deliberation=request(task=TASK_TEXT, rounds=1)), timeout=HANG_GUARD
    )
    spans = finished(exporter)

    rpc = one(spans, f"{SERVICE}/Orchestrate")
    orchestration = one(spans, "orchestrate DEV")
    assert parent_of(orchestration, spans) is rpc
    select = one(spans, "select")
    assert parent_of(select, spans) is orchestration
    (selector_call,) = [call for call in agent_calls(spans) if parent_of(call, spans) is select]
    assert (selector_call.attributes or {})["gen_ai.agent.id"] == "architect-1"
    assert (selector_call.attributes or {})["orchestrator.phase"] == "select"
    assert (orchestration.attributes or {})["orchestrator.deliberation.id"] == response.execution_id
    assert len(agent_calls(spans)) == 10


async def test_a_failed_agent_call_is_an_error_span_with_its_error_type(
    stub: Served, exporter: InMemorySpanExporter
) -> None:
    _, client = stub
    await client.Deliberate(request(role="OPS", task=TASK_TEXT, rounds=0), timeout=HANG_GUARD)
    calls = agent_calls(finished(exporter))

    failed = [call for call in calls if call.status.status_code is StatusCode.ERROR]
    assert len(failed) == 1
    (span,) = failed
    assert (span.attributes or {})["gen_ai.agent.id"] == "ops-3"
    assert (span.attributes or {})["error.type"] == "error"
    assert (span.attributes or {})["gen_ai.provider.name"] == "anthropic"
    assert span.status.description == DOWN
    assert "gen_ai.response.finish_reasons" not in (span.attributes or {})
    assert all("error.type" not in (call.attributes or {}) for call in calls if call is not span)


async def test_the_rpc_span_continues_the_callers_traceparent(
    stub: Served, exporter: InMemorySpanExporter
) -> None:
    _, client = stub
    metadata = (("traceparent", f"00-{TRACE_ID}-{CALLER_SPAN_ID}-01"), ("tracestate", "vendor=opaque"))
    await client.Deliberate(request(task=TASK_TEXT, rounds=0), metadata=metadata, timeout=HANG_GUARD)
    spans = finished(exporter)

    rpc = one(spans, f"{SERVICE}/Deliberate")
    assert rpc.parent is not None
    assert rpc.parent.is_remote
    assert format(rpc.context.trace_id, "032x") == TRACE_ID
    assert format(rpc.parent.span_id, "016x") == CALLER_SPAN_ID
    assert rpc.context.trace_state.get("vendor") == "opaque"
    assert {format(span.context.trace_id, "032x") for span in spans} == {TRACE_ID}


async def test_a_failed_rpc_is_an_error_span_with_its_status_code(
    stub: Served, exporter: InMemorySpanExporter
) -> None:
    _, client = stub
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.Deliberate(request(role="NOBODY", task=TASK_TEXT), timeout=HANG_GUARD)
    rpc = one(finished(exporter), f"{SERVICE}/Deliberate")

    assert raised.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert (rpc.attributes or {})["rpc.grpc.status_code"] == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert rpc.status.status_code is StatusCode.ERROR


async def test_stream_deliberation_spans_nest_under_the_streaming_rpc(
    stub: Served, exporter: InMemorySpanExporter
) -> None:
    _, client = stub
    events = [event async for event in client.StreamDeliberation(request(task=TASK_TEXT, rounds=1), timeout=HANG_GUARD)]
    spans = finished(exporter)

    assert events
    assert events[-1].WhichOneof("event") == "ranking"
    rpc = one(spans, f"{SERVICE}/StreamDeliberation")
    assert rpc.kind is SpanKind.SERVER
    assert (rpc.attributes or {})["rpc.grpc.status_code"] == 0
    deliberation = one(spans, "deliberate DEV")
    assert parent_of(deliberation, spans) is rpc
    assert len(agent_calls(spans)) == 9
    assert all(parent_of(call, spans) in named(spans, call_phase(call)) for call in agent_calls(spans))


async def test_a_stream_the_client_cancels_ends_its_spans_as_cancelled(
    stub: Served, exporter: InMemorySpanExporter, stalling: ConcurrencyProbe
) -> None:
    _, client = stub
    call = client.StreamDeliberation(request(role="STALL", task=TASK_TEXT, rounds=1), timeout=HANG_GUARD)
    await eventually(lambda: stalling.in_flight[Phase.CRITIQUE] == 2, "both critiques to be under way")
    call.cancel()
    rpc_name = f"{SERVICE}/StreamDeliberation"
    await eventually(lambda: bool(named(finished(exporter), rpc_name)), "the RPC's span to end")
    await eventually(lambda: bool(named(finished(exporter), "deliberate STALL")), "the deliberation's span to end")
    spans = finished(exporter)

    rpc = one(spans, rpc_name)
    assert (rpc.attributes or {})["rpc.grpc.status_code"] == grpc.StatusCode.CANCELLED.value[0]
    assert rpc.status.status_code is StatusCode.ERROR
    deliberation = one(spans, "deliberate STALL")
    assert parent_of(deliberation, spans) is rpc
    assert (deliberation.attributes or {})["orchestrator.status"] == "cancelled"
    assert deliberation.status.status_code is StatusCode.ERROR
    critiques = [call for call in agent_calls(spans) if call_phase(call) == "critique"]
    assert len(critiques) == 2
    assert {(c.attributes or {})["error.type"] for c in critiques} == {"cancelled"}
    assert one(spans, "critique").status.status_code is StatusCode.ERROR


def call_phase(span: ReadableSpan) -> str:
    return str((span.attributes or {})["orchestrator.phase"])


async def test_health_checks_are_not_traced(stub: Served, exporter: InMemorySpanExporter) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    server, _ = stub
    async with grpc.aio.insecure_channel(server.address) as channel:
        await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=HANG_GUARD)
    assert finished(exporter) == []


@pytest.mark.parametrize("trace_content", [False, True])
async def test_prompts_and_replies_reach_spans_only_when_trace_content_is_on(
    serve: Serve, exporter: InMemorySpanExporter, trace_content: bool
) -> None:
    async with serve(trace_content=trace_content) as server, grpc.aio.insecure_channel(server.address) as channel:
        response = await pb_grpc.OrchestratorServiceStub(channel).Deliberate(
            request(task=TASK_TEXT, rounds=1), timeout=HANG_GUARD
        )
    text = attributes_text(finished(exporter))
    reply = response.results[0].proposal.content
    assert TASK_TEXT in reply  # the scripted proposal repeats the task

    assert (TASK_TEXT in text) is trace_content
    assert (reply in text) is trace_content
    generate_calls = [call for call in agent_calls(finished(exporter)) if call_phase(call) == "generate"]
    assert all(("gen_ai.input.messages" in (c.attributes or {})) is trace_content for c in generate_calls)
    if trace_content:
        import json

        (message,) = json.loads(str((generate_calls[0].attributes or {})["gen_ai.output.messages"]))
        assert message["role"] == "assistant"
        assert message["finish_reason"] == "stop"
        assert message["parts"][0]["content"].startswith("Proposal by dev-")


async def test_current_trace_ids_name_the_span_current_in_a_handler(exporter: InMemorySpanExporter) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    traced = Tracing(provider, make_settings(Path("unused")))
    try:
        tracer = provider.get_tracer("test")
        assert current_trace_ids() is None  # no span is current
        with tracer.start_as_current_span("work") as span:
            ids = current_trace_ids()
        context = span.get_span_context()
        assert ids == (format(context.trace_id, "032x"), format(context.span_id, "016x"))
    finally:
        traced.close()
    with tracer.start_as_current_span("after close"):
        assert current_trace_ids() is None  # tracing is off again


def test_no_otel_variable_means_no_tracing(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert Tracing.from_environment(make_settings(Path("unused"))) is None
    assert current_trace_ids() is None


@pytest.mark.parametrize(
    ("environ", "names"),
    [
        ({}, []),
        ({"OTEL_TRACES_EXPORTER": "none"}, []),
        ({"OTEL_TRACES_EXPORTER": "console"}, ["console"]),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, ["otlp_proto_grpc"]),
        ({"OTEL_TRACES_EXPORTER": "otlp,console", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
         ["otlp_proto_http", "console"]),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, ["otlp_proto_grpc"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces",
          "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
         ["otlp_proto_http"]),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_TRACES_EXPORTER": "none"}, []),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}, []),
    ],
)
def test_which_exporters_the_variables_name(environ: dict[str, str], names: list[str]) -> None:
    assert tracing.tracing_configured(environ) is bool(names)
    if names:
        assert tracing.exporter_names(environ) == names


def test_an_exporter_that_is_not_installed_stops_startup_saying_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    expected = r"'zipkin' exporter .* pip install opentelemetry-exporter-zipkin"
    with pytest.raises(tracing.TracingUnavailable, match=expected):
        Tracing.from_environment(make_settings(Path("unused")))


def test_an_unknown_otlp_protocol_stops_startup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    with pytest.raises(tracing.TracingUnavailable, match="'http/json'"):
        Tracing.from_environment(make_settings(Path("unused")))


@pytest.fixture(autouse=True)
def _no_tracing_left_open() -> Iterator[None]:
    yield
    assert current_trace_ids() is None
