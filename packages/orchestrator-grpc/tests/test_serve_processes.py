"""``orchestrator serve --processes 2``, run as a real process tree: one port, two servers
behind it sharing one SQLite file, one ready line, and SIGTERM draining both."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cli_support import READY_LINE, serve_process
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_test_support import HANG_GUARD, request
from plugin_install import installed_plugins

from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc

PLUGIN_NAME = "scripted-cli"
CONNECTIONS = 24


@pytest.fixture
def records(tmp_path: Path) -> Path:
    return tmp_path / "records.sqlite3"


@pytest.fixture
def environment(tmp_path: Path, records: Path) -> dict[str, str]:
    env = installed_plugins(tmp_path / "site", "grpc-cli-test-plugin", {PLUGIN_NAME: "grpc_cli_test_plugin"})
    env.update(
        ORCH_PLUGINS_ENABLED=PLUGIN_NAME,
        ORCH_COUNCILS__DEV__BACKEND="scripted",
        ORCH_COUNCILS__DEV__AGENTS="2",
        ORCH_DATABASE_PATH=str(records),
        ORCH_HOST="127.0.0.1",
        ORCH_PORT="0",
        ORCH_GRACE_PERIOD_SECONDS="5",
        # Long enough for a probe to see the drain; the test waits on the drain, not the clock.
        ORCH_DRAIN_DELAY_SECONDS="3",
    )
    return env


def start(env: dict[str, str], log: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    """``orchestrator serve --processes 2 ARGS`` once it says it serves: the process, its address."""
    return serve_process(env, log, "--processes", "2", *args, wait=HANG_GUARD * 2)


@pytest.fixture
def served(environment: dict[str, str], tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    process, address = start(environment, tmp_path / "serve.log")
    yield process, address
    if process.poll() is None:
        process.kill()
        process.wait()


def _channel(address: str) -> grpc.Channel:
    # Its own connection: channels otherwise share one through gRPC's global subchannel pool.
    return grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])


def _health(address: str) -> str:
    with _channel(address) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=HANG_GUARD)
        except grpc.RpcError as exc:
            return exc.code().name
        return health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)


def test_calls_on_many_connections_land_on_both_processes_and_one_store(
    served: tuple[subprocess.Popen[str], str], records: Path
) -> None:
    process, address = served
    ids = []
    for _ in range(CONNECTIONS):
        with _channel(address) as channel:
            response = pb_grpc.OrchestratorServiceStub(channel).Deliberate(request(), timeout=HANG_GUARD)
            ids.append(response.deliberation_id)
    with sqlite3.connect(records) as connection:
        rows = connection.execute("SELECT deliberation_id, owner, status FROM deliberations").fetchall()
    assert sorted(row[0] for row in rows) == sorted(ids)
    assert {row[2] for row in rows} == {"succeeded"}
    # Each process has its own owner id: both served calls (24 connections all on one of two
    # processes would be a 1 in 2**23 chance).
    assert len({row[1] for row in rows}) == 2
    # One ready line for the two of them.
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=HANG_GUARD) == 0
    assert process.stdout is not None
    assert READY_LINE not in process.stdout.read()


def test_sigterm_drains_every_process_and_the_parent_exits_0(served: tuple[subprocess.Popen[str], str]) -> None:
    process, address = served
    assert _health(address) == "SERVING"
    process.send_signal(signal.SIGTERM)
    # Every connection, whichever process it lands on, answers NOT_SERVING during the drain.
    seen: list[str] = []
    while len(seen) < CONNECTIONS and process.poll() is None:
        status = _health(address)
        if status == "SERVING" and not seen:
            continue  # the signal has not reached this process yet
        seen.append(status)
    assert process.wait(timeout=HANG_GUARD) == 0
    answered = [status for status in seen if status != "UNAVAILABLE"]  # after the port closed
    assert answered, "no health answer during the drain"
    assert set(answered) == {"NOT_SERVING"}


def _server_children(pid: int) -> list[int]:
    """The server processes of ``pid`` (not multiprocessing's resource tracker)."""
    children = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return [c for c in children if b"resource_tracker" not in Path(f"/proc/{c}/cmdline").read_bytes()]


def test_a_process_that_dies_takes_the_server_down_with_exit_1(served: tuple[subprocess.Popen[str], str]) -> None:
    process, address = served
    children = _server_children(process.pid)
    assert len(children) == 2
    os.kill(children[0], signal.SIGKILL)
    # The other is stopped (drained, as on SIGTERM) and the parent reports the failure.
    assert process.wait(timeout=HANG_GUARD) == 1
    assert not Path(f"/proc/{children[1]}").exists()  # stopped and reaped before the parent exited
    assert _health(address) == "UNAVAILABLE"


def _free_port_pair() -> int:
    """A port P with P + 1 free as well (at the time of asking)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    pytest.fail("no two consecutive free ports")


def test_each_process_serves_its_metrics_on_the_port_plus_its_index(
    environment: dict[str, str], tmp_path: Path
) -> None:
    port = _free_port_pair()
    process, _ = start(environment, tmp_path / "serve.log", "--metrics-port", str(port))
    try:
        assert process.stdout is not None
        urls = sorted(process.stdout.readline().removeprefix("orchestrator metrics on ").strip() for _ in range(2))
        assert urls == [f"http://127.0.0.1:{port}/metrics", f"http://127.0.0.1:{port + 1}/metrics"]
        for url in urls:
            with urllib.request.urlopen(url, timeout=HANG_GUARD) as response:
                assert b"orchestrator_deliberations_total" in response.read()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=HANG_GUARD) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
