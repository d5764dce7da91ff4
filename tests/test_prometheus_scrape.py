"""A real Prometheus scrapes a running service after a few deliberations, a failed one among
them: the series it stores have the values the calls made, carry no id, and promtool finds
nothing to fault in the exposition."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

import grpc
import pytest
from prometheus_support import (
    promtool_check_metrics,
    query,
    query_value,
    running_prometheus,
    wait_for_target_up,
    wait_for_value,
)

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_core.errors import BackendUnavailable
from orchestrator_core.models import Phase
from orchestrator_core.settings import Settings
from orchestrator_core.testing import (
    SCRIPTED_USAGE,
    PluginRegistrar,
    ScriptedBackend,
    ScriptedCheck,
    ScriptedPlugin,
)
from orchestrator_grpc.server import running_server

TASK = "Write a function that adds two numbers"
AGENT_CALLS_PER_DELIBERATION = 9
"""Three agents, one round: 3 generate, 3 critique and 3 revise calls."""


def settings(tmp_path: Path) -> Settings:
    return Settings(
        host="127.0.0.1", port=0, metrics_port=0, database_path=tmp_path / "records.sqlite3",
        default_rounds=1, quorum=2, selector_role="",
        councils={"DEV": {"backend": "scripted", "agents": 3}, "DEVOPS": {"backend": "down", "agents": 1}},
    )


async def deliberations(address: str) -> list[str]:
    """Two deliberations and an orchestration that succeed, one that loses its quorum; the
    deliberation ids the client saw."""
    ids = []
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.OrchestratorServiceStub(channel)
        for _ in range(2):
            ids.append((await stub.Deliberate(pb.DeliberateRequest(role="DEV", task=TASK))).deliberation_id)
        orchestrated = await stub.Orchestrate(pb.OrchestrateRequest(deliberation=pb.DeliberateRequest(role="DEV",
                                                                                                      task=TASK)))
        ids.append(orchestrated.execution_id)
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await stub.Deliberate(pb.DeliberateRequest(role="DEVOPS", task=TASK))
        assert failed.value.code() is grpc.StatusCode.UNAVAILABLE
    return ids


def scraped_by_prometheus(metrics_port: int, directory: Path, ids: list[str]) -> None:
    """Prometheus's view of the service, checked (runs in a thread: it waits on Prometheus)."""
    with running_prometheus([f"127.0.0.1:{metrics_port}"], directory) as prometheus:
        wait_for_target_up(prometheus)
        wait_for_value(prometheus, "sum(orchestrator_deliberations_total)", 4)
        assert query_value(prometheus, 'sum(orchestrator_deliberations_total{status="succeeded"})') == 3
        assert query_value(
            prometheus, 'orchestrator_deliberations_total{role="DEVOPS",status="failed",error_kind="QuorumLost"}'
        ) == 1
        assert query_value(prometheus, 'sum(grpc_server_handled_total{grpc_code="OK"})') == 3
        assert query_value(prometheus, 'sum(grpc_server_handled_total{grpc_code="UNAVAILABLE"})') == 1
        assert query_value(prometheus, 'grpc_server_handled_total{grpc_method="Orchestrate",grpc_code="OK"}') == 1
        assert query_value(prometheus, "sum(orchestrator_deliberation_duration_seconds_count)") == 4
        assert query_value(prometheus, 'sum(orchestrator_agent_calls_total{outcome="ok"})') == (
            3 * AGENT_CALLS_PER_DELIBERATION
        )
        assert query_value(prometheus, 'sum(orchestrator_agent_tokens_total{type="input"})') == (
            3 * AGENT_CALLS_PER_DELIBERATION * SCRIPTED_USAGE.prompt_tokens
        )
        median = query_value(
            prometheus, "histogram_quantile(0.5, sum by (le) (orchestrator_agent_call_duration_seconds_bucket))"
        )
        assert median is not None
        assert 0 < median <= 0.01  # scripted agents answer at once: the first bucket
        assert query_value(prometheus, 'orchestrator_council_ready{role="DEV"}') == 1
        assert query_value(prometheus, 'up{job="orchestrator"}') == 1
        labels = {value for series in query(prometheus, '{__name__=~"orchestrator_.+|grpc_.+"}')
                  for value in series["metric"].values()}
        assert [i for i in ids if any(i in value for value in labels)] == []


async def test_a_real_prometheus_scrapes_the_service(orchestrator_plugins: PluginRegistrar, tmp_path: Path) -> None:
    orchestrator_plugins.register(
        ScriptedPlugin(
            ScriptedBackend(),
            ScriptedBackend(name="down", defaults={"fail_in": {Phase.GENERATE: BackendUnavailable("unreachable")}}),
            ScriptedCheck(name="lint", kind="lint"),
        ),
        name="scrape-test-doubles",
    )
    async with running_server(settings(tmp_path), plugins=orchestrator_plugins.host) as server:
        ids = await deliberations(server.address)
        metrics = server.observability.metrics
        assert metrics is not None
        await asyncio.to_thread(scraped_by_prometheus, metrics.port, tmp_path, ids)
        text = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{metrics.port}/metrics", timeout=10).read().decode()
        )
    linted = await asyncio.to_thread(promtool_check_metrics, text)
    assert (linted.returncode, linted.stdout, linted.stderr) == (0, "", "")


def test_without_prometheus_the_test_fails_saying_what_installs_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match=r"Debian package prometheus .*\.ci/run"):
        promtool_check_metrics("")
