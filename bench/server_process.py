"""Starts `orchestrator serve` as its own process for a benchmark, and stops it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def orchestrator_command() -> list[str]:
    return [str(Path(sys.executable).parent / "orchestrator"), "serve"]


def wait_until_serving(address: str, limit_seconds: float = 60.0) -> None:
    deadline = time.monotonic() + limit_seconds
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.01)
    raise RuntimeError(f"no server became SERVING at {address} within {limit_seconds}s")


@contextmanager
def server_process(port: int, env: Mapping[str, str], scratch: Path) -> Iterator[subprocess.Popen[bytes]]:
    settings = {
        **os.environ,
        "ORCH_HOST": "127.0.0.1",
        "ORCH_PORT": str(port),
        "ORCH_DATABASE_PATH": str(scratch / "records.sqlite3"),
        "ORCH_LOG_LEVEL": "WARNING",
        **env,
    }
    process = subprocess.Popen(orchestrator_command(), env=settings, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
