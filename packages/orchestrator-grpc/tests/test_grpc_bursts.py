"""A burst of calls larger than gRPC's default queue of calls not yet taken in by the event
loop (1,000): every call is answered by the service, none cancelled by the transport."""

from __future__ import annotations

import asyncio
import json
import sys

from grpc_test_support import ServerFactory

BURST = 2400
CLIENT = """
import asyncio, collections, json, sys
import grpc
from orchestrator.v1 import orchestrator_pb2 as pb, orchestrator_pb2_grpc as pb_grpc

async def main(address, calls):
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.OrchestratorServiceStub(channel)
        request = pb.DeliberateRequest(role="DEV", task="Write a function that adds two numbers", rounds=1)

        async def one():
            try:
                await stub.Deliberate(request, timeout=60)
                return "OK"
            except grpc.aio.AioRpcError as error:
                return f"{error.code().name}: {error.details()}"

        print(json.dumps(collections.Counter(await asyncio.gather(*(one() for _ in range(calls))))))

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


async def test_a_burst_beyond_grpcs_default_pending_queue_is_answered_in_full(serve_with: ServerFactory) -> None:
    async with serve_with(max_concurrent_deliberations=BURST) as server:
        client = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CLIENT, server.address, str(BURST), stdout=asyncio.subprocess.PIPE
        )
        async with asyncio.timeout(120):
            output, _ = await client.communicate()
    assert json.loads(output) == {"OK": BURST}
