"""A bare grpc.aio server answering ``Deliberate`` with fixed bytes after a fixed delay: the
floor the load client is measured against (no orchestrator, no records, no agents).

    python bench/echo_server.py --port 50056 --response response.bin --delay 0.6

It answers the bytes of the file given (a real ``DeliberateResponse``, so the client parses
what it parses against the server) and prints ``ready`` once it listens.

With ``--cpu-ms C`` it is a server of the orchestrator's shape and nothing else: each call
spends C ms of CPU on the event loop's thread (holding the GIL, as Python code does), in
``--phases + 1`` equal slices: one as the call arrives and one after each of the ``--phases``
waits the delay is split into (an orchestrator's record created, then each phase's replies
taken in). With ``--processes N`` it serves from N processes on the port (``SO_REUSEPORT``,
gRPC's default, as ``orchestrator serve --processes N``): this process and N - 1 children.
Under the same load, its figures are what a server with that CPU per call can reach on this
machine with this client: the baseline for the orchestrator's p99 and its 2-process scaling.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import grpc

METHOD = "/orchestrator.v1.OrchestratorService/Deliberate"


def burn(seconds: float) -> None:
    """Spend ``seconds`` of this thread's CPU time (not wall time: a preempted thread burns on)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


async def serve(port: int, response: bytes, delay: float, cpu_seconds: float = 0.0, phases: int = 3) -> None:
    cpu_slice = cpu_seconds / (phases + 1)

    async def deliberate(_: bytes, __: grpc.aio.ServicerContext) -> bytes:
        if cpu_slice <= 0:
            if delay > 0:
                await asyncio.sleep(delay)
            return response
        burn(cpu_slice)
        for _ in range(phases):
            await asyncio.sleep(delay / phases)
            burn(cpu_slice)
        return response

    handler = grpc.method_handlers_generic_handler(
        "orchestrator.v1.OrchestratorService",
        {"Deliberate": grpc.unary_unary_rpc_method_handler(deliberate)},
    )
    # As the orchestrator sizes it (orchestrator_grpc.server): past gRPC's default 1000 calls
    # not yet taken in by the loop, gRPC cancels some of a burst at random.
    server = grpc.aio.server(
        options=[("grpc.server.max_pending_requests", 5000), ("grpc.server.max_pending_requests_hard_limit", 15000)]
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await server.stop(1)


def _child(arguments: list[str]) -> subprocess.Popen[str]:
    """One more serving process on the same port, once it is ready."""
    child = subprocess.Popen([sys.executable, __file__, *arguments], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    if not child.stdout.readline().startswith("ready"):
        raise SystemExit("a serving child did not start")
    return child


def _stopped(child: subprocess.Popen[str]) -> None:
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout=30)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--response", type=Path, required=True)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--cpu-ms", type=float, default=0.0, help="CPU per call on the loop's thread")
    parser.add_argument("--phases", type=int, default=3, help="waits the delay is split into (with --cpu-ms)")
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    one = [
        "--port", str(args.port), "--response", str(args.response), "--delay", str(args.delay),
        "--cpu-ms", str(args.cpu_ms), "--phases", str(args.phases),
    ]
    with ExitStack() as children:
        for _ in range(args.processes - 1):
            children.callback(_stopped, _child(one))
        asyncio.run(serve(args.port, args.response.read_bytes(), args.delay, args.cpu_ms / 1000, args.phases))


if __name__ == "__main__":
    main()
