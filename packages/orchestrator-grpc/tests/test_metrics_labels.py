"""Label values stay few whatever clients and plugins send: invented method paths, unknown
error kinds, models and roles beyond a cap; endpoints are shown without credentials."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_test_support import HANG_GUARD
from metrics_support import label_values, parse, scrape_text, total
from prometheus_client import CollectorRegistry

from orchestrator_core.models import CallOutcome, Phase, TokenUsage
from orchestrator_core.plugins import PluginHost
from orchestrator_core.settings import Settings
from orchestrator_core.telemetry import AgentCallScope, CheckScope, DeliberationScope
from orchestrator_grpc.observability.grpc_metrics import MAX_METHODS, GrpcServerMetrics
from orchestrator_grpc.observability.labels import LabelValues, endpoint_label
from orchestrator_grpc.observability.orchestrator_metrics import MAX_MODELS, MetricsTelemetry
from orchestrator_grpc.server import RunningServer, running_server


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    settings = Settings(host="127.0.0.1", port=0, metrics_port=0, database_path=tmp_path / "records.sqlite3",
                        health_refresh_seconds=0.05, councils={})
    async with running_server(settings, plugins=PluginHost()) as running:
        yield running


def port_of(server: RunningServer) -> int:
    assert server.observability.metrics is not None
    return server.observability.metrics.port


async def test_paths_a_client_invents_are_one_series(server: RunningServer) -> None:
    async with grpc.aio.insecure_channel(server.address) as channel:
        for index in range(30):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await channel.unary_unary(f"/invented{index}.Service/Method{index}")(b"")
            assert refused.value.code() is grpc.StatusCode.UNIMPLEMENTED
    text = await scrape_text(port_of(server))
    samples = parse(text)
    assert total(samples, "grpc_server_started_total", grpc_service="unknown", grpc_method="unknown") == 30
    assert total(samples, "grpc_server_handled_total", grpc_service="unknown", grpc_method="unknown",
                 grpc_code="UNIMPLEMENTED") == 30
    assert label_values(samples, "grpc_server_started_total", "grpc_method") == {"unknown"}
    assert "invented" not in text


async def test_a_watch_counts_each_message_written_and_its_cancellation(server: RunningServer) -> None:
    async with grpc.aio.insecure_channel(server.address) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
        first = await watch.read()
        assert first.status == health_pb2.HealthCheckResponse.NOT_SERVING  # no council configured
        watch.cancel()
    labels = {"grpc_service": "grpc.health.v1.Health", "grpc_method": "Watch", "grpc_type": "server_stream"}
    async with asyncio.timeout(HANG_GUARD):
        while True:
            samples = parse(await scrape_text(port_of(server)))
            if total(samples, "grpc_server_handled_total", **labels):
                break
            await asyncio.sleep(0.05)
    assert total(samples, "grpc_server_handled_total", grpc_code="CANCELLED", **labels) == 1
    assert total(samples, "grpc_server_started_total", **labels) == 1
    assert total(samples, "grpc_server_msg_sent_total", **labels) == 1


async def test_each_configured_role_starts_at_zero(tmp_path: Path) -> None:
    settings = Settings(host="127.0.0.1", port=0, metrics_port=0, database_path=tmp_path / "records.sqlite3",
                        councils={"DEV": {"backend": "scripted"}, "QA": {"backend": "scripted"}})
    async with running_server(settings, plugins=PluginHost()) as running:
        samples = parse(await scrape_text(port_of(running)))
    for role in ("DEV", "QA"):
        for kind in ("deliberate", "orchestrate"):
            assert [value for name, labels, value in samples if name == "orchestrator_deliberations_total"
                    and labels == {"role": role, "kind": kind, "status": "succeeded", "error_kind": ""}] == [0]
            assert total(samples, "orchestrator_deliberations_in_flight", role=role, kind=kind) == 0
    assert label_values(samples, "orchestrator_deliberations_total", "role") == set(settings.councils)


def test_methods_beyond_the_cap_are_other() -> None:
    metrics = GrpcServerMetrics(CollectorRegistry())
    names = [metrics._name(f"/svc.S{i}/M") for i in range(MAX_METHODS + 5)]
    assert names[:MAX_METHODS] == [(f"svc.S{i}", "M") for i in range(MAX_METHODS)]
    assert names[MAX_METHODS:] == [("other", "other")] * 5
    assert metrics._name("/svc.S0/M") == ("svc.S0", "M")  # a method labelled before stays labelled


def test_label_values_take_the_configured_first_then_fold_beyond_the_cap() -> None:
    models = LabelValues(3, ["small", "large"])
    assert [models(m) for m in ("large", "seen-first", "seen-second", "small", "")] == [
        "large", "seen-first", "other", "small", "unknown"
    ]


@pytest.mark.parametrize(
    ("configured", "shown"),
    [
        ("https://user:sk-secret@api.example.com:8443/v1?key=sk-other", "https://api.example.com:8443/v1?key=***"),
        ("http://127.0.0.1:11434/v1", "http://127.0.0.1:11434/v1"),
        ("/opt/agents/bin/reply --api-key sk-secret", "reply"),
        ("['/usr/bin/python3', 'agent.py', '--token=sk-secret']", "python3"),
        ("", "default"),
    ],
)
def test_endpoints_are_shown_without_credentials(configured: str, shown: str) -> None:
    assert endpoint_label(configured) == shown


def test_unknown_error_kinds_statuses_and_extra_models_are_folded() -> None:
    registry = CollectorRegistry()
    telemetry = MetricsTelemetry(Settings(councils={"DEV": {"backend": "scripted", "options": {"model": "m0"}}}),
                                 registry)
    scope = DeliberationScope("id-1", "deliberate", "DEV", 3, 1)
    with telemetry.deliberation(scope):
        assert registry.get_sample_value("orchestrator_deliberations_in_flight",
                                         {"role": "DEV", "kind": "deliberate"}) == 1
        scope.status, scope.error_kind = "failed", "KeyError"
    assert registry.get_sample_value(
        "orchestrator_deliberations_total", {"role": "DEV", "kind": "deliberate", "status": "failed",
                                             "error_kind": "other"}
    ) == 1
    for index in range(MAX_MODELS + 2):
        call = AgentCallScope("id-1", "DEV", "dev-1", "scripted", f"m{index}", Phase.GENERATE, 0)
        with telemetry.agent_call(call):
            call.outcome, call.usage = CallOutcome.OK, TokenUsage(1, 1)
    other = {"role": "DEV", "backend": "scripted", "model": "other", "phase": "generate", "outcome": "ok"}
    assert registry.get_sample_value("orchestrator_agent_calls_total", other) == 2
    check = CheckScope("id-1", "DEV", "lint", "lint", "dev-1-v0")
    with telemetry.check(check):
        pass  # ended without an outcome: cancelled
    assert registry.get_sample_value("orchestrator_check_runs_total",
                                     {"check": "lint", "kind": "lint", "outcome": "cancelled"}) == 1
