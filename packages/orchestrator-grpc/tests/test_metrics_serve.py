"""``orchestrator serve --metrics-port``, run as a real process: it says where metrics are
served, they count what the service did, a taken port stops it with the setting to change,
and with metrics off prometheus-client is never imported."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_test_support import HANG_GUARD, orchestrator_command
from metrics_support import parse, total
from plugin_install import installed_plugins

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc

PLUGIN_NAME = "scripted-metrics"
SERVING = "orchestrator serving on "
METRICS = "orchestrator metrics on "


@pytest.fixture
def environment(tmp_path: Path) -> dict[str, str]:
    """Process environment with the scripted test plugin installed (a dist-info on PYTHONPATH)."""
    env = installed_plugins(tmp_path / "site", "metrics-test-plugin", {PLUGIN_NAME: "grpc_cli_test_plugin"})
    env.update(
        ORCH_PLUGINS_ENABLED=PLUGIN_NAME,
        ORCH_COUNCILS__DEV__BACKEND="scripted",
        ORCH_COUNCILS__DEV__AGENTS="2",
        ORCH_DATABASE_PATH=str(tmp_path / "records.sqlite3"),
        ORCH_HOST="127.0.0.1",
        ORCH_PORT="0",
        ORCH_GRACE_PERIOD_SECONDS="5",
    )
    return env


def serve(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[str]:
    with log.open("w") as stderr:
        return subprocess.Popen(
            [orchestrator_command(), "serve", *args], env=env, stdout=subprocess.PIPE, stderr=stderr, text=True
        )


def read_lines(process: subprocess.Popen[str], log: Path, count: int) -> list[str]:
    """The first ``count`` lines the process prints (read in a thread: a buffered reader and a
    selector on its descriptor do not mix)."""
    assert process.stdout is not None
    stdout = process.stdout
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(stdout.readline()) for _ in range(count)], daemon=True).start()
    try:
        return [lines.get(timeout=HANG_GUARD) for _ in range(count)]
    except queue.Empty:
        process.kill()
        pytest.fail(f"orchestrator serve printed too little; its log:\n{log.read_text()}")


@pytest.fixture
def served(environment: dict[str, str], tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, str, Path]]:
    """A server with metrics on a free port: the process, its gRPC address, its metrics URL, its log."""
    log = tmp_path / "serve.log"
    process = serve(environment, log, "--metrics-port", "0")
    address, url = read_lines(process, log, 2)
    assert address.startswith(SERVING), (address, log.read_text())
    assert url.startswith(METRICS), (url, log.read_text())
    yield process, address.removeprefix(SERVING).strip(), url.removeprefix(METRICS).strip(), log
    if process.poll() is None:
        process.kill()
        process.wait()


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        body: bytes = response.read()
        return body.decode("utf-8")


def test_serve_says_where_metrics_are_and_they_count_its_calls(
    served: tuple[subprocess.Popen[str], str, str, Path],
) -> None:
    process, address, url, log = served
    assert url.startswith("http://127.0.0.1:")
    assert url.endswith("/metrics")
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.OrchestratorServiceStub(channel)  # type: ignore[no-untyped-call]
        stub.Deliberate(pb.DeliberateRequest(role="DEV", task="Write a function that adds two numbers"))
    samples = parse(get(url))
    assert total(samples, "orchestrator_deliberations_total", role="DEV", status="succeeded") == 1
    assert total(samples, "grpc_server_handled_total", grpc_method="Deliberate", grpc_code="OK") == 1
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=HANG_GUARD) == 0
    assert f"serving Prometheus metrics on {url}" in log.read_text()
    with pytest.raises(OSError, match="refused"):
        get(url)  # closed with the service


def test_a_metrics_port_in_use_stops_serve_naming_the_setting(environment: dict[str, str], tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        log = tmp_path / "serve.log"
        process = serve(environment, log, "--metrics-port", str(port))
        assert process.wait(timeout=HANG_GUARD) == 1
    assert f"cannot serve metrics on 127.0.0.1:{port}: address already in use (ORCH_METRICS_PORT" in log.read_text()


def test_with_metrics_off_prometheus_client_is_not_imported() -> None:
    program = (
        "import sys\n"
        "from orchestrator_core.settings import Settings\n"
        "from orchestrator_grpc.server import running_server\n"
        "from orchestrator_grpc.observability import observability_for\n"
        "off = observability_for(Settings(councils={}))\n"
        "assert off.metrics is None, off\n"
        "assert 'prometheus_client' not in sys.modules, 'imported with metrics off'\n"
        "on = observability_for(Settings(councils={}, metrics_port=0))\n"
        "assert on.metrics is not None and 'prometheus_client' in sys.modules\n"
    )
    env = {name: value for name, value in os.environ.items() if not name.startswith(("ORCH_", "OTEL_"))}
    result = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True,
                            timeout=HANG_GUARD * 3, check=False)
    assert result.returncode == 0, result.stderr
