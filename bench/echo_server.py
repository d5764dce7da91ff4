"""A bare grpc.aio server answering ``Deliberate`` with fixed bytes after a fixed delay: the
floor the load client is measured against (no orchestrator, no records, no agents).

    python bench/echo_server.py --port 50056 --response response.bin --delay 0.6

It answers the bytes of the file given (a real ``DeliberateResponse``, so the client parses
what it parses against the server) and prints ``ready`` once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

import grpc

METHOD = "/orchestrator.v1.OrchestratorService/Deliberate"


async def serve(port: int, response: bytes, delay: float) -> None:
    async def deliberate(_: bytes, __: grpc.aio.ServicerContext) -> bytes:
        if delay > 0:
            await asyncio.sleep(delay)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--response", type=Path, required=True)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.response.read_bytes(), args.delay))


if __name__ == "__main__":
    main()
