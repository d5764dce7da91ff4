"""``orchestrator serve`` draining on SIGTERM with ``ORCH_DRAIN_DELAY_SECONDS``: health says
NOT_SERVING and new calls are refused while the port still takes connections, then the port
closes and the call in flight finishes within the grace period; the process exits 0."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cli_support import PLUGIN_NAME, Gate, Served, start_server
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_test_support import HANG_GUARD, orchestrator_command
from plugin_install import installed_plugins

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc

DRAIN_DELAY = 8.0
"""Long enough for the checks made during the drain on a busy machine; each of them proves
it was made in time by its answer (an answer at all: the port was open)."""
SERVICE = "orchestrator.v1.OrchestratorService"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
def gate() -> Iterator[Gate]:
    opened = Gate()
    yield opened
    opened.close()


@pytest.fixture
def environment(tmp_path: Path, gate: Gate) -> dict[str, str]:
    """A server whose GATED agents answer only once the test opens its gate."""
    env = installed_plugins(tmp_path / "site", "grpc-cli-test-plugin", {PLUGIN_NAME: "grpc_cli_test_plugin"})
    env.update(
        GRPC_CLI_TEST_GATE=gate.address,
        ORCH_PLUGINS_ENABLED=PLUGIN_NAME,
        ORCH_COUNCILS__GATED__BACKEND="gate",
        ORCH_COUNCILS__GATED__AGENTS="2",
        ORCH_DATABASE_PATH=str(tmp_path / "records.sqlite3"),
        ORCH_HOST="127.0.0.1",
        ORCH_PORT="0",
        ORCH_DRAIN_DELAY_SECONDS=str(DRAIN_DELAY),
        ORCH_GRACE_PERIOD_SECONDS=str(HANG_GUARD),
    )
    return env


@pytest.fixture
def server(environment: dict[str, str], tmp_path: Path) -> Iterator[Served]:
    served = start_server(environment, tmp_path / "serve.log")
    yield served
    if served.process.poll() is None:
        served.process.kill()
    served.process.wait()


def check(address: str, service: str) -> health_pb2.HealthCheckResponse.ServingStatus.ValueType:
    """The health of ``service``, asked on a connection of its own."""
    with grpc.insecure_channel(address) as channel:
        response = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=HANG_GUARD
        )
    return response.status


def test_sigterm_drains_with_the_port_open_then_lets_the_call_in_flight_finish(
    server: Served, gate: Gate, tmp_path: Path
) -> None:
    with grpc.insecure_channel(server.address) as channel:
        in_flight = pb_grpc.OrchestratorServiceStub(channel).Deliberate.future(
            pb.DeliberateRequest(role="GATED", task="Add", rounds=0), timeout=HANG_GUARD * 3
        )
        gate.wait_for_agents(2)
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=HANG_GUARD * 3)
        assert next(watch).status == SERVING

        server.process.send_signal(signal.SIGTERM)

        # The watcher is told; probes on new connections are answered NOT_SERVING for the
        # server, the service and its council.
        assert next(watch).status == NOT_SERVING
        for name in ("", SERVICE, f"{SERVICE}/GATED"):
            assert check(server.address, name) == NOT_SERVING, name
        # A new call on a new connection is refused as retryable, naming why.
        with grpc.insecure_channel(server.address) as fresh, pytest.raises(grpc.RpcError) as refused:
            pb_grpc.OrchestratorServiceStub(fresh).Deliberate(
                pb.DeliberateRequest(role="GATED", task="Add", rounds=0), timeout=HANG_GUARD
            )
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
        assert "shutting down" in refused.value.details()
        assert not in_flight.done()

        # After the delay the port closes; the watch ends (its last word NOT_SERVING).
        assert [response.status for response in watch] in ([], [NOT_SERVING])
        assert watch.code() is grpc.StatusCode.OK
        gone = subprocess.run(
            [orchestrator_command(), "health", "--address", server.address, "--timeout", "5"],
            env=os.environ, capture_output=True, text=True, timeout=HANG_GUARD, check=False,
        )
        assert (gone.returncode, gone.stdout) == (2, ""), gone.stderr  # cannot connect
        assert not in_flight.done()

        gate.open()  # the agents answer within the grace period

        response = in_flight.result(timeout=HANG_GUARD)
    assert sorted(r.proposal.author_id for r in response.results) == ["gated-1", "gated-2"]
    assert server.process.wait(timeout=HANG_GUARD) == 0
    log = (tmp_path / "serve.log").read_text()
    assert re.search(r"draining: health is NOT_SERVING and new calls are refused; the port closes in 8s", log)
    assert log.index("draining:") < log.index("shutting down; letting in-flight calls finish")
    assert log.rstrip().endswith("stopped")
