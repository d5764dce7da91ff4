"""The Grafana dashboard (deploy/k8s/components/monitoring/orchestrator-dashboard.json) and
the example queries of deploy/README.md's "Operating it".

The dashboard is well-formed: every panel has the Prometheus data source variable, queries,
a unique id and a place on the grid. Every query of both runs against a real Prometheus
scraping a running service after two rounds of deliberations, each with a failed one (its
agents time out, which in the second round opens their endpoint's circuit breaker), and
returns data. NEEDS_AN_EVENT
would name a query whose series only exist after an event the test cannot cause; it is
empty: the test causes each (timeouts, an open breaker, a heavy check's slot wait), and the
loop-stall and abandoned-thread series exist from the start.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import urllib.error
from pathlib import Path
from typing import Any

import grpc
from prometheus_support import api, query, running_prometheus

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_core.models import Phase
from orchestrator_core.plugins import PluginHost
from orchestrator_core.settings import CouncilSettings, Settings
from orchestrator_core.testing import ScriptedBackend, ScriptedCheck, ScriptedPlugin
from orchestrator_grpc.server import RunningServer, running_server

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "k8s" / "components" / "monitoring" / "orchestrator-dashboard.json"
README = ROOT / "deploy" / "README.md"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GRID_COLUMNS = 24

TEMPLATE_VALUES = {"$__rate_interval": "1m", "${role}": ".*", "$role": ".*"}
"""What Grafana puts in place of the dashboard's variables, as the test runs the queries: the
rate window (several scrapes of the test's 1 s interval) and every role."""

NEEDS_AN_EVENT: dict[str, str] = {}
"""Metric names whose queries may return nothing here, and why: their series exist only after
an event the test does not cause. Every other query must return data."""

HANG_GUARD = 60.0
"""Seconds after which a wait for Prometheus that should have ended fails the test."""


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def panels() -> list[dict[str, Any]]:
    """The panels that query (rows only group them)."""
    return [panel for panel in dashboard()["panels"] if panel["type"] != "row"]


def dashboard_queries() -> list[tuple[str, str]]:
    return [(panel["title"], target["expr"]) for panel in panels() for target in panel["targets"]]


def readme_queries() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("\n## Operating it"):]
    return [" ".join(block.split()) for block in re.findall(r"^```promql\n(.*?)^```", section, re.M | re.S)]


def substituted(expression: str) -> str:
    for variable, value in TEMPLATE_VALUES.items():
        expression = expression.replace(variable, value)
    assert "$" not in expression, f"a template variable is left in {expression}"
    return expression


def metric_names(expression: str) -> set[str]:
    return set(re.findall(r"\b((?:grpc_server|orchestrator)_[a-z_]+)\b", expression))


# The dashboard's shape, as Grafana reads it.


def test_the_dashboard_has_a_prometheus_datasource_variable_and_a_role_variable() -> None:
    found = dashboard()
    assert found["schemaVersion"] >= 36
    assert found["uid"] == "orchestrator"
    assert found["title"] == "Orchestrator"
    variables = {variable["name"]: variable for variable in found["templating"]["list"]}
    assert set(variables) == {"datasource", "role"}
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == ("datasource", "prometheus")
    role = variables["role"]
    assert role["type"] == "query"
    assert role["datasource"] == DATASOURCE
    assert role["query"]["query"] == role["definition"] == "label_values(orchestrator_council_ready, role)"
    assert (role["multi"], role["includeAll"], role["allValue"]) == (True, True, ".*")


