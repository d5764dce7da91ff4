"""``orchestrator serve`` stopped by a signal, as a real process: SIGTERM or SIGINT drains an
in-flight deliberation (health NOT_SERVING, new connections refused) and exits 0."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cli_support import Gate, Served, cli_environment, run, start_server
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_test_support import HANG_GUARD, orchestrator_command


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return cli_environment(tmp_path_factory)


@pytest.fixture
def gate() -> Iterator[Gate]:
    opened = Gate()
    yield opened
    opened.close()


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_drains_an_in_flight_deliberation_then_exits_0(
    environment: dict[str, str], tmp_path: Path, gate: Gate, stop: signal.Signals
) -> None:
    env = {**environment, "GRPC_CLI_TEST_GATE": gate.address, "ORCH_COUNCILS__GATED__BACKEND": "gate",
           "ORCH_COUNCILS__GATED__AGENTS": "2", "ORCH_GRACE_PERIOD_SECONDS": str(HANG_GUARD)}
    server = start_server(env, tmp_path / "serve.log")
    deliberation = subprocess.Popen(
        [orchestrator_command(), "deliberate", "--address", server.address, "--role", "GATED", "--task", "Add",
         "--rounds", "0", "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        gate.wait_for_agents(2)

        stop_and_wait_for_the_drain(server, stop)

        # New connections are refused; health checks, too, cannot connect.
        refused = run(env, "status", "--address", server.address, "--timeout", "5")
        assert (refused.returncode, refused.stdout) == (1, "")
        assert re.fullmatch(
            f"orchestrator: {re.escape(server.address)}: UNAVAILABLE: {CONNECTION_REFUSED}\n", refused.stderr
        ), refused.stderr
        unhealthy = run(env, "health", "--address", server.address, "--timeout", "5")
        assert (unhealthy.returncode, unhealthy.stdout) == (2, "")  # grpc-health-probe's "connection failed"
        assert re.fullmatch(
            f"unreachable: {re.escape(server.address)}: UNAVAILABLE: {CONNECTION_REFUSED}\n", unhealthy.stderr
        ), unhealthy.stderr
        assert deliberation.poll() is None
        assert server.process.poll() is None

        gate.open()  # let the agents answer

        out, err = deliberation.communicate(timeout=HANG_GUARD)
        assert deliberation.returncode == 0, err
        assert [r["proposal"]["author_id"] for r in json.loads(out)["results"]] == ["gated-1", "gated-2"]
        assert server.process.wait(timeout=HANG_GUARD) == 0
    finally:
        for process in (deliberation, server.process):
            if process.poll() is None:
                process.kill()
                process.wait()
    log = (tmp_path / "serve.log").read_text()
    assert "shutting down; letting in-flight calls finish" in log
    assert log.rstrip().endswith("stopped")


CONNECTION_REFUSED = "failed to connect to all addresses; .*Connection refused"
"""gRPC's details of a call to an address where nothing listens (a pattern)."""


def stop_and_wait_for_the_drain(server: Served, stop: signal.Signals) -> None:
    """Send ``stop`` and return once the server drains: health says NOT_SERVING, and the
    server has told the connections it has (GOAWAY) that it takes no new ones; it has
    stopped listening before it does."""
    left_ready = threading.Event()
    with grpc.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=HANG_GUARD * 3)
        assert next(health).status == health_pb2.HealthCheckResponse.SERVING  # the channel is ready
        channel.subscribe(lambda state: state is grpc.ChannelConnectivity.READY or left_ready.set())

        server.process.send_signal(stop)

        assert next(health).status == health_pb2.HealthCheckResponse.NOT_SERVING
        if not left_ready.wait(HANG_GUARD * 3):  # guards a hang only
            pytest.fail("the server did not stop taking connections")
        health.cancel()


def test_sigterm_stops_the_server_gracefully(environment: dict[str, str], tmp_path: Path) -> None:
    server = start_server(environment, tmp_path / "serve.log")
    assert run(environment, "health", "--address", server.address).returncode == 0

    server.process.send_signal(signal.SIGTERM)

    assert server.process.wait(timeout=HANG_GUARD) == 0
    assert "stopped" in (tmp_path / "serve.log").read_text()
    gone = run(environment, "health", "--address", server.address, "--timeout", "2")
    assert (gone.returncode, gone.stdout) == (2, "")
    assert re.fullmatch(f"unreachable: {re.escape(server.address)}: UNAVAILABLE: {CONNECTION_REFUSED}\n", gone.stderr)
