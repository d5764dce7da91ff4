"""Starts `orchestrator serve` from an installed environment and checks it end to end.

Used by `nox -s build` on the venv the built wheels were installed into: the server starts
on 127.0.0.1 (a free port), reports SERVING to `orchestrator health` for the whole server
and for the OrchestratorService, and exits 0 on SIGTERM after draining.

    python deploy/scripts/serve_check.py VENV/bin/orchestrator
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from health import CheckFailed, NotServing, health, require, wait_for_serving

SERVICE_NAME = "orchestrator.v1.OrchestratorService"
START_SECONDS = 60.0
STOP_SECONDS = 60.0
_SERVING_LINE = re.compile(r"orchestrator serving on (\S+)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("orchestrator", help="path of the `orchestrator` command to test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="orchestrator-serve-check-") as scratch:
        try:
            check(args.orchestrator, Path(scratch))
        except (CheckFailed, NotServing) as exc:
            print(f"serve check FAILED: {exc}", file=sys.stderr)
            return 1
    print("serve check passed: SERVING, healthy OrchestratorService, graceful stop")
    return 0


def check(orchestrator: str, scratch: Path) -> None:
    env = {
        **os.environ,
        "ORCH_HOST": "127.0.0.1",
        "ORCH_PORT": "0",
        "ORCH_DATABASE_PATH": str(scratch / "orchestrator.sqlite3"),
        "ORCH_GRACE_PERIOD_SECONDS": "5",
    }
    server = subprocess.Popen(
        [orchestrator, "serve"], env=env, cwd=scratch, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        address = _bound_address(server)
        print(f"server started on {address}")
        wait_for_serving(
            orchestrator, address, within_seconds=START_SECONDS, still_running=lambda: server.poll() is None
        )
        result = health(orchestrator, address, SERVICE_NAME)
        require(result.returncode == 0, f"{SERVICE_NAME} not SERVING: {result.stdout}{result.stderr}")
        print(result.stdout.strip())
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=STOP_SECONDS)
        require(code == 0, f"the server exited with {code} on SIGTERM, not 0")
        require((scratch / "orchestrator.sqlite3").is_file(), "the server created no records database")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def _bound_address(server: subprocess.Popen[str]) -> str:
    """Reads the server's output until its "serving on" line; echoes the output meanwhile."""
    assert server.stdout is not None
    found: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert server.stdout is not None
        for line in server.stdout:
            sys.stdout.write(f"  | {line}")
            match = _SERVING_LINE.search(line)
            if match and not found:
                found.append(match.group(1))
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    ready.wait(START_SECONDS)
    if not found:
        raise CheckFailed(f"the server printed no 'serving on' line (exit code {server.poll()})")
    return found[0]


if __name__ == "__main__":
    sys.exit(main())
