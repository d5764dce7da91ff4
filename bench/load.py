"""Drives a running Orchestrator server from another process: bounded, loopback only.

    python bench/load.py --address 127.0.0.1:50055 --requests 200 --concurrency 200

Prints one JSON object: throughput, wall-time percentiles and every wall time, errors by
status code, and (with --server-pid) the server's peak resident memory.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import socket
import statistics
import time
from collections import Counter
from pathlib import Path

import grpc

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc

MAX_REQUESTS = 5000
MAX_SECONDS = 300.0


def loopback_only(address: str) -> str:
    host = address.rsplit(":", 1)[0].strip("[]")
    resolved = {info[4][0] for info in socket.getaddrinfo(host, None)}
    if not all(ipaddress.ip_address(ip).is_loopback for ip in resolved):
        raise SystemExit(f"refusing to load {address}: load is only sent to loopback addresses")
    return address


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


async def drive(
    address: str, requests: int, concurrency: int, role: str, rounds: int, deadline: float,
    connections: int = 1, start_at: float | None = None,
) -> dict:
    """``requests`` calls, ``concurrency`` at a time, spread over ``connections`` channels of
    their own (``serve --processes`` spreads connections, not calls); from the wall-clock
    time ``start_at`` when given, so that several client processes start together.

    Each connection is a client of its own: it keeps its share of the concurrency in flight
    and sends its next call when one of its own answers, as independent clients do. (With one
    pool of slots shared by every connection, a call answered on a connection to an idle
    server process would start the next call on a connection to a busy one, and the busier
    process, holding more of the kernel's connections, would set the pace of all.)"""
    request = pb.DeliberateRequest(role=role, task="Write a function that adds two numbers", rounds=rounds)
    walls: list[float] = []
    codes: Counter[str] = Counter()
    # A local subchannel pool: each channel its own TCP connection.
    channels = [
        grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(connections)
    ]
    remaining = requests
    try:
        stubs = [pb_grpc.OrchestratorServiceStub(channel) for channel in channels]
        for channel in channels:
            await asyncio.wait_for(channel.channel_ready(), 30)

        async def caller(stub: pb_grpc.OrchestratorServiceStub) -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                try:
                    await stub.Deliberate(request, timeout=deadline)
                    codes["OK"] += 1
                    walls.append(time.perf_counter() - started)
                except grpc.aio.AioRpcError as error:
                    codes[error.code().name] += 1

        # concurrency callers, dealt to the connections in turn: each connection's share.
        callers = [stubs[n % connections] for n in range(min(concurrency, requests))]
        if start_at is not None:
            await asyncio.sleep(max(0.0, start_at - time.time()))
        began = time.time()
        started = time.perf_counter()
        async with asyncio.timeout(MAX_SECONDS):
            await asyncio.gather(*(caller(stub) for stub in callers))
        elapsed = time.perf_counter() - started
    finally:
        for channel in channels:
            await channel.close()
    return {
        "requests": requests,
        "concurrency": concurrency,
        "elapsed_seconds": elapsed,
        "began": began,
        "ended": began + elapsed,
        "throughput_per_second": requests / elapsed,
        "wall_p50_seconds": statistics.median(walls) if walls else float("nan"),
        "wall_p99_seconds": percentile(walls, 0.99),
        "codes": dict(codes),
        "walls": walls,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default="127.0.0.1:50055")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--role", default="DEV")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--deadline", type=float, default=120.0)
    parser.add_argument("--server-pid", type=int)
    parser.add_argument("--connections", type=int, default=1, help="channels (TCP connections) to spread calls over")
    parser.add_argument("--start-at", type=float, help="wall-clock time (time.time()) to start the calls at")
    args = parser.parse_args()
    if not 1 <= args.requests <= MAX_REQUESTS:
        raise SystemExit(f"--requests must be between 1 and {MAX_REQUESTS}")
    result = asyncio.run(
        drive(
            loopback_only(args.address), args.requests, args.concurrency, args.role, args.rounds, args.deadline,
            args.connections, args.start_at,
        )
    )
    if args.server_pid:
        result["server_peak_rss_mib"] = peak_rss_mib(args.server_pid)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
