"""How long the ``orchestrator`` command takes to start, against ``python -c 'import grpc'``.

``--help`` and a client command that fails at once (``health`` against a closed port) are
timed as whole processes, interleaved with the baseline, median of the runs.
"""

from __future__ import annotations

import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

RUNS = 9


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _seconds(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, capture_output=True, check=False, timeout=120)
    return time.perf_counter() - started


def run(runs: int = RUNS) -> dict[str, float]:
    program = shutil.which("orchestrator", path=str(Path(sys.executable).parent)) or "orchestrator"
    commands = {
        "import_grpc": [sys.executable, "-c", "import grpc"],
        "help": [program, "--help"],
        "health": [program, "health", "--address", f"127.0.0.1:{_closed_port()}", "--timeout", "2"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, command in commands.items():
            times[name].append(_seconds(command))
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {
        **{f"{name}_seconds": value for name, value in medians.items()},
        "help_over_import_grpc": medians["help"] / medians["import_grpc"],
        "health_over_import_grpc": medians["health"] / medians["import_grpc"],
    }


def markdown(figures: dict[str, float]) -> list[str]:
    return [
        "## CLI start-up",
        "",
        "Made within `nox -s bench` (`nox -s bench -- --only-cli` measures this section alone).",
        "",
        f"Whole processes, interleaved, median of {RUNS}: `orchestrator --help`, and `orchestrator health`",
        "against a closed port (a client command that fails at once), against `python -c 'import grpc'`.",
        "",
        "| command | time | over `import grpc` |",
        "| --- | --- | --- |",
        f"| `python -c 'import grpc'` | {figures['import_grpc_seconds'] * 1000:.0f} ms | 1.00 |",
        f"| `orchestrator --help` | {figures['help_seconds'] * 1000:.0f} ms | {figures['help_over_import_grpc']:.2f} |",
        f"| `orchestrator health` (refused) | {figures['health_seconds'] * 1000:.0f} ms | "
        f"{figures['health_over_import_grpc']:.2f} |",
    ]


if __name__ == "__main__":
    print("\n".join(markdown(run())))
