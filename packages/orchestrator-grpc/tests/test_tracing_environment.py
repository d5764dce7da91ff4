"""Tracing as the OTEL_* variables configure it, each case in a fresh process that serves one
deliberation (``traced_process.py``): nothing of the SDK loaded when they are unset; spans
printed by the console exporter; and spans received over OTLP, HTTP and gRPC, by collectors
the test runs itself and decodes with opentelemetry-proto."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_test_support import HANG_GUARD, orchestrator_command
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

SCRIPT = Path(__file__).parent / "traced_process.py"
RPC_SPAN = "orchestrator.v1.OrchestratorService/Deliberate"


def run_traced(tmp_path: Path, **otel: str) -> tuple[dict[str, Any], str]:
    """Run the script with only ``otel`` of the OTEL_* variables; its results and its stdout."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(("OTEL_", "ORCH_"))}
    env.update(otel)
    results = tmp_path / "results.json"
    finished = subprocess.run(
        [sys.executable, str(SCRIPT), str(results)], env=env, capture_output=True, text=True,
        timeout=HANG_GUARD * 3, check=False,
    )
    assert finished.returncode == 0, finished.stderr
    return json.loads(results.read_text()), finished.stdout


def test_with_no_otel_variable_a_serving_process_loads_no_sdk_and_no_exporter(tmp_path: Path) -> None:
    results, stdout = run_traced(tmp_path)

    assert results["deliberation_id"]
    assert results["traced"] is False
    loaded = results["opentelemetry_modules"]
    assert [name for name in loaded if name.startswith(("opentelemetry.sdk", "opentelemetry.exporter"))] == []
    assert [name for name in loaded if name.startswith("opentelemetry.proto")] == []
    assert stdout == ""


def test_the_console_exporter_prints_the_spans(tmp_path: Path) -> None:
    results, stdout = run_traced(
        tmp_path, OTEL_TRACES_EXPORTER="console", OTEL_SERVICE_NAME="console-test", TRACED_PROCESS_LIBRARY_SPAN="1"
    )

    assert results["traced"] is True
    spans = console_spans(stdout)
    by_name = {span["name"]: span for span in spans}
    assert RPC_SPAN in by_name
    assert by_name["deliberate DEV"]["attributes"]["orchestrator.deliberation.id"] == results["deliberation_id"]
    assert by_name["deliberate DEV"]["parent_id"] == by_name[RPC_SPAN]["context"]["span_id"]
    assert {span["resource"]["attributes"]["service.name"] for span in spans} == {"console-test"}
    calls = [span for span in spans if span["attributes"].get("gen_ai.operation.name") == "chat"]
    assert len(calls) == 6
    # A library's spans, made with the global API, land under the agent call that made them.
    generate_calls = {
        span["context"]["span_id"] for span in calls if span["attributes"]["orchestrator.phase"] == "generate"
    }
    library_spans = [span for span in spans if span["name"] == "library work"]
    assert len(library_spans) == 2
    assert {span["parent_id"] for span in library_spans} == generate_calls


def console_spans(stdout: str) -> list[dict[str, Any]]:
    """The console exporter's spans: one indented JSON object after another."""
    decoder = json.JSONDecoder()
    spans, at = [], 0
    while (at := _next_object(stdout, at)) >= 0:
        span, at = decoder.raw_decode(stdout, at)
        spans.append(span)
    return spans


def _next_object(text: str, at: int) -> int:
    return text.find("{", at)


class Collector:
    """What a collector received: the export requests, decoded."""

    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.paths: list[str] = []
        self.headers: list[dict[str, str]] = []

    def spans(self) -> list[tuple[dict[str, str], trace_pb2.Span]]:
        """Each span with its resource's string attributes."""
        return [
            ({a.key: a.value.string_value for a in resource_spans.resource.attributes}, span)
            for request in self.requests
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]


@pytest.fixture
def http_collector() -> Iterator[tuple[str, Collector]]:
    collector = Collector()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            collector.paths.append(self.path)
            collector.headers.append({key.lower(): value for key, value in self.headers.items()})
            collector.requests.append(trace_service_pb2.ExportTraceServiceRequest.FromString(body))
            reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", collector
    finally:
        server.shutdown()
        server.server_close()
        thread.join(HANG_GUARD)


