"""A client's catastrophic regular expression in a deliberation does not freeze the server.

``(.*\\s*)*Z$`` against a long proposal backtracks for hours in Python's ``re``, holding the
GIL, so the health check stops answering. The real policy check runs it with RE2 instead:
the server answers its health check throughout and the deliberation finishes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
from checks_support import task
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agents_contrib.checks import policy
from orchestrator_core.plugins import PluginHost
from orchestrator_core.settings import CouncilSettings, Settings
from orchestrator_core.testing import ScriptedBackend, ScriptedPlugin
from orchestrator_grpc.client import OrchestratorClient
from orchestrator_grpc.server import running_server

CATASTROPHIC = ("(.*\\s*)*Z$", "(a+)+$", "(a|aa)+$", "(x+x+)+y")
# Long lines of a's and x's with no Z, no line ending in 'a', no 'y': nothing matches, and a
# backtracking engine tries every way to split each line before saying so.
LONG_PROPOSAL = "```text\n" + ("a" * 5000 + " " + "x" * 5000 + "\n") * 6 + "```\n"
HEALTH_DEADLINE = 5.0


async def test_health_answers_while_a_deliberation_matches_catastrophic_patterns(tmp_path: Path) -> None:
    # The last agent answers late, so the health check is asked while the deliberation runs.
    backend = ScriptedBackend(defaults={"proposal": LONG_PROPOSAL}, agents={2: {"delay_seconds": 0.5}})
    host = PluginHost()
    host.register(ScriptedPlugin(backend), name="scripted")
    host.register(policy, name="policy")
    host.collect()
    settings = Settings(host="127.0.0.1", port=0, database_path=tmp_path / "records.sqlite3", default_rounds=0,
                        councils={"DEV": CouncilSettings(backend="scripted", agents=3)})
    patterns = tuple("re:" + p for p in CATASTROPHIC)
    the_task = task(requirements=patterns, forbidden=patterns)

    async with running_server(settings, plugins=host) as server, OrchestratorClient(server.address) as client, \
            grpc.aio.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        deliberation = asyncio.create_task(client.deliberate(the_task, num_agents=3))
        answered_during = 0
        while not deliberation.done():
            response = await health.Check(health_pb2.HealthCheckRequest(), timeout=HEALTH_DEADLINE)
            assert response.status == health_pb2.HealthCheckResponse.SERVING
            answered_during += 0 if deliberation.done() else 1
            await asyncio.sleep(0.05)
        outcome = await deliberation

    assert answered_during >= 1
    assert len(outcome.results) == 3
    for result in outcome.results:
        checked = next(c for c in result.checks if c.kind == "policy")
        assert checked.diagnostics == tuple(f"REQ001 requirement not met: {p!r}" for p in patterns)
