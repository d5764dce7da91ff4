"""/metrics of a real server after real calls: every counter and histogram moves by what the
calls did, the labels are the configuration's (no ids, no secrets), and the port answers
without the bearer token the gRPC port wants."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from grpc_test_support import HANG_GUARD
from metrics_support import ModelBackend, Samples, label_values, parse, scrape_text, total

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_core.errors import BackendUnavailable
from orchestrator_core.models import Phase, Proposal, TokenUsage
from orchestrator_core.plugins import PluginHost
from orchestrator_core.settings import Settings
from orchestrator_core.testing import PluginRegistrar, ScriptedCheck, ScriptedPlugin
from orchestrator_grpc.server import RunningServer, running_server

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
TOKEN = "bearer-token-secret-7d1e"
DB_PASSWORD = "pg-password-secret-52ab"
URL_USER, URL_PASSWORD, QUERY_KEY = "operator-name-9c4f", "url-password-secret-0e3b", "query-key-secret-61fd"
AGENT_KEY = "agent-api-key-secret-a8c2"
SECRETS = (TOKEN, DB_PASSWORD, URL_USER, URL_PASSWORD, QUERY_KEY, AGENT_KEY)
DEV_URL = f"http://{URL_USER}:{URL_PASSWORD}@127.0.0.1:9/v1?api_key={QUERY_KEY}"
DEV_ENDPOINT_SHOWN = "http://127.0.0.1:9/v1?api_key=***"
REQUEST_ID = "request-id-3f9e0a"
USAGE = TokenUsage(prompt_tokens=7, completion_tokens=3)
AUTH = (("authorization", f"Bearer {TOKEN}"),)
SERVICE = "orchestrator.v1.OrchestratorService"
DOWN = "cannot reach http://127.0.0.1:9/v1: connection refused"


def policy_score(proposal: Proposal) -> float:
    """dev-1's proposals fail the policy check; the others pass."""
    return 0.2 if proposal.author_id == "dev-1" else 1.0


@pytest.fixture
def host(orchestrator_plugins: PluginRegistrar) -> PluginHost:
    orchestrator_plugins.register(
        ScriptedPlugin(
            ModelBackend(name="remote", defaults={"usage": USAGE}),
            ModelBackend(name="down", defaults={"fail_in": {Phase.GENERATE: BackendUnavailable(DOWN)}}),
            ModelBackend(name="stalling", defaults={"usage": USAGE, "hang_in": frozenset({Phase.CRITIQUE})}),
            ScriptedCheck(name="lint", kind="lint"),
            ScriptedCheck(name="policy", kind="policy", score_of=policy_score),
            ScriptedCheck(name="dryrun", kind="dryrun", heavy=True),
        ),
        name="metrics-test-doubles",
    )
    return orchestrator_plugins.host


@pytest.fixture
def database_url() -> Iterator[str]:
    """The test PostgreSQL database with a password in its URL (trust authentication ignores
    it), its tables in a schema of this test's own."""
    schema = f"orch_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')  # type: ignore[arg-type]
    try:
        yield (f"postgresql://postgres:{DB_PASSWORD}@127.0.0.1:5432/test"
               f"?options=-csearch_path%3D{schema}")
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')  # type: ignore[arg-type]


def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        host="127.0.0.1", port=0, metrics_port=0, database_url=database_url,
        auth_tokens=[TOKEN], grace_period_seconds=5.0, default_rounds=1, quorum=2,
        breaker_failure_threshold=1,  # the failing council's endpoint opens its circuit at once
        check_weights={"lint": 1.0, "policy": 1.0, "dryrun": 1.0},
        councils={
            "DEV": {"backend": "remote", "agents": 3,
                    "options": {"model": "dev-model", "base_url": DEV_URL, "api_key": AGENT_KEY}},
            "ARCHITECT": {"backend": "remote", "agents": 1, "options": {"model": "arch-model"}},
            "DEVOPS": {"backend": "down", "agents": 1, "options": {"model": "ops-model"}},
            "STALL": {"backend": "stalling", "agents": 2, "options": {"model": "stall-model"}},
        },
    )


@pytest.fixture
async def server(host: PluginHost, tmp_path: Path, database_url: str) -> AsyncIterator[RunningServer]:
    async with running_server(settings(tmp_path, database_url), plugins=host) as running:
        yield running


