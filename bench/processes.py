"""Benchmarks that need a real server process: concurrency under load, and startup."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from server_process import free_port, server_process, wait_until_serving

HERE = Path(__file__).parent


def concurrency(deliberations: int = 200, latency: float = 0.2, rounds: int = 1) -> dict[str, float]:
    """``deliberations`` at once against agents that each take ``latency`` seconds per call."""
    port = free_port()
    env = {
        "ORCH_PLUGINS_ENABLED": "sample",
        "ORCH_COUNCILS__DEV__BACKEND": "sample-template",
        "ORCH_COUNCILS__DEV__AGENTS": "3",
        "ORCH_COUNCILS__DEV__OPTIONS": json.dumps({"delay_seconds": latency}),
        "ORCH_MAX_CONCURRENT_DELIBERATIONS": str(deliberations * 2),
    }
    with tempfile.TemporaryDirectory() as scratch, server_process(port, env, Path(scratch)) as process:
        wait_until_serving(f"127.0.0.1:{port}")
        completed = subprocess.run(
            [
                sys.executable,
                str(HERE / "load.py"),
                "--address",
                f"127.0.0.1:{port}",
                "--requests",
                str(deliberations),
                "--concurrency",
                str(deliberations),
                "--rounds",
                str(rounds),
                "--server-pid",
                str(process.pid),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
    result = json.loads(completed.stdout)
    critical_path = (1 + 2 * rounds) * latency
    result["critical_path_seconds"] = critical_path
    result["p50_over_critical_path"] = result["wall_p50_seconds"] / critical_path
    result["p99_over_critical_path"] = result["wall_p99_seconds"] / critical_path
    return result


def _time_command(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def startup(repeats: int = 5) -> dict[str, float]:
    """Process start to health SERVING, every installed plugin loaded (contrib included)."""
    times = []
    for _ in range(repeats):
        port = free_port()
        with tempfile.TemporaryDirectory() as scratch:
            started = time.perf_counter()
            with server_process(port, {}, Path(scratch)):
                wait_until_serving(f"127.0.0.1:{port}")
                times.append(time.perf_counter() - started)
    bare = statistics.median(_time_command([sys.executable, "-c", "pass"]) for _ in range(repeats))
    grpc_import = statistics.median(
        _time_command([sys.executable, "-c", "import grpc, grpc_health.v1.health"]) for _ in range(repeats)
    )
    serving = statistics.median(times)
    return {
        "start_to_serving_seconds": serving,
        "python_start_seconds": bare,
        "python_import_grpc_seconds": grpc_import,
        "over_python_import_grpc": serving / grpc_import,
    }


if __name__ == "__main__":
    print(json.dumps(startup()))
    print(json.dumps(concurrency()))