def test_every_panel_has_the_datasource_queries_a_unique_id_and_a_place_of_its_own() -> None:
    everything = dashboard()["panels"]
    ids = [panel["id"] for panel in everything]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {sorted(ids)}"
    cells: dict[tuple[int, int], str] = {}
    for panel in everything:
        grid = panel["gridPos"]
        assert set(grid) == {"h", "w", "x", "y"}, panel["title"]
        assert all(isinstance(v, int) and v >= 0 for v in grid.values()), panel["title"]
        assert min(grid["w"], grid["h"]) > 0, panel["title"]
        assert grid["x"] + grid["w"] <= GRID_COLUMNS, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]
    for panel in panels():
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], f"{panel['title']!r} has no queries"
        assert panel.get("description"), f"{panel['title']!r} does not say what it shows"
        references = [target["refId"] for target in panel["targets"]]
        assert len(references) == len(set(references)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert target["expr"].strip(), panel["title"]
            substituted(target["expr"])


def test_the_panels_cover_requests_deliberations_agent_calls_checks_breakers_plugins_and_stalls() -> None:
    named = {name for _, expression in dashboard_queries() for name in metric_names(expression)}
    assert named >= {
        "grpc_server_handled_total", "grpc_server_handling_seconds_bucket",
        "orchestrator_deliberations_total", "orchestrator_deliberation_duration_seconds_bucket",
        "orchestrator_deliberations_in_flight", "orchestrator_agent_call_duration_seconds_bucket",
        "orchestrator_agent_calls_total", "orchestrator_agent_tokens_total",
        "orchestrator_check_duration_seconds_bucket", "orchestrator_check_runs_total",
        "orchestrator_breaker_state", "orchestrator_plugin_failures_total", "orchestrator_loop_stalls_total",
    }
    latency = next(e for title, e in dashboard_queries() if "gRPC handling latency" in title)
    assert "histogram_quantile" in latency
    quantiles = {q for title, e in dashboard_queries() if "gRPC handling latency" in title
                 for q in re.findall(r"histogram_quantile\((0\.\d+)", e)}
    assert quantiles == {"0.5", "0.95", "0.99"}


def test_the_readme_gives_the_example_queries() -> None:
    queries = readme_queries()
    assert len(queries) == 6
    named = {name for query in queries for name in metric_names(query)}
    assert named == {"grpc_server_handled_total", "orchestrator_deliberation_duration_seconds_bucket",
                     "orchestrator_agent_tokens_total", "orchestrator_breaker_state",
                     "orchestrator_agent_calls_total"}


def test_every_allowed_gap_names_a_metric_the_dashboard_queries() -> None:
    """The allow-list holds no stale entry."""
    named = {name for _, expression in dashboard_queries() for name in metric_names(expression)}
    assert set(NEEDS_AN_EVENT) <= named


# Every query against a real Prometheus scraping a running service.


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        host="127.0.0.1",
        port=0,
        metrics_port=0,
        database_path=tmp_path / "records.sqlite3",
        councils={
            "DEV": CouncilSettings(backend="scripted", agents=3, options={"model": "scripted-small"}),
            "QA": CouncilSettings(backend="scripted", agents=2, options={"model": "scripted-large"}),
            # Agents that never finish generating: the calls time out and the deliberation
            # fails (the quorum is 2); the endpoint's breaker opens in the second one.
            "OPS": CouncilSettings(backend="flaky", agents=3, options={"model": "flaky-model"}),
        },
        selector_role="",
        agent_timeout_seconds=0.5,
        breaker_failure_threshold=4,
        breaker_cooldown_seconds=3600,
    )


def _plugins() -> PluginHost:
    host = PluginHost()
    host.register(
        ScriptedPlugin(
            ScriptedBackend(),
            ScriptedBackend(name="flaky", defaults={"hang_in": frozenset({Phase.GENERATE})}),
            ScriptedCheck(name="lint", kind="lint", score_of=lambda proposal: 0.9),
            # Heavy: it takes a slot (and its wait is observed); it fails every proposal.
            ScriptedCheck(name="style", kind="lint", score_of=lambda proposal: 0.3, heavy=True),
        ),
        name="dashboard-doubles",
    )
    host.collect()
    return host