def metrics_port(server: RunningServer) -> int:
    metrics = server.observability.metrics
    assert metrics is not None
    return metrics.port


async def scrape(server: RunningServer) -> tuple[str, Samples]:
    text = await scrape_text(metrics_port(server))
    return text, parse(text)


async def until_scraped(server: RunningServer, name: str, value: float, **labels: str) -> tuple[str, Samples]:
    """Scrape until ``name``{labels} reaches ``value`` (a cancelled call ends on the server
    after the client has moved on)."""
    async with asyncio.timeout(HANG_GUARD):
        while True:
            text, samples = await scrape(server)
            if total(samples, name, **labels) >= value:
                return text, samples
            await asyncio.sleep(0.05)


def request(role: str = "DEV", **fields: Any) -> pb.DeliberateRequest:
    return pb.DeliberateRequest(role=role, task="Write a function that adds two numbers", **fields)


async def collect(stream: AsyncIterator[pb.DeliberationEvent], into: list[pb.DeliberationEvent]) -> None:
    """Read ``stream`` to its end into ``into`` (which keeps what came before an error)."""
    async for event in stream:
        into.append(event)


async def run_calls(server: RunningServer) -> dict[str, Any]:
    """The calls whose metrics the tests check; what the client saw of them."""
    seen: dict[str, Any] = {}
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = pb_grpc.OrchestratorServiceStub(channel)
        seen["deliberate"] = await stub.Deliberate(request(request_id=REQUEST_ID), metadata=AUTH)
        seen["streamed"] = [event async for event in stub.StreamDeliberation(request(), metadata=AUTH)]
        seen["orchestrate"] = await stub.Orchestrate(pb.OrchestrateRequest(deliberation=request()), metadata=AUTH)
        seen["codes"] = []
        for call in (
            stub.Deliberate(request("DEVOPS"), metadata=AUTH),  # its only agent fails: quorum lost
            stub.GetDeliberation(pb.GetDeliberationRequest(deliberation_id=uuid.uuid4().hex), metadata=AUTH),
            stub.GetStatus(pb.GetStatusRequest()),  # no token
            channel.unary_unary(f"/{SERVICE}/NoSuchMethod-{REQUEST_ID}")(b""),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await call
            seen["codes"].append(failed.value.code())
        # A stream aborted by the core's error, after whatever events it sent.
        seen["failing"] = []
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await collect(stub.StreamDeliberation(request("DEVOPS"), metadata=AUTH), seen["failing"])
        seen["codes"].append(failed.value.code())
        # A stream the client cancels once both agents have proposed (they hang critiquing).
        stalled = stub.StreamDeliberation(request("STALL"), metadata=AUTH)
        seen["stalled"] = []
        async for event in stalled:
            seen["stalled"].append(event)
            if sum(e.HasField("proposal_generated") for e in seen["stalled"]) == 2:
                break
        stalled.cancel()
    return seen


async def test_metrics_move_by_what_the_calls_did(server: RunningServer) -> None:
    seen = await run_calls(server)
    assert seen["codes"] == [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND,
                             grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.UNIMPLEMENTED,
                             grpc.StatusCode.UNAVAILABLE]
    _, samples = await until_scraped(
        server, "grpc_server_handled_total", 1, grpc_method="StreamDeliberation", grpc_code="CANCELLED"
    )
    _, samples = await until_scraped(server, "orchestrator_deliberations_total", 1, status="cancelled")

    def grpc_calls(name: str, method: str, **labels: str) -> float:
        service = "unknown" if method == "unknown" else SERVICE
        return total(samples, name, grpc_service=service, grpc_method=method, **labels)

    # gRPC: every call counted, by its real status code, rejected and unknown ones included.
    handled = "grpc_server_handled_total"
    assert grpc_calls("grpc_server_started_total", "Deliberate", grpc_type="unary") == 2
    assert grpc_calls(handled, "Deliberate", grpc_code="OK") == 1
    assert grpc_calls(handled, "Deliberate", grpc_code="UNAVAILABLE") == 1
    assert grpc_calls("grpc_server_msg_received_total", "Deliberate") == 2
    assert grpc_calls("grpc_server_msg_sent_total", "Deliberate") == 1
    assert grpc_calls("grpc_server_started_total", "StreamDeliberation", grpc_type="server_stream") == 3
    assert grpc_calls(handled, "StreamDeliberation", grpc_code="OK") == 1
    assert grpc_calls(handled, "StreamDeliberation", grpc_code="UNAVAILABLE") == 1
    assert grpc_calls(handled, "StreamDeliberation", grpc_code="CANCELLED") == 1
    assert grpc_calls("grpc_server_msg_sent_total", "StreamDeliberation") == (
        len(seen["streamed"]) + len(seen["failing"]) + len(seen["stalled"])
    )
    assert grpc_calls(handled, "Orchestrate", grpc_code="OK") == 1
    assert grpc_calls(handled, "GetDeliberation", grpc_code="NOT_FOUND") == 1
    assert grpc_calls(handled, "GetStatus", grpc_code="UNAUTHENTICATED") == 1
    assert grpc_calls(handled, "unknown", grpc_type="unary", grpc_code="UNIMPLEMENTED") == 1
    assert total(samples, handled) == 9
    assert total(samples, "grpc_server_handling_seconds_count") == 9
    assert label_values(samples, handled, "grpc_method") == {
        "Deliberate", "StreamDeliberation", "Orchestrate", "GetDeliberation", "GetStatus", "unknown"
    }

    # Deliberations: by role, kind, status and error kind.
    deliberations = "orchestrator_deliberations_total"
    assert total(samples, deliberations, role="DEV", kind="deliberate", status="succeeded", error_kind="") == 2
    assert total(samples, deliberations, role="DEV", kind="orchestrate", status="succeeded", error_kind="") == 1
    assert total(samples, deliberations, role="DEVOPS", status="failed", error_kind="QuorumLost") == 2
    assert total(samples, deliberations, role="STALL", status="cancelled", error_kind="Cancelled") == 1
    assert total(samples, deliberations) == 6
    assert total(samples, "orchestrator_deliberation_duration_seconds_count") == 6
    assert total(samples, "orchestrator_deliberations_in_flight") == 0
    dev_outcomes = [seen["deliberate"], seen["streamed"][-1].ranking, seen["orchestrate"].deliberation]
    assert total(samples, "orchestrator_deliberation_rounds_count", role="DEV") == 3
    assert total(samples, "orchestrator_deliberation_rounds_sum", role="DEV") == sum(o.rounds for o in dev_outcomes)
    assert total(samples, "orchestrator_deliberation_viable_proposals_sum", role="DEV") == sum(
        o.viable_proposals for o in dev_outcomes
    )
    assert total(samples, "orchestrator_deliberation_rounds_count") == 3  # failed runs ranked nothing

    # Agent calls: three deliberations of 3 generate, 3 critique and 3 revise calls, one
    # selection; the failed council's two calls (the second refused by its open circuit);
    # the stalled council's proposals and the
    # critiques its cancellation cut short.
    calls = "orchestrator_agent_calls_total"
    for phase in ("generate", "critique", "revise"):
        assert total(samples, calls, role="DEV", backend="remote", model="dev-model", phase=phase, outcome="ok") == 9
    assert total(samples, calls, role="DEV", backend="remote", model="arch-model", phase="select", outcome="ok") == 1
    assert total(samples, calls, role="DEVOPS", backend="down", model="ops-model", outcome="error") == 2
    assert total(samples, calls, role="STALL", model="stall-model", phase="generate", outcome="ok") == 2
    assert total(samples, calls, role="STALL", model="stall-model", phase="critique", outcome="cancelled") == 2
    assert total(samples, calls) == 28 + 2 + 4
    assert total(samples, "orchestrator_agent_call_duration_seconds_count") == 34

    # Tokens: what the agents reported, as the responses add them up.
    tokens = "orchestrator_agent_tokens_total"
    dev_usage = sum((o.usage.prompt_tokens for o in dev_outcomes), 0)
    assert dev_usage == 27 * USAGE.prompt_tokens
    assert total(samples, tokens, backend="remote", model="dev-model", type="input") == dev_usage
    assert total(samples, tokens, backend="remote", model="dev-model", type="output") == 27 * USAGE.completion_tokens
    assert total(samples, tokens, model="arch-model", type="input") == seen["orchestrate"].selection_usage.prompt_tokens
    assert total(samples, tokens, model="stall-model", type="output") == 2 * USAGE.completion_tokens
    assert total(samples, tokens, model="ops-model") == 0

    # Checks: three proposals in each of the three DEV deliberations, three checks each.
    runs = "orchestrator_check_runs_total"
    assert total(samples, runs, check="lint", kind="lint", outcome="passed") == 9
    assert total(samples, runs, check="policy", kind="policy", outcome="passed") == 6
    assert total(samples, runs, check="policy", kind="policy", outcome="failed") == 3
    assert total(samples, runs, check="dryrun", kind="dryrun", outcome="passed") == 9
    assert total(samples, "orchestrator_check_duration_seconds_count") == 27
    assert total(samples, "orchestrator_check_slot_wait_seconds_count") == 9  # the heavy check only
    assert label_values(samples, "orchestrator_check_slot_wait_seconds_count", "check") == {"dryrun"}

    # State read at scrape time.
    assert total(samples, "orchestrator_breaker_state", backend="remote", endpoint=DEV_ENDPOINT_SHOWN) == 0
    assert total(samples, "orchestrator_breaker_state", backend="down", endpoint="default") == 2  # open
    assert total(samples, "orchestrator_council_ready", role="DEV") == 1
    assert total(samples, "orchestrator_plugin_failures_total", plugin_kind="backend", plugin="down",
                 failure="errors") == 2
    assert total(samples, "orchestrator_loop_stalls_total") == 0
    assert total(samples, "orchestrator_abandoned_plugin_threads") == 0
    assert total(samples, "orchestrator_build_info") == 1


async def test_metrics_carry_no_id_and_no_secret(server: RunningServer) -> None:
    seen = await run_calls(server)
    text, samples = await until_scraped(server, "orchestrator_deliberations_total", 1, status="cancelled")
    ids = {seen["deliberate"].deliberation_id, seen["orchestrate"].execution_id, REQUEST_ID}
    ids |= {event.deliberation_id for event in seen["streamed"] + seen["failing"] + seen["stalled"]}
    ids |= {result.proposal.proposal_id for result in seen["deliberate"].results}
    assert all(len(i) >= 8 for i in ids)
    assert [i for i in ids if i in text] == []
    assert [secret for secret in SECRETS if secret in text] == []
    assert "NoSuchMethod" not in text
    # The label values the configuration names, and those of fixed sets, only.
    assert label_values(samples, "orchestrator_agent_calls_total", "model") == {
        "dev-model", "arch-model", "ops-model", "stall-model"
    }
    assert label_values(samples, "orchestrator_agent_calls_total", "role") == {"DEV", "DEVOPS", "STALL"}
    assert label_values(samples, "orchestrator_breaker_state", "endpoint") == {DEV_ENDPOINT_SHOWN, "default"}


async def test_metrics_answer_without_a_token_while_grpc_wants_one(server: RunningServer) -> None:
    text = await scrape_text(metrics_port(server))
    assert "orchestrator_build_info" in text
    with_wrong_token = await scrape_text(metrics_port(server), {"Authorization": "Bearer not-a-token"})
    assert "orchestrator_build_info" in with_wrong_token
    async with grpc.aio.insecure_channel(server.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await pb_grpc.OrchestratorServiceStub(channel).GetStatus(pb.GetStatusRequest())
    assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_a_call_past_its_deadline_is_counted_as_deadline_exceeded(server: RunningServer) -> None:
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = pb_grpc.OrchestratorServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as late:
            await stub.Deliberate(request("STALL"), metadata=AUTH, timeout=1.0)  # its agents hang critiquing
    assert late.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    _, samples = await until_scraped(server, "grpc_server_handled_total", 1, grpc_method="Deliberate")
    assert total(samples, "grpc_server_handled_total", grpc_method="Deliberate", grpc_code="DEADLINE_EXCEEDED") == 1
    _, samples = await until_scraped(server, "orchestrator_deliberations_total", 1, role="STALL")
    assert total(samples, "orchestrator_deliberations_total", role="STALL", status="succeeded") == 0
    assert total(samples, "orchestrator_deliberations_in_flight", role="STALL") == 0
