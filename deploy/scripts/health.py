"""Waiting for a server to report SERVING, through `orchestrator health` as operators would."""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Callable, Sequence

POLL_INTERVAL_SECONDS = 0.5


class NotServing(Exception):
    """The server did not report SERVING in time, or stopped while we waited."""


def health(orchestrator: str, address: str, service: str = "") -> subprocess.CompletedProcess[str]:
    """One `orchestrator health` call; exit 0 only when SERVING."""
    command = [orchestrator, "health", "--timeout", "5", "--address", address]
    if service:
        command += ["--service", service]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=30)


def wait_for_serving(
    orchestrator: str,
    address: str,
    *,
    within_seconds: float,
    still_running: Callable[[], bool] = lambda: True,
) -> None:
    """Polls `orchestrator health` until it exits 0; raises NotServing past the deadline."""
    deadline = time.monotonic() + within_seconds
    last = ""
    while time.monotonic() < deadline:
        result = health(orchestrator, address)
        if result.returncode == 0:
            return
        last = (result.stdout + result.stderr).strip()
        if not still_running():
            raise NotServing(f"the server stopped before reporting SERVING; last health check: {last}")
        time.sleep(POLL_INTERVAL_SECONDS)
    raise NotServing(f"{address} not SERVING within {within_seconds:g}s; last health check: {last}")


def require(condition: bool, message: str) -> None:
    """A failed check of the smoke test: stops it with the message."""
    if not condition:
        raise CheckFailed(message)


class CheckFailed(Exception):
    """A property the image, container or server must have does not hold."""


def show(command: Sequence[str]) -> None:
    print("$", shlex.join(command), flush=True)