async def _deliberate(server: RunningServer, roles: tuple[str, ...]) -> list[grpc.StatusCode]:
    """A deliberation of each role in turn; the status code of each."""
    codes: list[grpc.StatusCode] = []
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = pb_grpc.OrchestratorServiceStub(channel)
        for role in roles:
            try:
                await stub.Deliberate(pb.DeliberateRequest(role=role, task="Add two numbers", rounds=1))
                codes.append(grpc.StatusCode.OK)
            except grpc.aio.AioRpcError as error:
                codes.append(error.code())
    return codes


async def _query(base_url: str, expression: str) -> list[dict[str, Any]]:
    """An instant query's result vector, off the event loop (which serves /metrics)."""
    try:
        return await asyncio.to_thread(query, base_url, expression)
    except urllib.error.HTTPError as error:  # a query Prometheus rejects: its body says why
        raise AssertionError(f"{expression}: {error.read().decode(errors='replace')}") from error


async def _scraped_after_deliberations(base_url: str, deliberations: int) -> None:
    """Waits until Prometheus holds every deliberation and has scraped twice more, so each
    rate has samples on both sides of the deliberations."""
    async with asyncio.timeout(HANG_GUARD):
        while True:
            found = await _query(base_url, "sum(orchestrator_deliberations_total)")
            if found and float(found[0]["value"][1]) == deliberations:
                break
            await asyncio.sleep(0.2)
        (seen,) = await _query(base_url, 'timestamp(up{job="orchestrator"})')
        while True:
            (now,) = await _query(base_url, 'timestamp(up{job="orchestrator"})')
            if float(now["value"][1]) >= float(seen["value"][1]) + 2:
                return
            await asyncio.sleep(0.2)


async def test_every_query_returns_data_from_a_prometheus_scraping_the_service(tmp_path: Path) -> None:
    async with running_server(_settings(tmp_path), plugins=_plugins()) as server:
        metrics = server.observability.metrics
        assert metrics is not None
        with running_prometheus([f"127.0.0.1:{metrics.port}"], tmp_path) as base_url:
            # Twice, with scrapes between: a series is first scraped at the value it was made
            # with, so only what a later scrape sees it gain shows in a rate.
            first = await _deliberate(server, ("DEV", "QA", "DEV", "OPS"))
            assert first[:3] == [grpc.StatusCode.OK] * 3
            assert first[3] != grpc.StatusCode.OK
            await _scraped_after_deliberations(base_url, len(first))
            second = await _deliberate(server, ("DEV", "QA", "DEV", "OPS"))
            assert second == first
            await _scraped_after_deliberations(base_url, len(first) + len(second))

            # The role variable's values: label_values(orchestrator_council_ready, role).
            roles = await asyncio.to_thread(
                api, base_url, "/api/v1/label/role/values", **{"match[]": "orchestrator_council_ready"})
            assert set(roles) >= {"DEV", "QA", "OPS"}
            empty: list[str] = []
            for title, expression in [*dashboard_queries(), *(("README", query) for query in readme_queries())]:
                result = await _query(base_url, substituted(expression))
                if metric_names(expression) & set(NEEDS_AN_EVENT):
                    continue
                values = [float(sample["value"][1]) for sample in result]
                if not any(math.isfinite(value) for value in values):
                    empty.append(f"{title}: {expression} -> {values}")
            assert empty == []

            # The README's examples say what they claim: OPS's endpoint is the open one, its
            # calls are the ones that timed out, and a share of the requests failed.
            requests, errors, latency, tokens, open_breakers, timeouts = [
                await _query(base_url, expression) for expression in readme_queries()]
            assert [sample["metric"]["backend"] for sample in open_breakers] == ["flaky"]
            assert [(s["metric"]["role"], s["metric"]["model"]) for s in timeouts] == [("OPS", "flaky-model")]
            assert float(timeouts[0]["value"][1]) > 0
            assert 0 < float(errors[0]["value"][1]) < 1
            assert {s["metric"]["model"] for s in tokens} == {"scripted-small", "scripted-large"}
            assert {s["metric"]["role"] for s in latency} == {"DEV", "QA", "OPS"}
            assert [s["metric"]["grpc_method"] for s in requests] == ["Deliberate"]

