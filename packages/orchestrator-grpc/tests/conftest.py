"""A real server on 127.0.0.1, port 0, over the core's scripted test doubles.

Councils of the test server, one per behaviour:

- DEV (3 agents) and ARCHITECT (1): scripted agents that answer at once;
- QA (2): agents that never finish generating (deadlines, capacity, cancellation);
- STALL (2): agents that propose, then never finish critiquing (stream cancellation);
- DEVOPS (3): every agent's backend is unreachable (quorum lost -> UNAVAILABLE);
- DATA (2): every agent's backend rejects the configuration (-> FAILED_PRECONDITION);
- GATED (3): agents that wait at a barrier of 4 until the test joins it (graceful drain);
- FAULTY (6): one agent of each kind: answers, raises, hangs, answers slowly, answers empty,
  answers garbage (fault injection, quorum kept);
- BROKEN (3): one answers, one raises, one answers garbage (below the quorum of 2).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_test_support import (
    REJECTED,
    UNREACHABLE,
    Doubles,
    FaultyBackend,
    ServerFactory,
    lint_score,
    make_settings,
)
from nats_support import NatsServer, nats_server
from queue_processes import RecordReader, postgres_schema

from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_core.errors import BackendRejected, BackendUnavailable
from orchestrator_core.models import Phase
from orchestrator_core.plugins import PluginHost
from orchestrator_core.testing import (
    ConcurrencyProbe,
    PluginRegistrar,
    ScriptedBackend,
    ScriptedCheck,
    ScriptedPlugin,
)
from orchestrator_grpc.server import RunningServer, running_server


@pytest.fixture
def doubles() -> Doubles:
    return Doubles(
        hanging=ConcurrencyProbe(), stalling=ConcurrencyProbe(), gate=ConcurrencyProbe(parties=4),
        faults=ConcurrencyProbe(),
    )


@pytest.fixture
def host(orchestrator_plugins: PluginRegistrar, doubles: Doubles) -> PluginHost:
    orchestrator_plugins.register(
        ScriptedPlugin(
            ScriptedBackend(),
            ScriptedBackend(
                name="hanging",
                defaults={"hang_in": frozenset({Phase.GENERATE}), "probe": doubles.hanging},
            ),
            ScriptedBackend(
                name="stalling",
                defaults={"hang_in": frozenset({Phase.CRITIQUE}), "probe": doubles.stalling},
            ),
            ScriptedBackend(name="gated", defaults={"probe": doubles.gate}),
            ScriptedBackend(
                name="unreachable", defaults={"fail_in": {Phase.GENERATE: BackendUnavailable(UNREACHABLE)}}
            ),
            ScriptedBackend(
                name="rejecting", defaults={"fail_in": {Phase.GENERATE: BackendRejected(REJECTED)}}
            ),
            FaultyBackend("faulty", ("ok", "raise", "hang", "slow", "empty", "garbage"), doubles.faults),
            FaultyBackend("broken", ("ok", "raise", "garbage"), doubles.faults),
            ScriptedCheck(name="policy", kind="policy"),
            ScriptedCheck(name="lint", kind="lint", score_of=lint_score),
            ScriptedCheck(name="dryrun", kind="dryrun", score_of=lint_score),
            ScriptedCheck(name="style", kind="style", score_of=lambda proposal: 0.4),
        ),
        name="grpc-test-doubles",
    )
    return orchestrator_plugins.host


@pytest.fixture
def serve_with(host: PluginHost, tmp_path: Path) -> ServerFactory:
    """``async with serve_with(quorum=1) as server``: a server with settings overridden."""

    def factory(**overrides: Any) -> AbstractAsyncContextManager[RunningServer]:
        return running_server(make_settings(tmp_path, **overrides), plugins=host)

    return factory


@pytest.fixture
async def server(serve_with: ServerFactory) -> AsyncIterator[RunningServer]:
    async with serve_with() as running:
        yield running


@pytest.fixture
async def channel(server: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(server.address) as opened:
        yield opened


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> pb_grpc.OrchestratorServiceStub:
    return pb_grpc.OrchestratorServiceStub(channel)


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[NatsServer]:
    """A nats-server with JetStream of the test's own (its store in ``tmp_path``), killed after."""
    with nats_server(tmp_path) as server:
        yield server


@pytest.fixture
def database_url() -> Iterator[str]:
    """A URL of the test PostgreSQL database whose tables live in a schema of the test's own,
    dropped after (a module that needs another kind of URL defines its own)."""
    with postgres_schema() as url:
        yield url


@pytest.fixture
async def reader(database_url: str) -> AsyncIterator[RecordReader]:
    """Reads records straight from ``database_url`` (the store the test's processes write)."""
    reader = RecordReader(database_url)
    yield reader
    await reader.close()
