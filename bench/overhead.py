"""Overhead: a Deliberate round trip with instant agents and no checks, over a bare
grpc.aio unary echo call on the same machine, both measured in this run."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import grpc

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_core.plugins import PluginHost
from orchestrator_core.settings import CouncilSettings, Settings
from orchestrator_core.testing import ScriptedBackend, ScriptedPlugin
from orchestrator_grpc.server import running_server

ECHO_METHOD = "/bench.Echo/Echo"


def _identity(data: bytes) -> bytes:
    return data


async def _echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


async def _start_echo_server() -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo",
        {"Echo": grpc.unary_unary_rpc_method_handler(_echo, _identity, _identity)},
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def measure(calls: int = 300, warmup: int = 30, records_root: Path | None = None) -> dict[str, float]:
    """``records_root``: where the records' SQLite file is made (the system's temporary directory by default)."""
    echo_server, echo_port = await _start_echo_server()
    host = PluginHost()
    host.register(ScriptedPlugin(ScriptedBackend()), name="bench-agents")
    host.collect()
    with tempfile.TemporaryDirectory(dir=records_root) as scratch:
        settings = Settings(
            host="127.0.0.1",
            port=0,
            database_path=Path(scratch) / "records.sqlite3",
            councils={"DEV": CouncilSettings(backend="scripted", agents=3)},
            selector_role="",
        )
        async with (
            running_server(settings, plugins=host) as server,
            grpc.aio.insecure_channel(server.address) as channel,
            grpc.aio.insecure_channel(f"127.0.0.1:{echo_port}") as echo_channel,
        ):
            stub = pb_grpc.OrchestratorServiceStub(channel)
            echo = echo_channel.unary_unary(ECHO_METHOD, _identity, _identity)
            request = pb.DeliberateRequest(role="DEV", task="Add two numbers", num_agents=3, rounds=1)
            payload = request.SerializeToString()
            echo_times, deliberate_times = [], []
            for index in range(warmup + calls):
                started = time.perf_counter()
                await echo(payload)
                echo_elapsed = time.perf_counter() - started
                started = time.perf_counter()
                await stub.Deliberate(request)
                deliberate_elapsed = time.perf_counter() - started
                if index >= warmup:
                    echo_times.append(echo_elapsed)
                    deliberate_times.append(deliberate_elapsed)
    await echo_server.stop(None)
    return {
        "echo_p50_ms": 1000 * statistics.median(echo_times),
        "echo_p99_ms": 1000 * _percentile(echo_times, 0.99),
        "deliberate_p50_ms": 1000 * statistics.median(deliberate_times),
        "deliberate_p99_ms": 1000 * _percentile(deliberate_times, 0.99),
        "ratio_p50": statistics.median(deliberate_times) / statistics.median(echo_times),
        "ratio_p99": _percentile(deliberate_times, 0.99) / _percentile(echo_times, 0.99),
        "calls": float(calls),
    }


def run() -> dict[str, float]:
    return asyncio.run(measure())


if __name__ == "__main__":
    print({k: round(v, 3) for k, v in run().items()})
