"""``--serve``: start the service in a child process for the length of the evaluation.

It is the real ``orchestrator serve`` with the caller's ``ORCH_*`` settings, on a free
loopback port, its log written beside the results; the evaluation then talks to it over
gRPC like any client.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from orchestrator_grpc.client import OrchestratorClient

SERVE_CODE = "import sys; from orchestrator_grpc.cli import main; sys.exit(main(['serve']))"
START_SECONDS = 180.0
STOP_SECONDS = 30.0


class ServiceDidNotStart(Exception):
    """The child service exited or never became SERVING; the message ends with its log."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def served(settings: Mapping[str, str], log_path: Path) -> AsyncIterator[str]:
    """The address of a service started with ``settings`` over the environment's."""
    address = f"127.0.0.1:{free_port()}"
    host, port = address.split(":")
    env = {**os.environ, **settings, "ORCH_HOST": host, "ORCH_PORT": port}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", SERVE_CODE, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=log, stderr=log,
        )
        try:
            await _until_serving(process, address, log_path)
            yield address
        finally:
            await _stop(process)


async def _until_serving(process: asyncio.subprocess.Process, address: str, log_path: Path) -> None:
    loop = asyncio.get_running_loop()
    give_up = loop.time() + START_SECONDS
    async with OrchestratorClient(address) as client:
        while loop.time() < give_up:
            if process.returncode is not None:
                raise ServiceDidNotStart(f"the service exited with status {process.returncode}: {_tail(log_path)}")
            with contextlib.suppress(Exception):
                if await client.health(deadline=2.0) == "SERVING":
                    return
            await asyncio.sleep(0.2)
    raise ServiceDidNotStart(f"the service was not SERVING within {START_SECONDS:g}s: {_tail(log_path)}")


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), STOP_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()


def _tail(log_path: Path, lines: int = 15) -> str:
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"(no log at {log_path})"
    return f"see {log_path}:\n" + "\n".join(text.splitlines()[-lines:])