@pytest.fixture
def grpc_collector() -> Iterator[tuple[str, Collector]]:
    collector = Collector()

    class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(
            self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
        ) -> trace_service_pb2.ExportTraceServiceResponse:
            collector.requests.append(request)
            collector.headers.append({key: str(value) for key, value in context.invocation_metadata()})
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Receiver(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"http://127.0.0.1:{port}", collector
    finally:
        server.stop(None)


def assert_one_deliberation_traced(collector: Collector, deliberation_id: str, service_name: str) -> None:
    spans = collector.spans()
    assert {resource["service.name"] for resource, _ in spans} == {service_name}
    by_name = {span.name: span for _, span in spans}
    rpc, deliberation = by_name[RPC_SPAN], by_name["deliberate DEV"]
    assert rpc.kind == trace_pb2.Span.SPAN_KIND_SERVER
    assert rpc.parent_span_id == b""
    assert deliberation.parent_span_id == rpc.span_id
    attributes = {a.key: a.value for a in deliberation.attributes}
    assert attributes["orchestrator.deliberation.id"].string_value == deliberation_id
    calls = [span for _, span in spans if span.kind == trace_pb2.Span.SPAN_KIND_CLIENT]
    assert len(calls) == 6  # 2 agents: proposals, critiques, revisions
    for call in calls:
        call_attributes = {a.key: a.value for a in call.attributes}
        assert call_attributes["gen_ai.operation.name"].string_value == "chat"
        assert call_attributes["gen_ai.usage.input_tokens"].int_value == 10  # the scripted usage
        assert call_attributes["gen_ai.usage.output_tokens"].int_value == 5
    assert {span.trace_id for _, span in spans} == {rpc.trace_id}


def test_spans_reach_an_otlp_http_collector_as_the_variables_configure(
    tmp_path: Path, http_collector: tuple[str, Collector]
) -> None:
    endpoint, collector = http_collector
    results, _ = run_traced(
        tmp_path,
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"{endpoint}/collect/traces",
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_HEADERS="x-tenant=orchestrator-tests",
        OTEL_RESOURCE_ATTRIBUTES="service.name=from-attributes,deployment.environment=test",
    )

    assert results["traced"] is True
    assert set(collector.paths) == {"/collect/traces"}
    assert {headers["x-tenant"] for headers in collector.headers} == {"orchestrator-tests"}
    assert_one_deliberation_traced(collector, results["deliberation_id"], "from-attributes")


def test_spans_reach_an_otlp_grpc_collector_by_default_named_orchestrator(
    tmp_path: Path, grpc_collector: tuple[str, Collector]
) -> None:
    endpoint, collector = grpc_collector
    results, _ = run_traced(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_EXPORTER_OTLP_INSECURE="true")

    assert results["traced"] is True
    assert_one_deliberation_traced(collector, results["deliberation_id"], "orchestrator")


def test_serve_stops_at_startup_naming_the_exporter_package_to_install(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("OTEL_", "ORCH_"))}
    env.update(
        OTEL_TRACES_EXPORTER="zipkin", ORCH_PORT="0", ORCH_HOST="127.0.0.1",
        ORCH_DATABASE_PATH=str(tmp_path / "records.sqlite3"),
    )
    finished = subprocess.run(
        [orchestrator_command(), "serve"], env=env, capture_output=True, text=True, timeout=HANG_GUARD * 3,
        check=False,
    )

    assert finished.returncode == 1
    assert finished.stdout == ""  # it never served
    assert finished.stderr.splitlines()[-1] == (
        "orchestrator: traces are configured to go to the 'zipkin' exporter (OTEL_TRACES_EXPORTER, "
        "OTEL_EXPORTER_OTLP_*), which is not installed: pip install opentelemetry-exporter-zipkin; "
        "or unset OTEL_TRACES_EXPORTER and OTEL_EXPORTER_OTLP_ENDPOINT to trace nothing"
    )


def test_otel_sdk_disabled_turns_tracing_off(tmp_path: Path) -> None:
    results, stdout = run_traced(tmp_path, OTEL_TRACES_EXPORTER="console", OTEL_SDK_DISABLED="true")

    assert results["traced"] is False
    assert stdout == ""
